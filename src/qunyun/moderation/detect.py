"""Detectors for what is not a listed word: links, phone numbers, WeChat/QQ ids and e-mail
addresses, and "add me on WeChat" solicitation, each written to survive the usual evasions
(full-width characters, letters styled as ⓥ or 𝐯, noise between characters, 汉字 digits).

Every detector works on the *folded* text (:func:`fold`: NFKC, case folded, zero-width
characters dropped, hearts read as 心, look-alike letters and traditional characters as
``normalize`` reads them) and reports spans of the *original* text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from qunyun.moderation.normalize import normalize as word_normalize

_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad\u180e")
# Symbols people write for 信/心 (微❤ = 微信) and for "plus" (➕v).
_SPECIAL = {"❤": "心", "♥": "心", "♡": "心", "💗": "心", "💕": "心", "💓": "心", "❣": "心", "➕": "+", "✚": "+"}


@dataclass(frozen=True, slots=True)
class Folded:
    """``text`` folded; ``index[i]`` is the position in the original text of folded character
    ``i`` (None when they are the same positions), with one more entry for the end."""

    text: str
    index: list[int] | None
    length: int  # of the original text

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.index is None:
            return start, end
        return self.index[start], (self.index[end - 1] + 1 if end > start else self.index[start])


_FOLDED_CHAR: dict[str, str] = {}  # each character's folded form, as it is met


def _fold_char(ch: str) -> str:
    if ch in _ZERO_WIDTH:
        return ""
    special = _SPECIAL.get(ch)
    if special is not None:
        return special
    if ord(ch) < 128:
        return ch.lower()
    if unicodedata.category(ch) == "Mn" and not unicodedata.normalize("NFKC", ch).strip():
        return ""
    piece = unicodedata.normalize("NFKC", ch).casefold()
    if len(piece) == 1 and piece.isalpha():
        # A look-alike of a Latin letter (Cyrillic ѵ, Greek χ) or a traditional character (聯):
        # read as the matcher reads it; numerals stay as they are (一 is 1 only in a number).
        other = word_normalize(piece)
        if len(other) == 1 and other.isalpha():
            return other
    return piece


def fold(text: str) -> Folded:
    """NFKC, case folding, zero-width characters removed, hearts → 心, ➕ → +, look-alike
    letters and traditional characters as the word matcher reads them; with the map back to the
    original positions."""
    if text.isascii():
        return Folded(text.lower(), None, len(text))
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        piece = _FOLDED_CHAR.get(ch)
        if piece is None:
            piece = _fold_char(ch)
            if len(_FOLDED_CHAR) < 65536:
                _FOLDED_CHAR[ch] = piece
        if len(piece) == 1:
            out.append(piece)
            index.append(i)
        elif piece:
            out.extend(piece)
            index.extend([i] * len(piece))
    index.append(len(text))
    return Folded("".join(out), index, len(text))


@dataclass(frozen=True, slots=True)
class Found:
    """What a detector found: ``kind`` (``phone``, ``account``, ``email``, ``solicit``,
    ``link``), the original span and, for a link, its host."""

    kind: str
    start: int
    end: int
    host: str | None = None


# --- phone numbers ---------------------------------------------------------------------------

_DIGIT = {str(d): str(d) for d in range(10)}
_DIGIT.update(
    {
        "零": "0", "〇": "0", "洞": "0",
        "一": "1", "壹": "1", "幺": "1",
        "二": "2", "贰": "2", "两": "2",
        "三": "3", "叁": "3",
        "四": "4", "肆": "4",
        "五": "5", "伍": "5",
        "六": "6", "陆": "6",
        "七": "7", "柒": "7",
        "八": "8", "捌": "8",
        "九": "9", "玖": "9",
    }
)  # fmt: skip
_MAX_GAP = 3  # separators allowed between two digits of one number ("138 - 1234")
# Words right before a long number that say it is not a phone number.
_NOT_PHONE = ("订单", "单号", "编号", "运单", "快递", "流水", "工号", "卡号", "order", "no.", "no:", "#")


# Characters that separate the items of a list ("1、3、5"): they end a number, never join one.
_LIST_MARKS = frozenset(",，、;；")


def _is_separator(ch: str) -> bool:
    if ch in _LIST_MARKS:
        return False
    if ch.isspace():
        return True
    cat = unicodedata.category(ch)
    return cat[0] in "PSZ" or cat in ("Cf", "Mn")


def _digit_groups(text: str) -> list[list[tuple[str, int, int]]]:
    """Runs of digit groups: groups of adjacent digits (0-9 and 汉字 digits), a run continuing
    across at most ``_MAX_GAP`` separators (spaces, dashes, symbols, emoji), never across a
    letter or another 汉字. Each group is (digits, folded start, folded end)."""
    runs: list[list[tuple[str, int, int]]] = []
    run: list[tuple[str, int, int]] = []
    digits: list[str] = []
    start = gap = 0
    for i, ch in enumerate(text):
        d = _DIGIT.get(ch)
        if d is not None:
            if not digits:
                start = i
            digits.append(d)
            gap = 0
            continue
        if digits:
            run.append(("".join(digits), start, i))
            digits = []
        if run and _is_separator(ch) and gap < _MAX_GAP:
            gap += 1
            continue
        if run:
            runs.append(run)
            run = []
        gap = 0
    if digits:
        run.append(("".join(digits), start, len(text)))
    if run:
        runs.append(run)
    return runs


def _mobile(digits: str) -> bool:
    return len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789"


def find_phones(f: Folded) -> list[Found]:
    """Chinese mobile numbers (1[3-9] and nine more digits, optionally +86): whole digit groups
    only, so an order number of 14 digits never holds a "phone"; a number right after 订单号,
    快递, order … is not one either."""
    found: list[Found] = []
    text = f.text
    if _DIGIT.keys().isdisjoint(text):
        return []
    for run in _digit_groups(text):
        if sum(len(g[0]) for g in run) < 11:
            continue
        for i in range(len(run)):
            total, j = 0, i
            while j < len(run) and total < 13:
                total += len(run[j][0])
                j += 1
                digits = "".join(g[0] for g in run[i:j])
                if digits.startswith("86") and len(digits) == 13:
                    digits = digits[2:]
                if _mobile(digits) and total in (11, 13):
                    start, end = run[i][1], run[j - 1][2]
                    before = text[max(0, start - 6) : start].replace(" ", "")
                    if not any(word in before for word in _NOT_PHONE):
                        found.append(Found("phone", *f.span(start, end)))
                    break
    return _disjoint(found)


# --- accounts, e-mail, solicitation ------------------------------------------------------------

_N = r"[\W_]{0,2}"  # noise between the characters of a keyword


def _fuzzy(word: str) -> str:
    body = _N.join(re.escape(ch) for ch in word)
    if word[0].isascii() and word[0].isalnum():
        body = r"(?<![a-z0-9])" + body
    if word[-1].isascii() and word[-1].isalnum():
        body += r"(?![a-z0-9])"
    return body


def _alternatives(words: list[str]) -> str:
    return "(?:" + "|".join(_fuzzy(w) for w in sorted(words, key=len, reverse=True)) + ")"


# Plain names of messaging accounts: they need an id after them (微信: abc_123) or a verb
# before them (加我微信) to be a solicitation.
_PLAIN = ["微信", "weixin", "wechat", "qq", "扣扣", "企鹅号", "电话", "手机号", "tel", "telegram", "whatsapp"]
# Disguised names: nobody writes them but to slip past a filter, so they fire on their own.
# (威信 and 维信 are ordinary words and a company; 微心 not before 愿: 微心愿 is a "small wish".)
_DISGUISED = ["v信", "w信", "薇信", "徽信", "v心", "薇心", "vx", "wx", "微x", "薇x", "vx号", "wx号", "卫星号"]
_ANY_NAME = _alternatives(_PLAIN + _DISGUISED + ["威信", "维信", "微心"])
_DISGUISED_RE = re.compile(_alternatives(_DISGUISED) + "|" + _fuzzy("微心") + r"(?!愿)")
_ID = r"(?P<id>[a-z][a-z0-9_-]{5,19}|\d{5,12})(?![a-z0-9_-])"
_ACCOUNT_RE = re.compile(
    _ANY_NAME + r"(?P<sep>[\s]*(?:号码?|id)?[\s]*(?:是|为|:|=)?)[\s:=]*" + _ID,
)
# "V: abc_123", "Q：12345678": one letter for the app, then an explicit colon or 号.
_LETTER_ACCOUNT_RE = re.compile(r"(?<![a-z0-9])[vwq]\s*(?:号\s*[:=]?|[:=])\s*" + _ID)
_WXID_RE = re.compile(r"(?<![a-z0-9])wxid_[a-z0-9_-]{4,}")
_EMAIL_RE = re.compile(r"(?<![a-z0-9._%+-])[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}")
_VERB = r"(?:加|\+|add|私聊|私信|联系|找|搜)"
_SOLICIT_RE = re.compile(
    _VERB + _N + r"(?:我|下|一下)?" + _N + r"(?:的)?" + _N
    + r"(?:" + _ANY_NAME + r"|(?:v|w|q)(?![a-z0-9])|微(?![\W_]{0,2}(?:博|笑|信公众|课|店|商城)))"
    + r"|" + _ANY_NAME + _N + r"(?:联系|咨询|详聊|私聊|同号|号同|私我)"
)  # fmt: skip


# Every account, e-mail or solicitation starts with one of these (a cheap test before the regexes).
_CONTACT_START = frozenset(
    [w[0] for w in (*_PLAIN, *_DISGUISED, "威信", "维信", "微心")] + ["加", "+", "a", "私", "联", "找", "搜", "w", "@"]
)


def find_accounts(f: Folded) -> list[Found]:
    """WeChat ids (``wxid_…``), a messaging account's name followed by an id (``wx: abc_123``,
    ``微信号是abc123``; without ``:``/号/是 the id must hold a digit, ``_`` or ``-``) and e-mail
    addresses."""
    text = f.text
    if _CONTACT_START.isdisjoint(text):
        return []
    found = [Found("account", *f.span(m.start(), m.end())) for m in _WXID_RE.finditer(text)]
    found += [Found("account", *f.span(m.start(), m.end())) for m in _LETTER_ACCOUNT_RE.finditer(text)]
    for m in _ACCOUNT_RE.finditer(text):
        ident = m.group("id")
        if m.group("sep").strip() or any(c.isdigit() or c in "_-" for c in ident):
            found.append(Found("account", *f.span(m.start(), m.end())))
    found += [Found("email", *f.span(m.start(), m.end())) for m in _EMAIL_RE.finditer(text)]
    return _disjoint(found)


def find_solicitation(f: Folded) -> list[Found]:
    """ "加我微信", "加 w x", "+v", "微信联系", and disguised names on their own (v信, 微❤, vx)."""
    text = f.text
    if _CONTACT_START.isdisjoint(text):
        return []
    found = [Found("solicit", *f.span(m.start(), m.end())) for m in _SOLICIT_RE.finditer(text)]
    found += [Found("solicit", *f.span(m.start(), m.end())) for m in _DISGUISED_RE.finditer(text)]
    return _disjoint(found)


# --- links -----------------------------------------------------------------------------------

# A bare domain (no scheme, no www.) is a link when its last label is one of these...
STRONG_TLDS = frozenset(
    (
        *("com", "cn", "net", "org", "cc", "top", "xyz", "vip", "io", "tv", "co", "hk", "tw", "mo", "la", "ws"),
        *("biz", "ren", "wang", "ink", "icu", "club", "site", "online", "shop", "store", "ltd", "work", "tech"),
        *("cloud", "asia", "mobi", "jp", "kr", "uk", "ru", "sg", "xin", "cyou", "buzz", "pw", "tk", "ml", "ga"),
        *("cf", "gq", "bid", "win", "loan", "kim", "pub", "run", "fun", "red", "gov", "edu"),
    )
)
# ...and with one of these only when a path or a port follows (docs.info/x): they are English
# words or file extensions, and "see user.info" or "it.is" is prose.
WEAK_TLDS = frozenset(
    (
        *("info", "app", "name", "pro", "link", "live", "life", "news", "page", "plus", "one", "world", "today"),
        *("in", "is", "it", "to", "at", "be", "do", "my", "no", "us", "me", "so"),
    )
)
_URL_RE = re.compile(r"(?:https?|ftp)://(?P<host>[a-z0-9.-]+)[^\s<>\"'，。！？、）】》]*")
_WWW_RE = re.compile(
    r"(?<![a-z0-9.-])www\.(?P<host>(?:[a-z0-9-]+\.)+[a-z]{2,})(?![a-z0-9-])[^\s<>\"'，。！？、）】》]*"
)
_BARE_RE = re.compile(
    r"(?<![a-z0-9@._/-])(?P<host>(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?P<tld>[a-z]{2,}))(?![a-z0-9-])"
    r"(?P<rest>(?::\d{1,5})?/[^\s<>\"'，。！？、）】》]*|:\d{1,5})?"
)
_DOTTED = "|".join(sorted(("com", "cn", "net", "org", "top", "xyz", "vip", "cc")))
_SPELLED_RE = re.compile(
    r"(?<![a-z0-9])(?P<label>[a-z0-9][a-z0-9-]*)\s*(?:点|。|\(\.\)|\[\.\]|\(点\)|\[点\]|dot)\s*(?P<tld>"
    + _DOTTED
    + r")(?![a-z])"
)


def find_links(f: Folded) -> list[Found]:
    """URLs, www. addresses, bare domains (a known top-level domain, see ``STRONG_TLDS`` and
    ``WEAK_TLDS``) and spelled-out dots (abc点com, abc[.]com); each with its host."""
    text = f.text
    found: list[Found] = []
    if "." not in text and "点" not in text and "。" not in text and "dot" not in text:
        return found
    for regex in (_URL_RE, _WWW_RE):
        for m in regex.finditer(text):
            found.append(Found("link", *f.span(m.start(), m.end()), host=m.group("host").strip(".")))
    for m in _BARE_RE.finditer(text):
        tld = m.group("tld")
        if tld in STRONG_TLDS or (tld in WEAK_TLDS and m.group("rest")):
            found.append(Found("link", *f.span(m.start(), m.end()), host=m.group("host")))
    for m in _SPELLED_RE.finditer(text):
        found.append(Found("link", *f.span(m.start(), m.end()), host=f"{m.group('label')}.{m.group('tld')}"))
    return _disjoint(found)


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``host`` is one of the allowed domains or a subdomain of one."""
    return any(host == d or host.endswith("." + d) for d in allowed)


def _disjoint(found: list[Found]) -> list[Found]:
    """In order of start; of overlapping finds, the first (and longest) one."""
    found.sort(key=lambda x: (x.start, -x.end))
    out: list[Found] = []
    for item in found:
        if out and item.start < out[-1].end:
            continue
        out.append(item)
    return out

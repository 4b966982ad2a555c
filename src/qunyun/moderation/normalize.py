"""Text normalization for word matching: one ``str.translate`` table and one regular expression.

``normalize(text)`` folds the evasions people use to get a listed word past a filter, the same
way for the words and for the text, so that the automaton (``matcher.py``) only has to find
plain substrings:

* case folding, full/half width and compatibility forms (NFKC: ``ｓｅｘ``, ``𝐬𝐞𝐱``, ``ⓢ``, ``⒮``);
* diacritics dropped from Latin letters (``fǎ`` → ``fa``);
* look-alike letters: Cyrillic, Greek, small capitals, regional indicators (``ѕех`` → ``sex``);
* traditional → simplified Chinese, character by character (OpenCC t2s: ``法輪功`` → ``法轮功``);
* number styles: ``①`` ``⑴`` ``１`` ``一`` ``壹`` → ``1``;
* noise deleted: spaces, punctuation, symbols, emoji, control and format characters (zero-width
  space and joiner), combining marks and variation selectors. Letters of any script, CJK
  ideographs included, are never noise, so a match never skips over another character;
* a run of the same non-ASCII character collapsed to one (``法法轮轮功功`` → ``法轮功``). Latin
  letters and digits are left alone: English doubles letters (``ass``, ``class``, ``book``) and
  numbers repeat digits.

Every character maps to zero, one or a few characters independently of its neighbours, so the
position of each normalized character in the original text can be recovered (``align``), which
the matcher does only for texts that contain a hit.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass

# Mapping value None deletes the character; a string replaces it.
Table = dict[int, str | None]

# Chinese numerals, plain and financial (大写). Those that are also everyday words or surnames
# (陆 as in 大陆 or the surname, 伍 as in 队伍, 柒, 肆 as in 放肆, 零 as in 零食) are
# AMBIGUOUS: the matcher accepts them for a digit only when they are written next to the
# word's other characters, without noise in between (``陆肆`` is 64, ``姓陆，四川人`` is not),
# and a listed word written with one (the surname 陆) matches that character only.
_NUMERALS = {
    "〇": "0",
    "零": "0",
    "一": "1",
    "二": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
    "壹": "1",
    "贰": "2",
    "貳": "2",
    "叁": "3",
    "參": "3",
    "肆": "4",
    "伍": "5",
    "陆": "6",
    "陸": "6",
    "柒": "7",
    "捌": "8",
    "玖": "9",
}
# Each ambiguous numeral and the character it is as a word (traditional folded to simplified).
AMBIGUOUS_NUMERALS = {"零": "零", "肆": "肆", "伍": "伍", "陆": "陆", "陸": "陆", "柒": "柒"}

# Letters of other scripts (and Latin small capitals) that look like a Latin letter in chat
# fonts, after case folding. NFKC already handles fullwidth, mathematical, circled and
# parenthesized letters.
_LOOKALIKES = {
    # Cyrillic
    "а": "a",
    "в": "b",
    "с": "c",
    "ԁ": "d",
    "е": "e",
    "ё": "e",
    "һ": "h",
    "н": "h",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "к": "k",
    "ӏ": "l",
    "м": "m",
    "о": "o",
    "р": "p",
    "ԛ": "q",
    "г": "r",
    "ѕ": "s",
    "т": "t",
    "ц": "u",
    "ѵ": "v",
    "ѡ": "w",
    "ԝ": "w",
    "х": "x",
    "у": "y",
    "ү": "y",
    "з": "3",
    # Greek
    "α": "a",
    "β": "b",
    "ϲ": "c",
    "δ": "d",
    "ε": "e",
    "η": "n",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "ς": "s",
    "τ": "t",
    "υ": "u",
    "χ": "x",
    "γ": "y",
    "ω": "w",
    "μ": "u",
    # Latin small capitals and other IPA look-alikes
    "ᴀ": "a",
    "ʙ": "b",
    "ᴄ": "c",
    "ᴅ": "d",
    "ᴇ": "e",
    "ꜰ": "f",
    "ɢ": "g",
    "ʜ": "h",
    "ɪ": "i",
    "ᴊ": "j",
    "ᴋ": "k",
    "ʟ": "l",
    "ᴍ": "m",
    "ɴ": "n",
    "ᴏ": "o",
    "ᴘ": "p",
    "ʀ": "r",
    "ꜱ": "s",
    "ᴛ": "t",
    "ᴜ": "u",
    "ᴠ": "v",
    "ᴡ": "w",
    "ʏ": "y",
    "ᴢ": "z",
    "ı": "i",
    "ɑ": "a",
    "ɡ": "g",
    "ø": "o",
    "đ": "d",
    "ł": "l",
    "ŧ": "t",
    "ħ": "h",
}

# Code point ranges that hold CJK ideographs (unified, extensions, compatibility).
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F))
_NOISE_CATEGORIES = frozenset({"Mn", "Me", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn", "Cs"})
# A run of a repeated non-ASCII character after its first (replaced by "": a literal
# replacement spares ``re`` expanding a template on every match).
REPEATS = re.compile(r"(?<=([^\x00-\x7f]))\1+")
# The fast translation (``Tables.fast``) writes this for a character that becomes several
# (ß → ss, ⑩ → 10): such texts, rare, take the full translation, and every other text keeps
# one normalized character per character kept.
_SEVERAL = "\uffff"
# What the fast translation leaves for the full one: a repeat to collapse, a character that
# becomes several, or a plane-14 character (tags, variation selectors supplement) beyond the list.
SPECIAL = re.compile(r"([^\x00-\x7f])\1|[\uffff\U000e0000-\U000e01ff]")
_UNFAST = re.compile(r"[\uffff\U000e0000-\U000e01ff]")
# The fast translation table is a list indexed by code point up to here.
_FAST_LIMIT = 0x30000


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is a CJK ideograph (or 〇)."""
    cp = ord(ch)
    return cp == 0x3007 or any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_noise(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat in _NOISE_CATEGORIES or cat[0] in "PS"


def _t2s_chars() -> dict[str, str]:
    """Traditional → simplified for single characters, from OpenCC's t2s conversion."""
    import opencc

    chars = [chr(cp) for lo, hi in _CJK_RANGES for cp in range(lo, min(hi, 0x2A6DF) + 1)]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):  # pragma: no cover - OpenCC keeps one line per line
        raise RuntimeError("OpenCC t2s changed the number of lines")
    return {a: b for a, b in zip(chars, converted, strict=True) if a != b and len(b) == 1}


def _fold_char(ch: str, t2s: dict[str, str]) -> str:
    """What one (already NFKC and case folded) character becomes; "" for noise."""
    if ch in _LOOKALIKES:
        return _LOOKALIKES[ch]
    if ch in _NUMERALS:
        return _NUMERALS[ch]
    if ch in t2s:
        simplified = t2s[ch]
        return _NUMERALS.get(simplified, simplified)
    if _is_noise(ch):
        return ""
    if not ch.isascii() and unicodedata.category(ch).startswith("L"):
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base.isascii() and base:
            return base.lower()
    return ch


@functools.cache
def table() -> Table:
    """The translation table (built once, about a tenth of a second)."""
    t2s = _t2s_chars()
    result: Table = {}
    # CJK unified ideographs are letters that NFKC leaves alone: only their t2s and numeral
    # mappings matter, added below, so the loop skips their ranges.
    code_points = [*range(0x3400), *range(0xA000, 0x20000), *range(0x2FA20, 0x30000), *range(0xE0000, 0xE01F0)]
    for ch in [*t2s, *_NUMERALS]:
        result[ord(ch)] = _fold_char(ch, t2s)
    for cp in code_points:
        ch = chr(cp)
        if 0x1F1E6 <= cp <= 0x1F1FF:  # regional indicator symbols 🇦..🇿 read as letters
            out = chr(ord("a") + cp - 0x1F1E6)
        elif ch in _LOOKALIKES or ch in _NUMERALS:
            out = _fold_char(ch, t2s)
        elif _is_noise(ch):
            # A symbol that stands for one letter or digit (ⓢ, ⒮, ㊙) reads as it; other
            # symbols (™ → "tm", ℃) are noise.
            out = "".join(_fold_char(c, t2s) for c in unicodedata.normalize("NFKC", ch).casefold())
            if len(out) != 1 or not out.isalnum():
                out = ""
        else:
            folded = unicodedata.normalize("NFKC", ch).casefold()
            out = "".join(_fold_char(c, t2s) for c in folded)
        if out != ch:
            result[cp] = out or None
    # Make the table idempotent: an output character that itself maps is mapped through.
    for cp, mapped in list(result.items()):
        if mapped:
            again = "".join(result.get(ord(c), c) or "" for c in mapped)
            result[cp] = again or None
    return result


def normalize(text: str) -> str:
    """``text`` folded for matching (see the module's docstring)."""
    folded = text.translate(tables().fast)
    if SPECIAL.search(folded) is None:
        return folded
    return finish(text, folded)


def finish(text: str, folded: str) -> str:
    """``normalize(text)`` from ``folded``, the fast translation of ``text`` in which ``SPECIAL``
    found something."""
    if _UNFAST.search(folded) is not None:
        folded = text.translate(tables().full)
    return REPEATS.sub("", folded)


@dataclass(frozen=True, slots=True)
class Tables:
    """The table in the forms the hot path wants. ``str.translate`` with a dict pays for an
    exception on every character it does not map; ``fast`` is a list with an entry for every
    code point below 0x30000 (identity as the code point itself), about three times faster.
    ``kept`` translates a character to "\\x01" when normalization keeps it, "\\x00" when it
    drops it: the positions of the kept ones, in C. The sets answer the matcher's questions
    about single characters."""

    full: Table
    fast: list[int | str | None]
    kept: list[str]
    deleted: frozenset[str]  # characters normalization drops (noise)
    word: frozenset[str]  # letters and digits as Latin text writes them (not CJK numerals)
    digits: frozenset[str]  # digits among them


@functools.cache
def tables() -> Tables:
    full = table()
    fast: list[int | str | None] = list(range(_FAST_LIMIT))
    kept = ["\x01"] * _FAST_LIMIT
    for cp, mapped in full.items():
        if cp < _FAST_LIMIT:
            fast[cp] = _SEVERAL if mapped and len(mapped) > 1 else mapped
            if mapped is None:
                kept[cp] = "\x00"
    latin = [chr(cp) for cp in range(128) if chr(cp).isalnum()]
    mapped_latin = {chr(cp): m for cp, m in full.items() if m and m.isascii() and m.isalnum()}
    word = frozenset(latin) | {c for c in mapped_latin if not is_cjk(c)}
    return Tables(
        full=full,
        fast=fast,
        kept=kept,
        deleted=frozenset(chr(cp) for cp, m in full.items() if m is None),
        word=word,
        digits=frozenset(c for c in word if full.get(ord(c), c) in set("0123456789")),
    )


class Alignment:
    """Where each character of ``normalize(text)`` came from: ``starts[j]`` is the index in the
    original text of the first character that produced normalized character ``j``; ``end(j)``
    one past the last (repeats collapsed into it included), ``run(j)`` how many characters
    collapsed into it (1 when none). A plain class: built on the matcher's slow path, where a
    dataclass's __init__ was a measurable share."""

    __slots__ = ("_ends", "_runs", "normalized", "starts")

    def __init__(self, normalized: str, starts: list[int], ends: list[int] | None, runs: list[int] | None) -> None:
        self.normalized = normalized
        self.starts = starts
        self._ends = ends  # None: starts[j] + 1 (nothing collapsed)
        self._runs = runs

    def end(self, j: int) -> int:
        return self.starts[j] + 1 if self._ends is None else self._ends[j]

    def run(self, j: int) -> int:
        return 1 if self._runs is None else self._runs[j]

    @property
    def ends(self) -> list[int]:
        return [self.end(j) for j in range(len(self.starts))]

    @property
    def runs(self) -> list[int]:
        return [self.run(j) for j in range(len(self.starts))]


_next = (1).__add__


def align(text: str, folded: str | None = None, special: bool | None = None) -> Alignment:
    """``normalize(text)`` with the position of each of its characters in ``text``.
    ``folded``: ``text.translate(tables().fast)`` when the caller has it; ``special``: whether
    ``SPECIAL`` finds something in it, when the caller knows."""
    t = tables()
    if folded is None:
        folded = text.translate(t.fast)
    if special is None:
        special = SPECIAL.search(folded) is not None
    n = len(text)
    if not special and len(folded) == n:  # nothing dropped, expanded or collapsed
        return Alignment(folded, list(range(n)), None, None)
    if special and _UNFAST.search(folded) is not None:
        return _align_slowly(text, t.full)
    mask = text.translate(t.kept).encode()
    if len(mask) != n:  # a character beyond the list (kept as it is, and not one byte)
        return _align_slowly(text, t.full)
    pre = list(itertools.compress(range(n), mask))
    spans = [m.span() for m in REPEATS.finditer(folded)] if special else None
    if not spans:
        return Alignment(folded, pre, None, None)
    # Each run of repeats [a, b) of the folded text collapses into the character at a - 1.
    out: list[str] = []
    starts: list[int] = []
    runs: list[int] = []
    ends: list[int] = []
    prev = 0
    for a, b in spans:
        out.append(folded[prev:a])
        starts += pre[prev:a]
        ends += map(_next, pre[prev:a])
        runs += [1] * (a - prev)
        ends[-1] = pre[b - 1] + 1
        runs[-1] = b - a + 1
        prev = b
    out.append(folded[prev:])
    starts += pre[prev:]
    ends += map(_next, pre[prev:])
    runs += [1] * (len(folded) - prev)
    return Alignment("".join(out), starts, ends, runs)


def _align_slowly(text: str, full: Table) -> Alignment:
    get = full.get
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    runs: list[int] = []
    prev = ""
    for i, ch in enumerate(text):
        mapped = get(ord(ch), ch)
        if not mapped:
            continue
        for c in mapped:
            if c == prev and c > "\x7f":
                ends[-1] = i + 1
                runs[-1] += 1
                continue
            out.append(c)
            starts.append(i)
            ends.append(i + 1)
            runs.append(1)
            prev = c
    return Alignment("".join(out), starts, ends, runs)


def is_word_char(ch: str) -> bool:
    """Whether ``ch`` is part of a Latin word or a number as written: a letter or digit in any
    Latin-like form (ASCII, fullwidth, mathematical, circled, look-alike), not a CJK numeral."""
    return ch in tables().word


def is_digit_char(ch: str) -> bool:
    """Whether ``ch`` is a digit as written (ASCII, fullwidth, circled …), not a CJK numeral."""
    return ch in tables().digits


def is_noise(ch: str) -> bool:
    """Whether normalization deletes ``ch``."""
    return ch in tables().deleted


def is_invisible(ch: str) -> bool:
    """Whether ``ch`` is not seen in a chat window: format characters (zero-width space and
    joiner, soft hyphen), combining marks and variation selectors."""
    return unicodedata.category(ch) in ("Cf", "Mn", "Me")

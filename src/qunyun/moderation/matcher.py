"""Word matching: the normalization pipeline (``normalize.py``) in front of one Aho-Corasick
automaton (ahocorasick-rs) holding every listed word and allowed term, normalized.

The hot path is three C calls: ``str.translate``, one regular expression (repeats), the
automaton. Most messages contain no listed word and leave there. Only a text with a match is
aligned back to the original (``normalize.align``) and each match checked:

* it is not inside an occurrence of an allowed term;
* Latin words and numbers are whole words: a match whose first (last) character is a Latin
  letter or digit as written must not continue a Latin word or number (``sex`` in ``Sussex``,
  ``64`` in an order number), and a Latin word spelled with gaps must have them between every
  letter (``s e x``, not ``his ex``);
* a word with a doubled character needs it doubled in the text too (the normalized word
  ``妈的`` of ``妈妈的`` does not fire on ``妈的``);
* an ambiguous numeral (陆, 伍, 肆 …) stands for a digit only when nothing separates it from the
  word's other characters (``陆肆`` is 64; ``我姓陆，四川人`` is not).

``docs/moderation-matching.md`` has the details, what is not caught, and the figures.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick_rs

from qunyun.moderation.normalize import (
    AMBIGUOUS_NUMERALS,
    SPECIAL,
    Alignment,
    align,
    finish,
    is_cjk,
    is_invisible,
    normalize,
    tables,
)
from qunyun.moderation.types import Hit, WordEntry

# At most this many pinyin spellings per word (characters with several readings multiply).
MAX_PINYIN_SPELLINGS = 8


@dataclass(frozen=True, slots=True)
class _Target:
    """A listed word behind a normalized pattern."""

    word: str
    category: str
    # Required run length per pattern position (None: all 1).
    runs: tuple[int, ...] | None
    # The word's own character per pattern position, kept when the pattern has digits (None:
    # no digit, nothing to check for ambiguous numerals).
    chars: str | None
    # For a word of Latin letters and digits (not a pinyin spelling): where the word itself has
    # visible separators between its characters (``02lh.info``). A match's gaps must be these,
    # or none, or all (``s e x``, ``8.9.6.4``; not ``his ex`` or the price ``89.64``). None: the
    # word is not such a word, gaps are free.
    gaps: tuple[bool, ...] | None


def _spellings(word: str) -> list[str]:
    """The word written in pinyin without tones: the phrase-aware reading first, then other
    readings of characters with several, up to MAX_PINYIN_SPELLINGS. No initials-only forms
    (``flg``): too short, they fire on ordinary Latin text."""
    from pypinyin import Style, lazy_pinyin, pinyin

    if not any(is_cjk(c) for c in word):
        return []
    out = ["".join(lazy_pinyin(word, style=Style.NORMAL))]
    readings = pinyin(word, style=Style.NORMAL, heteronym=True)
    for combo in itertools.islice(itertools.product(*readings), MAX_PINYIN_SPELLINGS * 4):
        spelled = "".join(combo)
        if spelled not in out:
            out.append(spelled)
        if len(out) >= MAX_PINYIN_SPELLINGS:
            break
    # pypinyin writes ü as v (nv); people type both.
    return list(dict.fromkeys([*out, *(s.replace("v", "u") for s in out if "v" in s)]))


class NormalizingMatcher:
    """Finds listed words in texts whatever evasion was used (see the module's docstring).
    Immutable once built; build a new one when the word list changes."""

    def __init__(self, words: Iterable[WordEntry], allow: Iterable[str] = ()) -> None:
        tables()  # build the normalization tables now rather than on the first message
        index: dict[str, int] = {}
        targets: list[list[_Target]] = []
        allowed: list[bool] = []
        # One target per pattern, category and checks: the first listed word of those that
        # normalize alike (法轮功, 法輪功, 法 轮 功) is the one reported.
        seen: set[tuple[object, ...]] = set()

        def add(pattern: str, target: _Target | None) -> None:
            k = index.get(pattern)
            if k is None:
                k = index[pattern] = len(targets)
                targets.append([])
                allowed.append(False)
            if target is None:
                allowed[k] = True
            elif (key := (pattern, target.category, target.runs, target.chars, target.gaps)) not in seen:
                seen.add(key)
                targets[k].append(target)

        for entry in words:
            word = entry.word.strip()
            if not word:
                continue
            aligned = align(word)
            pattern = aligned.normalized
            if pattern:
                runs = tuple(aligned.runs) if any(r > 1 for r in aligned.runs) else None
                chars = "".join(word[i] for i in aligned.starts) if any(c.isdigit() for c in pattern) else None
                gaps = _gaps(word, aligned, 0, len(pattern)) if pattern.isascii() and pattern.isalnum() else None
                add(pattern, _Target(word, entry.category, runs, chars, gaps))
            if entry.pinyin:
                for spelled in _spellings(word):
                    add(normalize(spelled), _Target(word, entry.category, None, None, None))
        for term in allow:
            pattern = normalize(term.strip())
            if pattern:
                add(pattern, None)

        self._targets: list[tuple[_Target, ...]] = [tuple(t) for t in targets]
        # Whether the pattern starts or ends with a Latin letter or digit (a whole-word check).
        self._latin_edge = [_alnum(p[0]) or _alnum(p[-1]) for p in index]
        self._allowed = allowed
        self._any_allowed = any(allowed)
        self.patterns = len(targets)
        self._automaton = ahocorasick_rs.AhoCorasick(list(index), matchkind=ahocorasick_rs.MatchKind.Standard)
        self._search = self._automaton.find_matches_as_indexes
        self._fast = tables().fast

    def find(self, text: str) -> list[Hit]:
        """Every hit in ``text``, in order of (start, end); spans are the original text's."""
        # normalize(), inlined: this is the hot path.
        folded = text.translate(self._fast)
        if SPECIAL.search(folded) is None:
            matches = self._search(folded, True)
            return self._resolve(text, folded, False, matches) if matches else []
        matches = self._search(finish(text, folded), True)
        return self._resolve(text, folded, True, matches) if matches else []

    def first(self, text: str) -> Hit | None:
        """The first hit in ``text``, or None: ``find`` for a yes-or-no rule."""
        hits = self.find(text)
        return hits[0] if hits else None

    def _resolve(self, text: str, folded: str, special: bool, matches: list[tuple[int, int, int]]) -> list[Hit]:
        allowed = self._allowed
        spans = [(s, e) for k, s, e in matches if allowed[k]] if self._any_allowed else []
        targets_of, latin_edge = self._targets, self._latin_edge
        at: Alignment | None = None
        hits: list[Hit] = []
        for k, s, e in matches:
            targets = targets_of[k]
            if not targets or (spans and any(a <= s and e <= b for a, b in spans)):
                continue
            if at is None:
                at = align(text, folded, special)
            start, end = at.starts[s], at.end(e - 1)
            if latin_edge[k] and not _whole(text, start, end):
                continue
            for t in targets:
                if t.runs is not None and any(at.run(s + i) < r for i, r in enumerate(t.runs)):
                    continue
                if t.chars is not None and not _numerals_ok(text, at, s, t.chars):
                    continue
                # Gaps only matter for two characters or more, and there are none when the
                # match's characters are next to each other in the text.
                if t.gaps and end - start != e - s and not _spaced_like(t.gaps, _gaps(text, at, s, e)):
                    continue
                hits.append(Hit(t.word, t.category, start, end))
        if len(hits) > 1:
            hits.sort(key=_position)
        return hits


def _alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _position(hit: Hit) -> tuple[int, int]:
    return hit.start, hit.end


def _whole(text: str, start: int, end: int) -> bool:
    """A match starting (ending) with a Latin letter or digit does not continue a word or a
    number; a number goes on past noise too (``1.64``, ``2,964``)."""
    t = tables()
    word, digits, deleted = t.word, t.digits, t.deleted
    n = len(text)
    for edge, i, step in ((start, start - 1, -1), (end - 1, end, 1)):
        if i < 0 or i >= n or text[edge] not in word:
            continue
        if text[i] in word:
            return False
        if text[edge] not in digits:
            continue
        while 0 <= i < n and text[i] in deleted:
            i += step
        if 0 <= i < n and text[i] in digits:
            return False
    return True


def _numerals_ok(text: str, at: Alignment, s: int, chars: str) -> bool:
    """An ambiguous numeral in the text standing for another character of the word must touch
    its neighbours in the match (no noise between); one in the word matches only itself."""
    last = s + len(chars) - 1
    for i, own in enumerate(chars):
        j = s + i
        ch = text[at.starts[j]]
        if ch == own:
            continue
        if own in AMBIGUOUS_NUMERALS:
            if AMBIGUOUS_NUMERALS[own] != AMBIGUOUS_NUMERALS.get(ch):
                return False
            continue
        if ch not in AMBIGUOUS_NUMERALS:
            continue
        if j > s and at.starts[j] > at.end(j - 1):
            return False
        if j < last and at.starts[j + 1] > at.end(j):
            return False
    return True


def _gaps(text: str, at: Alignment, s: int, e: int) -> tuple[bool, ...]:
    """For each two neighbouring characters of normalized ``[s, e)``: whether something visible
    was deleted between them (invisible format characters and marks do not count)."""
    return tuple(any(not is_invisible(c) for c in text[at.end(j - 1) : at.starts[j]]) for j in range(s + 1, e))


def _spaced_like(own: tuple[bool, ...], gaps: tuple[bool, ...]) -> bool:
    return gaps == own or all(gaps) or not any(gaps)


def build_matcher(words: Iterable[WordEntry], allow: Iterable[str] = ()) -> NormalizingMatcher:
    """A matcher for ``words``; a hit inside an occurrence of an ``allow`` term is not reported."""
    return NormalizingMatcher(words, allow)

"""Word matching. PLACEHOLDER: a naive case-folding substring search with the final interface,
so that the rules and the engine can be written against it; replaced by the normalizing
Aho-Corasick matcher."""

from __future__ import annotations

from collections.abc import Iterable

from qunyun.moderation.types import Hit, WordEntry


class NaiveMatcher:
    def __init__(self, words: Iterable[WordEntry], allow: Iterable[str] = ()) -> None:
        self._words = [w for w in words if w.word]
        self._allow = [a.casefold() for a in allow if a]

    def find(self, text: str) -> list[Hit]:
        folded = text.casefold()
        hits: list[Hit] = []
        for w in self._words:
            needle = w.word.casefold()
            start = folded.find(needle)
            while start >= 0:
                hits.append(Hit(w.word, w.category, start, start + len(needle)))
                start = folded.find(needle, start + 1)
        hits.sort(key=lambda h: (h.start, h.end))
        return hits


def build_matcher(words: Iterable[WordEntry], allow: Iterable[str] = ()) -> NaiveMatcher:
    """A matcher for ``words``; a hit inside an occurrence of an ``allow`` term is not reported."""
    return NaiveMatcher(words, allow)

"""The matcher's quality corpus (``tests/fixtures/moderation/``): reading it and scoring a
matcher on it. Shared by the tests and ``bench/bench_moderation.py``.

``words.tsv``: ``word<TAB>category[<TAB>pinyin]``; ``allow.txt``: one allowed term a line;
``corpus.jsonl``: one case a line, ``{"technique": …, "text": …, "expect": [listed words]}``, the
technique ``clean`` for texts that must not fire. Lines starting with ``#`` are comments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from qunyun.moderation.matcher import NormalizingMatcher, build_matcher
from qunyun.moderation.types import WordEntry


@dataclass(frozen=True)
class Case:
    technique: str
    text: str
    expect: tuple[str, ...]


@dataclass
class Score:
    """Recall over the evasive cases (a case counts when every expected word is found), the
    false-positive rate over the clean ones (a text with any hit)."""

    cases: int = 0
    found: int = 0
    clean: int = 0
    false_positives: int = 0
    misses: list[Case] = field(default_factory=list)
    flagged: list[tuple[Case, list[str]]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.cases if self.cases else 1.0

    @property
    def fp_rate(self) -> float:
        return self.false_positives / self.clean if self.clean else 0.0


def _lines(path: Path) -> list[tuple[int, str]]:
    text = path.read_text(encoding="utf-8")
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]


def load_words(path: Path) -> list[WordEntry]:
    out = []
    for n, line in _lines(path):
        parts = line.split("\t")
        if len(parts) > 3 or (len(parts) == 3 and parts[2] != "pinyin"):
            raise ValueError(f"{path.name} line {n}: expected word<TAB>category[<TAB>pinyin]")
        out.append(WordEntry(parts[0], parts[1] if len(parts) > 1 else "custom", len(parts) == 3))
    return out


def load_allow(path: Path) -> list[str]:
    return [line.strip() for _, line in _lines(path)]


def load_cases(path: Path) -> list[Case]:
    out = []
    for n, line in _lines(path):
        try:
            row = json.loads(line)
            out.append(Case(str(row["technique"]), str(row["text"]), tuple(row["expect"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path.name} line {n}: {exc}") from exc
    return out


def corpus_matcher(folder: Path) -> NormalizingMatcher:
    """The matcher of the corpus's word list and allow list."""
    return build_matcher(load_words(folder / "words.tsv"), load_allow(folder / "allow.txt"))


def score(matcher: NormalizingMatcher, cases: list[Case]) -> Score:
    result = Score()
    for case in cases:
        words = [h.word for h in matcher.find(case.text)]
        if case.technique == "clean":
            result.clean += 1
            if words:
                result.false_positives += 1
                result.flagged.append((case, words))
        else:
            result.cases += 1
            if set(case.expect) <= set(words):
                result.found += 1
            else:
                result.misses.append(case)
    return result

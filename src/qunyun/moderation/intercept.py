"""A word list as WeCom chat intercept rules (企业微信「管理聊天敏感词」,
``externalcontact/add_intercept_rule``).

WeCom's limits (developer.work.weixin.qq.com/document/path/95130): a rule's name is 1-20
characters, a word 1-32 characters, a rule holds at most 300 words, a company at most 100
rules. WeCom matches the words literally, so only the listed words go (not their pinyin, not
the evasions our own matcher sees through).

:func:`plan_intercept_rules` splits a list into rules, one category after another (known
categories first in their usual order, then custom ones by name), names them
deterministically (``qunyun-广告-1``) and reports what does not fit. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from qunyun.moderation.types import KNOWN_CATEGORIES, WordEntry

MAX_WORDS_PER_RULE = 300
MAX_RULES = 100
MAX_WORD_LENGTH = 32
MAX_RULE_NAME = 20
_LABELS = {
    "politics": "政治",
    "porn": "色情",
    "gambling": "赌博",
    "ads": "广告",
    "competitor": "竞品",
    "custom": "自定义",
}


@dataclass(frozen=True)
class InterceptRule:
    """One WeCom rule to create: ``name`` (≤ 20 characters, unique in the plan), the category
    it carries and its words (≤ 300)."""

    name: str
    category: str
    words: tuple[str, ...]

    def payload(self, intercept_type: int = 1) -> dict[str, object]:
        """The body of ``add_intercept_rule`` without ``applicable_range`` (the caller's: whom it
        applies to). ``intercept_type`` 1: warn and block; 2: warn only."""
        return {"rule_name": self.name, "word_list": list(self.words), "intercept_type": intercept_type}


@dataclass(frozen=True)
class Overflow:
    """A word that is not in the plan: ``too_long`` (over 32 characters) or ``no_room`` (the
    company's rules are all used)."""

    word: str
    category: str
    reason: str


@dataclass
class InterceptPlan:
    rules: list[InterceptRule] = field(default_factory=list)
    overflow: list[Overflow] = field(default_factory=list)

    @property
    def words(self) -> int:
        return sum(len(r.words) for r in self.rules)


def _category_order(category: str) -> tuple[int, str]:
    if category in KNOWN_CATEGORIES:
        return KNOWN_CATEGORIES.index(category), ""
    return len(KNOWN_CATEGORIES), category


def _name(prefix: str, label: str, number: int) -> str:
    suffix = f"-{number}"
    head = f"{prefix}-" if prefix else ""
    room = MAX_RULE_NAME - len(head) - len(suffix)
    return f"{head}{label[: max(room, 1)]}{suffix}"[:MAX_RULE_NAME]


def plan_intercept_rules(
    entries: Iterable[WordEntry], *, prefix: str = "qunyun", max_rules: int = MAX_RULES
) -> InterceptPlan:
    """WeCom intercept rules holding ``entries`` (duplicates once, in list order within their
    category); ``max_rules``: the rules the company has free (100 less those it already has).
    Words over 32 characters, and those past the last free rule, are the plan's ``overflow``."""
    by_category: dict[str, list[str]] = {}
    seen: set[str] = set()
    plan = InterceptPlan()
    for entry in entries:
        word = entry.word.strip()
        if not word or word in seen:
            continue
        seen.add(word)
        if len(word) > MAX_WORD_LENGTH:
            plan.overflow.append(Overflow(word, entry.category, "too_long"))
            continue
        by_category.setdefault(entry.category, []).append(word)
    names: set[str] = set()
    for category in sorted(by_category, key=_category_order):
        words = by_category[category]
        label = _LABELS.get(category, category)
        chunks = [words[i : i + MAX_WORDS_PER_RULE] for i in range(0, len(words), MAX_WORDS_PER_RULE)]
        for number, chunk in enumerate(chunks, start=1):
            if len(plan.rules) >= max_rules:
                plan.overflow += [Overflow(w, category, "no_room") for w in chunk]
                continue
            name = _name(prefix, label, number)
            if name in names:  # two long custom categories cut to the same name
                name = _name(prefix, f"{len(plan.rules) + 1}", number)
            names.add(name)
            plan.rules.append(InterceptRule(name, category, tuple(chunk)))
    return plan

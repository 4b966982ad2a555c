"""WeCom intercept rules: ≤300 words a rule, ≤100 rules, words ≤32 characters, names ≤20;
split by category, named deterministically, and what does not fit is reported."""

from __future__ import annotations

from qunyun.moderation.intercept import (
    MAX_RULE_NAME,
    MAX_WORDS_PER_RULE,
    plan_intercept_rules,
)
from qunyun.moderation.types import WordEntry


def words(category: str, count: int, prefix: str = "w") -> list[WordEntry]:
    return [WordEntry(f"{prefix}{category}{i}", category) for i in range(count)]


def test_split_by_category_in_known_order_then_custom() -> None:
    entries = words("zz-custom", 2) + words("ads", 650) + words("porn", 3) + [WordEntry("wads0", "ads")]
    plan = plan_intercept_rules(entries)
    assert [(r.name, r.category, len(r.words)) for r in plan.rules] == [
        ("qunyun-色情-1", "porn", 3),
        ("qunyun-广告-1", "ads", 300),
        ("qunyun-广告-2", "ads", 300),
        ("qunyun-广告-3", "ads", 50),
        ("qunyun-zz-custom-1", "zz-custom", 2),
    ]
    assert plan.overflow == [] and plan.words == 655
    assert plan.rules[1].words[0] == "wads0" and plan.rules[3].words[-1] == "wads649"
    assert plan_intercept_rules(entries) == plan  # deterministic
    assert plan.rules[0].payload() == {
        "rule_name": "qunyun-色情-1",
        "word_list": ["wporn0", "wporn1", "wporn2"],
        "intercept_type": 1,
    }


def test_what_does_not_fit_is_reported() -> None:
    long_word = "长" * 33
    entries = [WordEntry(long_word, "ads"), *words("ads", MAX_WORDS_PER_RULE * 3), *words("porn", 10)]
    plan = plan_intercept_rules(entries, max_rules=2)
    assert [(r.category, len(r.words)) for r in plan.rules] == [("porn", 10), ("ads", 300)]
    reasons = [(o.category, o.reason) for o in plan.overflow]
    assert reasons[0] == ("ads", "too_long") and plan.overflow[0].word == long_word
    assert reasons.count(("ads", "no_room")) == 600 and len(reasons) == 601
    full = plan_intercept_rules(words("ads", 300 * 101))
    assert len(full.rules) == 100 and len(full.overflow) == 300


def test_rule_names_stay_within_twenty_characters_and_unique() -> None:
    entries = words("一个非常非常非常非常长的自定义分类甲", 1) + words("一个非常非常非常非常长的自定义分类乙", 1)
    plan = plan_intercept_rules(entries)
    names = [r.name for r in plan.rules]
    assert all(1 <= len(n) <= MAX_RULE_NAME for n in names)
    assert len(set(names)) == 2

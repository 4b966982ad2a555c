"""Policies: strict validation naming the field path, defaults, round trips, compiled once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qunyun.errors import InvalidInput
from qunyun.moderation.policy import (
    DEFAULT_EXEMPT,
    DEFAULT_LADDER,
    Policy,
    policy_from_dict,
    policy_from_words,
    policy_from_yaml,
)
from qunyun.moderation.types import Action, RuleKind, WordEntry

POLICIES = Path(__file__).parent.parent / "fixtures" / "moderation" / "policies"


def refused(data: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        policy_from_dict(data)
    return caught.value


def test_words_alone_make_a_policy_with_defaults() -> None:
    policy = policy_from_dict({"words": ["加微信", {"word": "博彩", "category": "赌博"}]})
    assert policy.words == (WordEntry("加微信", "custom"), WordEntry("博彩", "gambling"))
    assert [(r.name, r.kind, r.action) for r in policy.rules] == [("words", RuleKind.WORDS, Action.LADDER)]
    assert policy.ladder == DEFAULT_LADDER == (Action.WARN, Action.WARN, Action.KICK)
    assert policy.exempt_roles == DEFAULT_EXEMPT == ("owner", "admin", "kol")
    assert (policy.blacklist_scope, policy.dry_run, policy.mute_minutes) == ("group", False, 60)
    assert policy_from_dict({}).rules[0].kind is RuleKind.WORDS


def test_the_example_policy_loads_and_round_trips() -> None:
    policy = policy_from_yaml((POLICIES / "community.yaml").read_text(encoding="utf-8"))
    assert {r.kind for r in policy.rules} == set(RuleKind)
    words_rule = policy.rules[0]
    assert words_rule.categories == frozenset({"gambling", "porn"})
    flood = next(r for r in policy.rules if r.kind is RuleKind.FLOOD)
    assert (flood.count, flood.seconds, flood.identical, flood.identical_seconds) == (5, 10, 3, 300)
    assert policy.words[-1] == WordEntry("赌场", "gambling", pinyin=True)
    assert policy.blacklist_scope == "community"
    again = policy_from_dict(policy.to_dict())
    assert again == policy
    assert again.to_dict() == policy.to_dict()
    for other in (policy_from_dict({}), policy_from_words([WordEntry("博彩", "gambling", pinyin=True)])):
        assert policy_from_dict(other.to_dict()) == other


def test_categories_accept_ids_chinese_aliases_and_custom_names() -> None:
    policy = policy_from_dict(
        {"words": [{"word": "a1b2", "category": c} for c in ("色情", "porn", "PORN", " 诈骗 ", "Fraud")]}
    )
    assert [w.category for w in policy.words] == ["porn"]  # one word, listed five times: the first wins
    cats = [
        policy_from_dict({"words": [{"word": "x" + str(i), "category": c}]}).words[0].category
        for i, c in enumerate(("竞品", "自定义", " 诈骗 ", "Fraud"))
    ]
    assert cats == ["competitor", "custom", "诈骗", "fraud"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"wrods": []}, "wrods"),
        ({"words": "加微信"}, "words"),
        ({"words": [{"word": "x", "category": ""}]}, "words[0].category"),
        ({"words": [{"word": "x", "category": "  "}]}, "words[0].category"),
        ({"words": [{"category": "ads"}]}, "words[0].word"),
        ({"words": [{"word": "x", "pinyin": "yes"}]}, "words[0].pinyin"),
        ({"words": ["ok", ""]}, "words[1]"),
        ({"words": ["x" * 65]}, "words[0]"),
        ({"words": [{"word": "x", "colour": "red"}]}, "words[0].colour"),
        ({"rules": [{"kind": "words"}, {"kind": "flood", "count": 5, "seconds": "ten"}]}, "rules[1].seconds"),
        ({"rules": [{"kind": "flood", "count": 1}]}, "rules[0].count"),
        ({"rules": [{"kind": "flood"}]}, "rules[0].count"),
        ({"rules": [{"kind": "flood", "identical_seconds": 60, "count": 3}]}, "rules[0].identical"),
        ({"rules": [{"kind": "flood", "count": True}]}, "rules[0].count"),
        ({"rules": [{"kind": "spam"}]}, "rules[0].kind"),
        ({"rules": [{"name": "x"}]}, "rules[0].kind"),
        ({"rules": [{"kind": "words", "action": "ban"}]}, "rules[0].action"),
        ({"rules": [{"kind": "words", "action": "allow"}]}, "rules[0].action"),
        ({"rules": [{"kind": "words", "seconds": 10}]}, "rules[0].seconds"),
        ({"rules": [{"kind": "links", "allowed_domains": ["not a domain"]}]}, "rules[0].allowed_domains[0]"),
        ({"rules": [{"kind": "media", "msg_types": ["image", "voice"]}]}, "rules[0].msg_types[1]"),
        ({"rules": [{"kind": "media", "msg_types": []}]}, "rules[0].msg_types"),
        ({"rules": [{"kind": "media", "use_words": False}]}, "rules[0].keywords"),
        ({"rules": [{"kind": "contact", "detectors": ["phone", "phone"]}]}, "rules[0].detectors[1]"),
        ({"rules": [{"kind": "new_member", "hours": 0}]}, "rules[0].hours"),
        ({"rules": [{"kind": "new_member", "forbid": ["links", "voice"]}]}, "rules[0].forbid[1]"),
        ({"rules": [{"kind": "words", "categories": []}]}, "rules[0].categories"),
        ({"rules": [{"kind": "words", "mute_minutes": 0}]}, "rules[0].mute_minutes"),
        ({"rules": [{"kind": "words"}, {"kind": "words"}]}, "rules[1].name"),
        ({"rules": {"kind": "words"}}, "rules"),
        ({"rules": ["words"]}, "rules[0]"),
        ({"ladder": []}, "ladder"),
        ({"ladder": ["warn", "ladder"]}, "ladder[1]"),
        ({"blacklist_scope": "world"}, "blacklist_scope"),
        ({"dry_run": "no"}, "dry_run"),
        ({"exempt_roles": ["owner", 3]}, "exempt_roles[1]"),
        ({"exempt_roles": ["owner", "admins"]}, "exempt_roles[1]"),
        ({"exempt_roles": "owner"}, "exempt_roles"),
        ({"mute_minutes": -5}, "mute_minutes"),
    ],
)
def test_every_error_names_its_field(data: Any, field: str) -> None:
    error = refused(data)
    assert error.field == field
    assert error.message.startswith(f"{field}: ")


def test_errors_are_localized() -> None:
    error = refused({"rules": [{"kind": "flood", "count": 5, "seconds": 0}]})
    assert error.localized("zh") == "rules[0].seconds：应为 1 到 86400 之间的整数"
    assert error.localized("en") == "rules[0].seconds: must be a whole number from 1 to 86400"
    assert "unknown field" in refused({"colour": 1}).message


def test_a_policy_must_be_a_mapping() -> None:
    assert refused(["words"]).message == "policy: must be a mapping of names to values"
    assert policy_from_dict({"exempt_roles": []}).exempt_roles == ()
    with pytest.raises(InvalidInput) as caught:
        policy_from_yaml("words: [a, b\nrules: x")
    assert "line" in caught.value.message


def test_flood_defaults_and_history() -> None:
    policy = policy_from_dict(
        {"rules": [{"kind": "flood", "count": 5}, {"name": "same", "kind": "flood", "identical": 3}]}
    )
    assert (policy.rules[0].seconds, policy.rules[1].identical_seconds) == (10, 600)
    assert policy.compile().history_seconds == 600
    assert policy_from_dict({"words": ["x"]}).compile().history_seconds == 0


def test_policy_from_words_is_one_delete_rule() -> None:
    policy = policy_from_words([WordEntry("博彩", "gambling"), WordEntry("约炮", "porn"), WordEntry("博彩", "ads")])
    assert [w.word for w in policy.words] == ["博彩", "约炮"]
    assert policy.words[0].category == "gambling"
    assert [(r.kind, r.action) for r in policy.rules] == [(RuleKind.WORDS, Action.DELETE)]


def test_matchers_are_built_once_per_word_set() -> None:
    policy = policy_from_dict(
        {
            "words": [{"word": "博彩", "category": "赌博"}, {"word": "约炮", "category": "色情"}],
            "rules": [
                {"name": "a", "kind": "words", "categories": ["gambling"]},
                {"name": "b", "kind": "words", "categories": ["赌博"], "action": "kick"},
                {"name": "c", "kind": "words"},
                {"name": "d", "kind": "links"},
            ],
        }
    )
    compiled = policy.compile()
    a, b, c, d = compiled.rules
    assert a.matcher is b.matcher and a.matcher is not None
    assert c.matcher is not a.matcher and d.matcher is None
    assert compiled.exempt_roles == DEFAULT_EXEMPT


def test_ladder_resolution() -> None:
    compiled = Policy(ladder=(Action.WARN, Action.MUTE, Action.KICK)).compile()
    assert compiled.resolve(Action.LADDER, None) == (Action.WARN, 0)
    assert compiled.resolve(Action.LADDER, 1) == (Action.MUTE, 1)
    assert compiled.resolve(Action.LADDER, 7) == (Action.KICK, 2)
    assert compiled.resolve(Action.DELETE, 7) == (Action.DELETE, None)


def test_exempt_roles_are_the_roles_members_have() -> None:
    from qunyun.models.moderation import MemberRole
    from qunyun.moderation.policy import MEMBER_ROLES

    assert set(MEMBER_ROLES) == {str(role) for role in MemberRole}

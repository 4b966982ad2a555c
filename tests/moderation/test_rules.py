"""Rules: what fires on which message or join, the most severe action wins, ladders by strikes,
and the contact and link detectors against evasions and against ordinary chat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qunyun.moderation.policy import CompiledPolicy, policy_from_dict, policy_from_yaml
from qunyun.moderation.rules import evaluate, firings
from qunyun.moderation.types import Action, MessageContext, Recent, RuleKind

POLICIES = Path(__file__).parent.parent / "fixtures" / "moderation" / "policies"
S = 1_000_000
T0 = 1_780_000_000 * S
OWN = frozenset({"wwqiji"})


def compiled(data: dict[str, Any]) -> CompiledPolicy:
    return policy_from_dict(data).compile()


def msg(text: str | None = None, msg_type: str = "text", **kw: Any) -> MessageContext:
    return MessageContext(id=kw.pop("id", "m1"), ts=kw.pop("ts", T0), msg_type=msg_type, text=text, **kw)


def join(name: str = "", **kw: Any) -> MessageContext:
    return MessageContext(id="j1", ts=T0, msg_type=None, member_name=name, **kw)


@pytest.fixture(scope="module")
def community() -> CompiledPolicy:
    return policy_from_yaml((POLICIES / "community.yaml").read_text(encoding="utf-8")).compile()


def test_nothing_fires_on_ordinary_chat(community: CompiledPolicy) -> None:
    for text in (
        "今晚骑行 8 点集合，管理员测试一下群公告",
        "我女儿也想参加，陆老师带队吗？",
        "订单号 20261203123456 已经发货了",
        "see the docs.info page for details",
        "他在群里很有威信，微心愿活动报名中",
        "我的快递单号 7312345678901 到了吗",
        "2026年12月3日 13:45 出发",
    ):
        decision = evaluate(community, msg(text))
        assert decision.action is Action.ALLOW, (text, decision)
        assert decision.to_json() == {"id": "m1", "action": "allow", "rule": None, "category": None, "matches": []}


def test_a_word_fires_with_its_span_and_category(community: CompiledPolicy) -> None:
    decision = evaluate(community, msg("周末来博彩吗"))
    assert (decision.action, decision.rule, decision.rule_kind, decision.category) == (
        Action.DELETE,
        "敏感词",
        RuleKind.WORDS,
        "gambling",
    )
    assert decision.to_json()["matches"] == [{"word": "博彩", "start": 3, "end": 5}]


def test_the_allow_list_wins_over_a_word(community: CompiledPolicy) -> None:
    assert evaluate(community, msg("我在做博彩业研究")).action is Action.ALLOW


def test_categories_pick_the_rule(community: CompiledPolicy) -> None:
    decision = evaluate(community, msg("某某单车更便宜"))
    assert (decision.rule, decision.category, decision.action) == ("广告词", "competitor", Action.WARN)


def test_the_most_severe_action_wins_and_others_are_named(community: CompiledPolicy) -> None:
    decision = evaluate(community, msg("刷单返利 博彩"))
    assert (decision.rule, decision.action) == ("敏感词", Action.DELETE)
    assert decision.detail["also"] == ["广告词"]
    fired = firings(community, msg("刷单返利 博彩"))
    assert [(f.rule, f.action) for f in fired] == [("敏感词", Action.DELETE), ("广告词", Action.WARN)]


def test_ties_go_to_the_earlier_rule() -> None:
    policy = compiled(
        {
            "words": ["博彩"],
            "rules": [
                {"name": "first", "kind": "contact", "action": "delete"},
                {"name": "second", "kind": "words", "action": "delete"},
            ],
        }
    )
    assert evaluate(policy, msg("博彩 加我微信")).rule == "first"


def test_ladder_rules_follow_the_members_strikes(community: CompiledPolicy) -> None:
    text = "有事加我微信"
    assert evaluate(community, msg(text)).action is Action.WARN
    assert evaluate(community, msg(text), strikes=1).action is Action.WARN
    decision = evaluate(community, msg(text), strikes=2)
    assert (decision.action, decision.detail["ladder_step"]) == (Action.KICK, 3)
    assert evaluate(community, msg(text), strikes=9).action is Action.KICK
    # a ladder rule counts as its step when compared with fixed actions
    assert evaluate(community, msg("刷单返利 博彩"), strikes=2).rule == "广告词"


@pytest.mark.parametrize(
    "text",
    [
        "加我V信",
        "加 w x 详聊",
        "微❤同号",
        "有意者vx: abc_123",
        "wx: abc_123",
        "我的微信号是qiji2026",
        "wxid_8a7s6d5f4g",
        "电话 138 1234 5678",
        "138-1234-5678",
        "１３８１２３４５６７８",
        "一三八一二三四五六七八",
        "幺三八 幺二三四 五六七八",
        "+86 139 0000 1111",
        "手机13912345678速来",
        "QQ 12345678",
        "邮箱 hi@example.cn",
        "加v了解",
        "➕V 看主页",
        "v\u200b信",
        "1 3 8 1 2 3 4 5 6 7 8",
        "V：abc_123",
        "Q号 12345678",
        "加我ѵх",
        "聯繫微信 abc_123",
    ],
)
def test_contact_details_are_found(community: CompiledPolicy, text: str) -> None:
    decision = evaluate(community, msg(text))
    assert decision.rule == "联系方式", (text, decision)
    assert decision.category == "contact" and decision.matches
    hit = decision.matches[0]
    assert 0 <= hit.start < hit.end <= len(text) and text[hit.start : hit.end] == hit.word


@pytest.mark.parametrize(
    "text",
    [
        "订单号 20261203123456",
        "订单号13812345678",
        "卡号 6222021234567890123",
        "我们在用微信支付",
        "加微博关注我们",
        "加vip群的请找群主",
        "今年 2026，明年 2027，后年 2028",
        "i use wechat every day",
        "vitamin c: 100mg",
        "Q: 怎么报名？",
        "他在群里很有威信",
        "大家的微心愿都实现了",
        "三点半集合，一二三四五六七八九十",
        "第 1, 3, 5, 7, 9, 11, 13, 15 号车",
    ],
)
def test_ordinary_numbers_and_words_are_not_contact(community: CompiledPolicy, text: str) -> None:
    assert evaluate(community, msg(text)).action is Action.ALLOW, text


def test_links_outside_the_allowed_domains() -> None:
    policy = compiled(
        {"rules": [{"kind": "links", "action": "delete", "allowed_domains": ["qiji.example.com", "jd.com"]}]}
    )
    for text in (
        "领券 https://spam.cn/a?b=1",
        "访问 www.spam.xyz",
        "去 abc123.top 看看",
        "ｗｗｗ．ｓｐａｍ．ｃｏｍ",
        "打开 spam点com",
        "spam[.]com",
        "docs.info/free-money",
        "http://evil.com/?to=jd.com",
    ):
        decision = evaluate(policy, msg(text))
        assert (decision.action, decision.rule) == (Action.DELETE, "links"), text
    for text in (
        "商城 https://qiji.example.com/item/1",
        "京东 item.jd.com/123 下单",
        "see the docs.info page",
        "文件 readme.md 和 config.py",
        "我邮箱 a@qq.com",
        "版本 1.2.3 发布",
    ):
        assert evaluate(policy, msg(text)).action is Action.ALLOW, text
    decision = evaluate(policy, msg("看 spam.cn 和 jd.com"))
    assert decision.detail["hosts"] == ["spam.cn"]
    assert decision.to_json()["matches"] == [{"word": "spam.cn", "start": 2, "end": 9}]
    # a link card whose target is not in its text
    assert evaluate(policy, msg("一篇文章", msg_type="link")).action is Action.DELETE


def test_miniprograms_media_and_message_types(community: CompiledPolicy) -> None:
    assert evaluate(community, msg("某商城小程序", msg_type="miniprogram")).rule == "小程序"
    assert evaluate(community, msg("骑迹商城 新品", msg_type="miniprogram")).action is Action.ALLOW
    assert evaluate(community, msg("兼职日结.pdf", msg_type="file")).rule == "文件视频"
    assert evaluate(community, msg("兼职日结.pdf", msg_type="image")).action is Action.ALLOW
    assert evaluate(community, msg("骑行路线.pdf", msg_type="file")).action is Action.ALLOW
    any_image = compiled({"rules": [{"kind": "media", "msg_types": ["image"], "any": True, "use_words": False}]})
    assert evaluate(any_image, msg(None, msg_type="image")).rule == "media"
    assert evaluate(any_image, msg("hi")).action is Action.ALLOW


def test_flood_by_count_and_by_identical_messages(community: CompiledPolicy) -> None:
    four = tuple(Recent(T0 - i * S, f"消息{i}") for i in (8, 6, 4, 2))
    decision = evaluate(community, msg("第五条", recent=four))
    assert (decision.rule, decision.action, decision.detail["count"]) == ("刷屏", Action.MUTE, 5)
    assert decision.detail["mute_seconds"] == 30 * 60
    old = tuple(Recent(T0 - i * S, f"消息{i}") for i in (30, 20, 6, 2))
    assert evaluate(community, msg("第五条", recent=old)).action is Action.ALLOW
    same = (Recent(T0 - 200 * S, "快来 看看！"), Recent(T0 - 100 * S, "快来看看"))
    decision = evaluate(community, msg("快来看看!!", recent=same))
    assert (decision.rule, decision.detail["identical"]) == ("刷屏", 3)
    stale = (Recent(T0 - 400 * S, "快来看看"), Recent(T0 - 100 * S, "快来看看"))
    assert evaluate(community, msg("快来看看", recent=stale)).action is Action.ALLOW


def test_new_members_may_not_post_links_or_contact(community: CompiledPolicy) -> None:
    fresh = T0 - 3600 * S
    decision = evaluate(community, msg("看看 qiji.example.com", joined_ts=fresh))
    assert (decision.rule, decision.action) == ("新人", Action.DELETE)
    assert evaluate(community, msg("大家好", joined_ts=fresh)).action is Action.ALLOW
    assert evaluate(community, msg("骑迹商城", msg_type="miniprogram", joined_ts=fresh)).rule == "新人"
    settled = T0 - 25 * 3600 * S
    assert evaluate(community, msg("看看 qiji.example.com", joined_ts=settled)).action is Action.ALLOW


def test_joins_are_judged_by_name_card_and_corp(community: CompiledPolicy) -> None:
    assert evaluate(community, join("小王")).action is Action.ALLOW
    decision = evaluate(community, join("博彩代理小王"))
    assert (decision.rule, decision.action, decision.category) == ("群名片", Action.KICK, "gambling")
    assert evaluate(community, join("小王 vx: abc_123")).rule == "群名片"
    decision = evaluate(community, join("老李", member_corp="wwother", own_corps=OWN))
    assert (decision.rule, decision.detail["member_corp"]) == ("其他企业", "wwother")
    assert evaluate(community, join("老李", member_corp="wwqiji", own_corps=OWN)).action is Action.ALLOW
    assert evaluate(community, join("老李", member_corp="wwpartner01", own_corps=OWN)).action is Action.ALLOW
    assert evaluate(community, join("老李", member_corp="wwother")).action is Action.ALLOW  # our corps unknown
    # messages are not judged by the name card unless the rule says so
    assert evaluate(community, msg("你好", member_name="博彩代理")).action is Action.ALLOW
    on_messages = compiled({"words": ["博彩"], "rules": [{"kind": "name_card", "on_messages": True}]})
    assert evaluate(on_messages, msg("你好", member_name="博彩代理")).rule == "name_card"
    # a join is not judged by the message rules
    assert evaluate(compiled({"words": ["小王"]}), join("小王")).action is Action.ALLOW


def test_hits_point_into_the_original_text() -> None:
    policy = compiled({"rules": [{"kind": "contact"}]})
    text = "🎉🎉 加\u200b我 Ｖ信 领福利"
    decision = evaluate(policy, msg(text))
    hit = decision.matches[0]
    assert text[hit.start : hit.end] == "加\u200b我 Ｖ信"

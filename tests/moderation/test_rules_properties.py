"""Properties of the rules on any text: they never fail, every match is a span of the original
text, a decision is the most severe of the firings, and folding maps back exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qunyun.moderation.detect import find_accounts, find_links, find_phones, find_solicitation, fold
from qunyun.moderation.policy import policy_from_dict
from qunyun.moderation.rules import evaluate, firings
from qunyun.moderation.types import SEVERITY, Action, MessageContext, Recent

POLICY = policy_from_dict(
    {
        "words": ["博彩", {"word": "约炮", "category": "色情"}, "sex"],
        "rules": [
            {"kind": "words", "action": "delete"},
            {"kind": "contact"},
            {"kind": "links", "action": "kick", "allowed_domains": ["jd.com"]},
            {"kind": "flood", "count": 3, "identical": 2, "action": "mute"},
            {"kind": "new_member", "forbid": ["links", "contact"]},
            {"kind": "name_card", "on_messages": True},
        ],
    }
).compile()

# Text made of the pieces evasions are made of, so that the detectors' paths are all walked.
PIECES = st.sampled_from(
    [*"加我微信vVwWxX薇❤➕+@._-:：，。 一三八幺零0123456789１３８①⑪ⓥ𝐯\u200b\u3000🎉点号是",
     "wxid_", "qq", "www.", "http://", ".com", ".info/", "博彩", "约炮", "sex", "订单号", "jd.com"]
)  # fmt: skip
TEXTS = st.one_of(st.text(max_size=60), st.lists(PIECES, max_size=25).map("".join))


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_detectors_report_spans_of_the_original_text(text: str) -> None:
    folded = fold(text)
    for find in (find_phones, find_accounts, find_solicitation, find_links):
        previous_end = 0
        for found in find(folded):
            assert 0 <= found.start < found.end <= len(text)
            assert found.start >= previous_end  # disjoint, in order
            previous_end = found.end


@settings(max_examples=300, deadline=None)
@given(TEXTS, TEXTS, st.integers(min_value=0, max_value=5) | st.none())
def test_a_decision_is_the_most_severe_firing(text: str, name: str, strikes: int | None) -> None:
    ctx = MessageContext(
        id="m", ts=10**15, msg_type="text", text=text, member_name=name, joined_ts=10**15 - 1,
        recent=(Recent(10**15 - 1, text),),
    )  # fmt: skip
    fired = firings(POLICY, ctx, strikes)
    decision = evaluate(POLICY, ctx, strikes)
    assert decision.action is not Action.LADDER
    if not fired:
        assert decision.action is Action.ALLOW and decision.rule is None and not decision.matches
        return
    assert SEVERITY[decision.action] == max(SEVERITY[f.action] for f in fired)
    assert decision.rule == next(f.rule for f in fired if f.action is decision.action)
    for hit in decision.matches:
        source = name if decision.rule == "name_card" else text
        assert 0 <= hit.start < hit.end <= len(source)

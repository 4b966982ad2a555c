"""Moderation in the simulated community: the spammers' texts are caught by the default policy
(evasions included) and the ordinary members' texts are not; in the demo's community the
default policy warns a spammer twice and then removes them through the simulator connector,
the moderation log shows it, and no ordinary member is punished."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.models import Event, Member, MembershipSpan, ModerationDecision, ModerationPolicy, Role, Staff
from qunyun.moderation.policy import CompiledPolicy, policy_from_dict
from qunyun.moderation.rules import evaluate
from qunyun.moderation.service import list_decisions
from qunyun.moderation.types import Action, MessageContext, Recent
from qunyun.moderation.wordfiles import default_words
from qunyun.simulate import personas, texts
from qunyun.simulate.demo import _configure_groups, demo_scenario
from qunyun.simulate.runner import Simulation, is_warning, moderation_settings, setup_organisation

SECOND = 1_000_000


def default_policy() -> CompiledPolicy:
    """The demo's policy as the runner creates it: the default words and rules, shared sites allowed."""
    words = [{"word": w.word, "category": w.category} for w in default_words()]
    return policy_from_dict({**moderation_settings(), "words": words}).compile()


def judge(policy: CompiledPolicy, text: str, msg_type: str = "text", recent: tuple[Recent, ...] = ()) -> Action:
    return evaluate(
        policy, MessageContext(id="m", ts=1000 * SECOND, msg_type=msg_type, text=text, recent=recent)
    ).action


def persona_names(n: int = 400) -> tuple[str, ...]:
    rng = random.Random(7)
    return tuple(dict.fromkeys(personas.draw_persona(rng).display_name for _ in range(n)))


def test_every_spam_text_is_caught_by_the_default_policy() -> None:
    policy = default_policy()
    assert set(texts.SPAM) == set(personas.SPAM_KINDS)
    rng = random.Random(1)
    for kind, templates in texts.SPAM.items():
        for msg_type, template in templates:
            for _ in range(5):
                text = texts.fill(rng, template)
                if kind == "flood":
                    # Clean on its own; the FLOOD_BURST-th identical message in a row fires.
                    assert judge(policy, text, msg_type) is Action.ALLOW, text
                    before = tuple(Recent((1000 - 30 * i) * SECOND, text) for i in range(texts.FLOOD_BURST - 1, 0, -1))
                    assert judge(policy, text, msg_type, before) is Action.WARN, text
                else:
                    assert judge(policy, text, msg_type) is Action.WARN, text


def test_ordinary_texts_never_trip_the_default_policy() -> None:
    policy = default_policy()
    ordinary = texts.ordinary_texts(persona_names())
    assert len(ordinary) > 600
    tripped = [t for t in ordinary if judge(policy, t) is not Action.ALLOW]
    tripped += [
        t for t in texts.SHARED_LINKS if judge(policy, texts.fill(random.Random(2), t), "link") is not Action.ALLOW
    ]
    assert tripped == []
    # A shared link to another site is caught (the links rule is on, with the shared sites allowed).
    assert judge(policy, "看看这个 https://bike-deals.top/x", "link") is Action.WARN


def test_a_moderation_warning_is_recognised_and_a_welcome_is_not() -> None:
    from qunyun.locale import Msg

    for language in ("zh", "en"):
        assert is_warning(Msg("moderation.engine.warn.text", name="阿杰", rule="敏感词").render(language))
    assert not is_warning("@阿杰 欢迎加入骑迹·华东骑友1群！")


@pytest.mark.usefixtures("db")
def test_the_demo_community_warns_a_spammer_twice_then_removes_them(db: sessionmaker[Session]) -> None:
    end = datetime(2026, 3, 29, 21, 30).astimezone()
    scenario = demo_scenario(seed=4, days=10, members=300, end=end)
    with unit_of_work(db) as session:
        org = setup_organisation(session, scenario, slug="qiji", name="骑迹单车", password="demo-pass-3")
    run = Simulation(scenario, org.org_id, factory=db, on_groups=_configure_groups)
    result = run.run()
    world = run.world
    spammers = {a.id for a in world.agents if a.persona.spammer}
    assert result.jobs_pending == 0
    assert result.kicks == 0  # no owner removes anyone by hand: the policy does
    with unit_of_work(db, write=False) as session:
        policy = session.scalars(select(ModerationPolicy).where(ModerationPolicy.org_id == org.org_id)).one()
        assert policy.target_key == "organisation" and len(policy.words) == len(default_words())
        members = {m.id: m.external_id for m in session.scalars(select(Member).where(Member.org_id == org.org_id))}
        decisions = session.scalars(
            select(ModerationDecision)
            .where(ModerationDecision.org_id == org.org_id)
            .order_by(ModerationDecision.at, ModerationDecision.id)
        ).all()
        assert decisions
        # Only spammers are judged: no ordinary member is warned, muted or removed.
        assert {members[d.member_id] for d in decisions} <= spammers
        ladder: dict[int, list[str]] = defaultdict(list)
        for d in decisions:
            ladder[d.member_id].append(d.action)
        removed = [m for m, steps in ladder.items() if "kick" in steps]
        assert removed, dict(ladder)
        for member_id in ladder:
            steps = ladder[member_id]
            assert steps[: len(steps)] == ["warn", "warn", "kick"][: len(steps)], steps
        assert result.removed == len(removed)
        # The kick went through the simulator connector: the member left, reason removed.
        for member_id in removed:
            assert not any(world.sim.is_member(members[member_id], g) for g in world.groups)
            spans = session.scalars(select(MembershipSpan).where(MembershipSpan.member_id == member_id)).all()
            assert spans and all(s.left_at is not None and s.leave_event_id for s in spans)
            reasons = session.scalars(select(Event.reason).where(Event.id.in_([s.leave_event_id for s in spans])))
            assert "removed" in set(reasons)
        # Members heard the warnings (an @-mention naming the rule) and did not answer them with 欢迎.
        bot = [m for m in world.sim.state.messages.values() if m.by_bot and is_warning(m.text)]
        assert all("「" in m.text for m in bot)
        # The moderation log as the lead sees it: message, rule, word, action.
        lead = session.scalars(select(Staff).where(Staff.org_id == org.org_id, Staff.username == "lead")).one()
        scope = Scope(staff_id=lead.id, org_id=org.org_id, role=Role.LEAD)
        views, total = list_decisions(session, scope, member_id=removed[0])
        assert total == 3
        assert sorted(v.decision.action for v in views) == ["kick", "warn", "warn"]
        assert all(v.decision.rule and v.decision.excerpt for v in views)

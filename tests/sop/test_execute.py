"""Firing runs: the bot's through the two-phase send path under ``sop:run:<id>``, a person's as a
task; pauses, dismissed groups, lateness and platform caps; the run's state follows."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.connectors.base import get_profile
from qunyun.connectors.dispatch import confirm
from qunyun.db.session import unit_of_work
from qunyun.models import Group, OutboundAction, SopRun, StaffTask
from qunyun.sop import runs, service
from qunyun.sop.execute import claim_due, fire_runs
from qunyun.sop.types import Executor, RunState, StepSpec
from qunyun.tasks.service import complete
from tests.sop.conftest import SopWorld, daily_steps, make_world, tomorrow


def applied(world: SopWorld, steps: list[StepSpec] | None = None, *, kind: str = "daily", group: str = "S1") -> int:
    with unit_of_work(world.db) as s:
        plan = service.create_plan(s, world.scope(), name=f"计划{group}", kind=kind, steps=steps or daily_steps())
        runs.apply(s, world.scope(), plan.id, world.groups[group], tomorrow())
        return plan.id


def fire_first_day(world: SopWorld, count: int = 3) -> list[SopRun]:
    """Claim the first ``count`` runs at their time and fire them; then the send jobs run."""
    rows = world.runs()[:count]
    at = rows[-1].due_at + timedelta(seconds=1)
    with unit_of_work(world.db) as s:
        assert claim_due(s, at) == count
    for row in rows:
        with unit_of_work(world.db) as s:
            fire_runs(s, [row.id], row.due_at)
    world.run_jobs()
    return rows


def states(world: SopWorld) -> list[RunState]:
    with world.db() as s:
        return [r.state for r in runs.list_runs(s, world.scope())][:3]


def test_the_bot_sends_the_rendered_script_once_and_a_person_gets_the_assisted_step(sop_world: SopWorld) -> None:
    applied(sop_world, daily_steps(Executor.OPERATOR))
    rows = fire_first_day(sop_world)
    assert states(sop_world) == [RunState.SENT, RunState.ASSIGNED, RunState.SENT]
    sent = [m.text for m in sop_world.sim.sim.messages_in("S1") if m.by_bot]
    d = tomorrow()
    weekday = "星期" + "一二三四五六日"[d.weekday()]
    assert sent[0] == f"S1 群的朋友们早上好！今天是{d.month}月{d.day}日{weekday}"
    assert sent[1] == "晚安，S1 群，明天见"
    with sop_world.db() as s:
        keys = sorted(s.scalars(select(OutboundAction.idempotency_key)))
        assert keys == sorted(f"sop:run:{r.id}" for r in (rows[0], rows[2]))
        task = s.scalars(select(StaffTask).where(StaffTask.kind == "sop_step")).one()
        assert task.assignee_id == sop_world.staff["operator"]  # the group's operator, by the step's executor
        assert task.detail["payload"]["text"] == "今天的抽奖开始啦，群里现有42位小伙伴\n\n回复 1 参与"
        assert task.detail["materials"][0]["value"] == "https://example.com/lottery.png"
        assert task.detail["evidence_required"] is True
    # Firing again (a job run twice, two jobs naming one run) changes nothing.
    with unit_of_work(sop_world.db) as s:
        again = fire_runs(s, [r.id for r in rows], rows[-1].due_at)
    assert again.sent == again.assigned == []
    sop_world.run_jobs()
    assert len([m for m in sop_world.sim.sim.messages_in("S1") if m.by_bot]) == 2
    # The person marks the step done with a screenshot: the run is done.
    with unit_of_work(sop_world.db) as s:
        screenshot = b"\x89PNG\r\n\x1a\n" + b"\0" * 64  # the step asks for one (tests/tasks/test_evidence_required.py)
        complete(s, sop_world.scope("operator"), task.id, evidence_text="已发，见截图", evidence_image=screenshot)
    assert states(sop_world)[1] == RunState.DONE


def test_paused_dismissed_and_late_runs_do_not_go_out(sop_world: SopWorld) -> None:
    plan_id = applied(sop_world)
    applied(sop_world, group="S2")
    with unit_of_work(sop_world.db) as s:
        service.pause_group(s, sop_world.scope(), sop_world.groups["S2"], True)
    rows = sop_world.runs()
    first_s1 = [r for r in rows if r.group_id == sop_world.groups["S1"]][:3]
    first_s2 = [r for r in rows if r.group_id == sop_world.groups["S2"]][:1]
    # 08:00 fires at 11:00 (over the two-hour limit): expired. 12:00 fires in time.
    with unit_of_work(sop_world.db) as s:
        claim_due(s, first_s1[1].due_at)
        out = fire_runs(s, [first_s1[0].id, first_s1[1].id, first_s2[0].id], first_s1[0].due_at + timedelta(hours=3))
    assert out.expired == [first_s1[0].id] and out.skipped == [first_s2[0].id]
    assert out.sent == [first_s1[1].id]
    with unit_of_work(sop_world.db) as s:
        service.pause_plan(s, sop_world.scope(), plan_id, True)
        claim_due(s, first_s1[2].due_at)
        out = fire_runs(s, [first_s1[2].id], first_s1[2].due_at)
    assert out.skipped == [first_s1[2].id]
    with unit_of_work(sop_world.db) as s:
        service.pause_plan(s, sop_world.scope(), plan_id, False)
        s.get_one(Group, sop_world.groups["S1"]).status = "dismissed"
    nxt = sop_world.runs(group_id=sop_world.groups["S1"])[3]
    with unit_of_work(sop_world.db) as s:
        claim_due(s, nxt.due_at)
        out = fire_runs(s, [nxt.id], nxt.due_at)
    assert out.skipped == [nxt.id]
    with sop_world.db() as s:
        reasons = dict(s.execute(select(SopRun.id, SopRun.reason).where(SopRun.state != "planned")).all())
    assert reasons[first_s1[0].id] == "late" and reasons[first_s2[0].id] == "paused"
    assert reasons[nxt.id] == "dismissed"


@pytest.fixture
def wecom_world(db: sessionmaker[Session]) -> Iterator[SopWorld]:
    yield from make_world(db, get_profile("wecom"))


@pytest.fixture
def telegram_world(db: sessionmaker[Session]) -> Iterator[SopWorld]:
    yield from make_world(db, get_profile("telegram"))


def test_wecom_mass_sends_wait_for_the_owner_and_respect_the_monthly_cap(wecom_world: SopWorld) -> None:
    world = wecom_world
    steps = [StepSpec(at=time(10), category="内容推送", script=f"第{n}天的推送", day=n) for n in range(35)]
    applied(world, steps, kind="campaign")
    rows = world.runs()
    now = rows[0].due_at + timedelta(seconds=1)  # all 35 fired now, in one month
    with unit_of_work(world.db) as s:
        for r in rows:
            s.get_one(SopRun, r.id).state = "queued"
    with unit_of_work(world.db) as s:
        out = fire_runs(s, [r.id for r in rows], now)
    local = now.astimezone(rows[0].due_at.tzinfo)
    cap = calendar.monthrange(local.year, local.month)[1]
    assert len(out.sent) == cap and len(out.failed) == 35 - cap
    world.run_jobs()
    with world.db() as s:
        first = runs.list_runs(s, world.scope())[0]
        assert first.state == RunState.AWAITING_CONFIRMATION
        task = s.scalars(select(StaffTask).where(StaffTask.outbound_action_id == first.action_id)).one()
        assert task.kind == "confirm_send"
    with unit_of_work(world.db) as s:  # WeCom reports the owner pressed send
        assert first.action_id is not None
        confirm(s, first.action_id)
    with world.db() as s:
        assert runs.list_runs(s, world.scope())[0].state == RunState.CONFIRMED


def test_telegram_runs_over_twenty_a_minute_wait_a_minute(telegram_world: SopWorld) -> None:
    world = telegram_world
    steps = [StepSpec(at=time(10), category="内容推送", script=f"第{n}条") for n in range(22)]
    applied(world, steps)
    rows = world.runs()[:22]
    at = rows[0].due_at
    with unit_of_work(world.db) as s:
        claim_due(s, at)
        out = fire_runs(s, [r.id for r in rows], at)
    assert len(out.sent) == 20 and len(out.delayed) == 2
    with world.db() as s:
        delayed = list(s.scalars(select(SopRun).where(SopRun.id.in_(out.delayed))))
        assert {r.state for r in delayed} == {"planned"}
        assert {r.fire_at for r in delayed} == {at + timedelta(minutes=1)}
        assert {r.due_at for r in delayed} == {at}
        assert s.scalar(select(func.count()).select_from(OutboundAction)) == 20


def test_a_per_minute_cap_declared_by_the_profile_is_the_one_applied(
    telegram_world: SopWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Telegram's profile declares ``messages_per_minute_per_group``: a profile saying 5 holds a
    group to 5 sends a minute (the built-in 20 is only for a profile that declares nothing)."""
    world = telegram_world
    profile = get_profile("telegram")
    assert profile.limits["messages_per_minute_per_group"] == 20
    strict = replace(profile, limits={**profile.limits, "messages_per_minute_per_group": 5})
    monkeypatch.setattr("qunyun.sop.execute.get_profile", lambda platform: strict)
    applied(world, [StepSpec(at=time(10), category="内容推送", script=f"第{n}条") for n in range(8)])
    rows = world.runs()[:8]
    with unit_of_work(world.db) as s:
        claim_due(s, rows[0].due_at)
        out = fire_runs(s, [r.id for r in rows], rows[0].due_at)
    assert len(out.sent) == 5 and len(out.delayed) == 3


def test_due_runs_are_claimed_once(sop_world: SopWorld) -> None:
    applied(sop_world)
    first = sop_world.runs()[0]
    with unit_of_work(sop_world.db) as s:
        assert claim_due(s, first.due_at - timedelta(seconds=1)) == 0
        assert claim_due(s, first.due_at) == 1
        assert claim_due(s, first.due_at) == 0
    sop_world.run_jobs()  # the sop.fire job enqueued with the claim
    with sop_world.db() as s:
        assert runs.list_runs(s, sop_world.scope())[0].state == RunState.SENT
        assert s.scalar(select(func.count()).select_from(SopRun).where(SopRun.fired_at.is_not(None))) == 1
    assert datetime.now(UTC) < first.due_at  # (fired early: the test moved the claim's clock only)

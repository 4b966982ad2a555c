"""Runs: materialized per group × step × day at the organisation's local time, future only,
rebuilt when a plan changes, and given to groups through attachments."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import update

from qunyun.db.session import unit_of_work
from qunyun.errors import Forbidden, NotFound
from qunyun.models import Group, SopRun
from qunyun.sop import runs, service
from qunyun.sop.service import QuietHours
from qunyun.sop.types import RunState, StepSpec
from tests.sop.conftest import ZONE, SopWorld, campaign_steps, daily_steps, local, tomorrow


def make_plan(world: SopWorld, kind: str = "daily", name: str = "日常节奏", **kw: object) -> int:
    steps = daily_steps() if kind == "daily" else campaign_steps()
    with unit_of_work(world.db) as s:
        return service.create_plan(s, world.scope(), name=name, kind=kind, steps=steps, **kw).id  # type: ignore[arg-type]


def test_a_daily_plan_makes_28_days_of_runs_at_local_times(sop_world: SopWorld) -> None:
    plan_id = make_plan(sop_world)
    start = tomorrow()
    with unit_of_work(sop_world.db) as s:
        applied = runs.apply(s, sop_world.scope("admin"), plan_id, sop_world.groups["S1"], start)
    assert applied.runs == 28 * 3
    rows = sop_world.runs(group_id=sop_world.groups["S1"])
    assert len(rows) == 84
    assert {r.due_at.astimezone(ZONE).time() for r in rows} == {time(8), time(12), time(20)}
    assert rows[0].due_at == local(start, 8)
    assert rows[-1].due_at == local(start + timedelta(days=27), 20)
    assert {r.state for r in rows} == {"planned"}
    with unit_of_work(sop_world.db) as s:
        again = runs.apply(s, sop_world.scope(), plan_id, sop_world.groups["S1"], start)
    assert again.runs == 0 and again.application.id == applied.application.id


def test_a_campaign_lands_on_its_day_offsets_and_skips_the_past(sop_world: SopWorld) -> None:
    plan_id = make_plan(sop_world, "campaign", "28天营")
    start = tomorrow() + timedelta(days=7)
    with unit_of_work(sop_world.db) as s:
        assert runs.apply(s, sop_world.scope(), plan_id, sop_world.groups["S1"], start).runs == 3
    assert [r.due_at for r in sop_world.runs()] == [
        local(start - timedelta(days=7), 9),
        local(start, 10),
        local(start + timedelta(days=14), 19, 30),
    ]
    # Started 8 days ago: D-7 and D0 are past, only D+14 is still to come.
    with unit_of_work(sop_world.db) as s:
        late = runs.apply(s, sop_world.scope(), plan_id, sop_world.groups["S2"], tomorrow() - timedelta(days=9))
    assert late.runs == 1


def test_quiet_hours_move_a_run_to_their_end(sop_world: SopWorld) -> None:
    steps = [
        StepSpec(at=time(7, 30), category="早安语", script="早"),
        StepSpec(at=time(23, 0), category="晚安语", script="晚"),
    ]
    with unit_of_work(sop_world.db) as s:
        plan = service.create_plan(
            s, sop_world.scope(), name="静默", kind="daily", steps=steps, quiet_hours=QuietHours(time(22), time(8))
        )
        runs.apply(s, sop_world.scope(), plan.id, sop_world.groups["S1"], tomorrow())
    first = sop_world.runs()[:3]
    d = tomorrow()
    assert [r.due_at for r in first] == [local(d, 8), local(d + timedelta(days=1), 8), local(d + timedelta(days=1), 8)]


def test_editing_a_plan_changes_future_runs_only(sop_world: SopWorld) -> None:
    plan_id = make_plan(sop_world)
    with unit_of_work(sop_world.db) as s:
        runs.apply(s, sop_world.scope(), plan_id, sop_world.groups["S1"], tomorrow())
    fired = sop_world.runs()[0]
    with unit_of_work(sop_world.db) as s:  # the first run went out already
        s.execute(update(SopRun).where(SopRun.id == fired.id).values(state="sent", fired_at=datetime.now(UTC)))
    new_steps = [StepSpec(at=time(9, 15), category="早安语", script="新的早安 {group_name}")]
    with unit_of_work(sop_world.db) as s:
        service.replace_steps(s, sop_world.scope("admin"), plan_id, new_steps)
    rows = sop_world.runs()
    assert rows[0].id == fired.id and rows[0].step_id == fired.step_id and rows[0].state == "sent"
    rest = rows[1:]
    assert len(rest) == 28
    assert {r.due_at.astimezone(ZONE).time() for r in rest} == {time(9, 15)}
    assert fired.step_id not in {r.step_id for r in rest}
    with sop_world.db() as s:
        _, steps = service.plan_steps(s, sop_world.scope(), plan_id)
    assert steps == new_steps


def test_a_run_due_but_held_back_by_a_cap_survives_an_edit(sop_world: SopWorld) -> None:
    """A run due a moment ago and put back a minute by a platform's per-minute cap (still planned,
    ``fire_at`` ahead) is not a future run: editing the plan keeps it, it is not lost."""
    plan_id = make_plan(sop_world)
    with unit_of_work(sop_world.db) as s:
        runs.apply(s, sop_world.scope(), plan_id, sop_world.groups["S1"], tomorrow())
    held = sop_world.runs()[0]
    now = datetime.now(UTC)
    with unit_of_work(sop_world.db) as s:
        s.execute(
            update(SopRun)
            .where(SopRun.id == held.id)
            .values(due_at=now - timedelta(seconds=30), fire_at=now + timedelta(seconds=30), reason="minute_cap")
        )
    with unit_of_work(sop_world.db) as s:
        service.replace_steps(s, sop_world.scope(), plan_id, [StepSpec(at=time(9), category="早安语", script="早")])
    rows = sop_world.runs()
    assert rows[0].id == held.id and rows[0].state == "planned" and rows[0].step_id == held.step_id
    assert len(rows) == 1 + 28 and {r.step_id for r in rows[1:]} != {held.step_id}


def test_attachments_reach_the_groups_of_a_playbook_now_and_later(sop_world: SopWorld) -> None:
    plan_id = make_plan(sop_world)
    campaign_id = make_plan(sop_world, "campaign", "营")
    book_group = sop_world.add_group("P1", playbook=True)
    with unit_of_work(sop_world.db) as s:
        service.attach(s, sop_world.scope(), plan_id, playbook_id=sop_world.playbook_id)
        service.attach(s, sop_world.scope(), campaign_id, community_id=sop_world.community_id)
    assert len(sop_world.runs(group_id=book_group, plan_id=plan_id)) >= 27 * 3
    assert sop_world.runs(group_id=sop_world.groups["S1"]) == []  # not the playbook's
    # A group created from the playbook later gets its plans when asked (or by the hourly pass).
    later = sop_world.add_group("P2", playbook=True, community=True)
    with unit_of_work(sop_world.db) as s:
        made = runs.apply_attached(s, later)
    assert made == len(sop_world.runs(group_id=later))
    campaign = sop_world.runs(group_id=later, plan_id=campaign_id)
    # Without a start day the campaign's first step (D-7) falls on the day the group got it.
    assert len(campaign) in (2, 3)  # D-7 at 09:00 today may already be past
    third = sop_world.add_group("P3", playbook=True)
    with unit_of_work(sop_world.db) as s:
        runs.extend_all(s, datetime.now(UTC))
    assert sop_world.runs(group_id=third, plan_id=plan_id)


def test_run_listing_follows_scope_and_pauses(sop_world: SopWorld) -> None:
    plan_id = make_plan(sop_world)
    with unit_of_work(sop_world.db) as s:
        runs.apply(s, sop_world.scope(), plan_id, sop_world.groups["S1"], tomorrow())
        runs.apply(s, sop_world.scope(), plan_id, sop_world.groups["S2"], tomorrow())
    with sop_world.db() as s:
        assert len(runs.list_runs(s, sop_world.scope("operator"))) == 84  # S1 only
        assert len(runs.list_runs(s, sop_world.scope("owner"))) == 168
        with pytest.raises(NotFound):
            runs.list_runs(s, sop_world.scope("operator"), group_id=sop_world.groups["S2"])
    with unit_of_work(sop_world.db) as s:
        service.pause_group(s, sop_world.scope(), sop_world.groups["S2"], True)
    with sop_world.db() as s:
        states = {r.group_external_id: r.state for r in runs.list_runs(s, sop_world.scope())}
    assert states == {"S1": RunState.PLANNED, "S2": RunState.PAUSED}
    with unit_of_work(sop_world.db) as s:
        service.pause_group(s, sop_world.scope(), sop_world.groups["S2"], False)
        service.pause_plan(s, sop_world.scope(), plan_id, True)
        s.get_one(Group, sop_world.groups["S1"]).status = "dismissed"
    with sop_world.db() as s:
        states = {r.group_external_id: r.state for r in runs.list_runs(s, sop_world.scope())}
    assert states == {"S1": RunState.SKIPPED, "S2": RunState.PAUSED}


def test_owners_cannot_apply(sop_world: SopWorld) -> None:
    plan_id = make_plan(sop_world)
    with sop_world.db() as s, pytest.raises(Forbidden):
        runs.apply(s, sop_world.scope("owner"), plan_id, sop_world.groups["S1"], tomorrow())

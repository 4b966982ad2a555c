"""Retrying a failed run (sop.retry): a send the platform refused, or one that found no route, is
sent again under a key of its own and received exactly once; quiet hours hold it back as they
would any run; only a failed run, in a group that is neither paused nor dismissed, by a lead, an
admin or the group's owner; the CLI's ``qunyun sop retry``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import time, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.connectors.base import get_profile
from qunyun.connectors.dispatch import transition
from qunyun.db.session import unit_of_work
from qunyun.errors import Conflict, Forbidden, NotFound
from qunyun.models import Group, Job, OutboundAction, OutboundState, SopRun, SopRunRetry
from qunyun.sop import retry, runs, service
from qunyun.sop.execute import claim_due, fire_runs
from qunyun.sop.runs import bucket_key
from qunyun.sop.types import RunState, StepSpec
from qunyun.timeutil import utcnow
from tests.sop.conftest import SopWorld, local, make_world, tomorrow

runner = CliRunner()
MORNING = [StepSpec(at=time(8, 0), category="早安语", script="{group_name}早上好")]


def plan_in(world: SopWorld, group: str, steps: list[StepSpec] | None = None, **quiet: time) -> int:
    with unit_of_work(world.db) as s:
        hours = service.QuietHours(**quiet) if quiet else None
        plan = service.create_plan(
            s, world.scope(), name=f"计划{group}", kind="daily", steps=steps or MORNING, quiet_hours=hours
        )
        runs.apply(s, world.scope(), plan.id, world.groups[group], tomorrow())
        return plan.id


def first_run(world: SopWorld, group: str) -> SopRun:
    return world.runs(group_id=world.groups[group])[0]


def fire(world: SopWorld, run: SopRun) -> None:
    """Take the run at its time, as sop.fire_due and sop.fire do; then the send's jobs run."""
    with unit_of_work(world.db) as s:
        claim_due(s, run.fire_at)
        fire_runs(s, [run.id], run.fire_at)
    world.run_jobs()


def state_of(world: SopWorld, run_id: int) -> RunState:
    with world.db() as s:
        return runs.get_run(s, world.scope(), run_id).state


def bot_messages(world: SopWorld, group: str) -> list[str]:
    return [m.text for m in world.sim.sim.messages_in(group) if m.by_bot]


def test_a_send_the_platform_refused_is_sent_again_once(sop_world: SopWorld) -> None:
    world = sop_world
    # A group the bot is not in yet: the simulated platform refuses the send (unknown_group).
    with unit_of_work(world.db) as s:
        group = Group(
            org_id=world.org_id,
            platform="simulator",
            external_id="S3",
            name="S3 群",
            connection_id=world.connection_id,
            owner_id=world.staff["owner"],
            member_count=10,
            status="active",
            created_at=utcnow(),
        )
        s.add(group)
        s.flush()
        world.groups["S3"] = group.id
    plan_in(world, "S3")
    run = first_run(world, "S3")
    fire(world, run)
    assert state_of(world, run.id) == RunState.FAILED
    with world.db() as s:
        failed = s.scalars(select(OutboundAction)).one()
        assert failed.idempotency_key == f"sop:run:{run.id}" and failed.state == "failed"

    world.sim.sim.create_group("S3 群", group_id="S3")  # the bot joined: the owner retries
    with unit_of_work(world.db) as s:
        retried = retry.retry_run(s, world.scope("owner"), run.id)
        assert (retried.state, retried.attempt, retried.action_id) == ("queued", 2, None)
    assert state_of(world, run.id) == RunState.QUEUED
    world.run_jobs()  # the sop.fire job the retry queued, then the send
    assert state_of(world, run.id) == RunState.SENT
    assert bot_messages(world, "S3") == ["S3 群早上好"]
    with world.db() as s:
        actions = {a.idempotency_key: a.state for a in s.scalars(select(OutboundAction))}
        assert actions == {f"sop:run:{run.id}": "failed", f"sop:run:{run.id}:2": "sent"}
        record = s.scalars(select(SopRunRetry)).one()
        assert (record.run_id, record.attempt, record.failed_action_id) == (run.id, 2, failed.id)
        assert record.failed_reason == retry.PLATFORM_REASON and "unknown_group" in record.failed_detail
        assert record.retried_by == world.staff["owner"]
        assert [r.attempt for r in retry.retries_of(s, world.scope(), run.id)] == [2]
        assert runs.get_run(s, world.scope(), run.id).attempt == 2

    # A sent run is not retried; running the jobs again sends nothing more.
    with unit_of_work(world.db) as s, pytest.raises(Conflict) as refused:
        retry.retry_run(s, world.scope(), run.id)
    assert refused.value.status_code == 409 and refused.value.msg is not None
    assert "已发送" in refused.value.localized("zh")
    world.run_jobs()
    assert bot_messages(world, "S3") == ["S3 群早上好"]


def test_a_run_without_a_route_waits_for_the_end_of_quiet_hours(sop_world: SopWorld) -> None:
    """The 20:00 run finds no route (its group on a connection of another platform) and fails;
    retried at 23:00 inside quiet hours 22:00-07:00 it is planned for 07:00 and sent then, though
    that is eleven hours after it was due (the lateness of a retry counts from the retry)."""
    world = sop_world
    evening = [StepSpec(at=time(20, 0), category="晚安语", script="晚安，{group_name}")]
    plan_in(world, "S2", evening, start=time(22, 0), end=time(7, 0))
    run = first_run(world, "S2")
    with unit_of_work(world.db) as s:
        s.get_one(Group, world.groups["S2"]).platform = "telegram"
    fire(world, run)
    with world.db() as s:
        stored = s.get_one(SopRun, run.id)
        assert (stored.state, stored.reason, stored.action_id) == ("failed", "no_route", None)
    with unit_of_work(world.db) as s:
        s.get_one(Group, world.groups["S2"]).platform = "simulator"

    day = tomorrow()
    at = local(day, 23, 0)
    with unit_of_work(world.db) as s:
        retried = retry.retry_run(s, world.scope(), run.id, now=at)
        assert retried.state == "planned"
    morning = local(day + timedelta(days=1), 7, 0)
    with world.db() as s:
        stored = s.get_one(SopRun, run.id)
        assert stored.fire_at == morning and stored.attempt_due_at == morning and stored.due_at == run.due_at
        assert s.scalar(select(Job.id).where(Job.key == f"sop.fire_due@{bucket_key(morning)}")) is not None
        assert s.scalars(select(SopRunRetry.failed_reason)).one() == "no_route"
    with unit_of_work(world.db) as s:
        assert claim_due(s, morning - timedelta(seconds=1)) == 0
        assert claim_due(s, morning) == 1
        fired = fire_runs(s, [run.id], morning + timedelta(seconds=5))
    assert fired.sent == [run.id]
    world.run_jobs()
    assert state_of(world, run.id) == RunState.SENT
    assert bot_messages(world, "S2") == ["晚安，S2 群"]


def test_who_may_retry_and_what(sop_world: SopWorld) -> None:
    world = sop_world
    plan_id = plan_in(world, "S1")
    plan_in(world, "S2")
    run = first_run(world, "S1")
    other = first_run(world, "S2")
    with unit_of_work(world.db) as s:
        for row in (run, other):  # failed as sop.fire leaves a run without a route
            stored = s.get_one(SopRun, row.id)
            stored.state, stored.reason = "failed", "no_route"
    # A planned run is not failed: 409 naming its state.
    planned = world.runs(group_id=world.groups["S1"])[1]
    with unit_of_work(world.db) as s, pytest.raises(Conflict) as not_failed:
        retry.retry_run(s, world.scope(), planned.id)
    assert "待执行" in not_failed.value.localized("zh")
    # The operator of S1 sees the run but does not own the group; the analyst only reads.
    for who in ("operator", "analyst"):
        with unit_of_work(world.db) as s, pytest.raises(Forbidden):
            retry.retry_run(s, world.scope(who), run.id)
    # S2 is outside the operator's and the admin's scope: 404, as a missing run.
    for who in ("operator", "admin"):
        with unit_of_work(world.db) as s, pytest.raises(NotFound):
            retry.retry_run(s, world.scope(who), other.id)
    with unit_of_work(world.db) as s, pytest.raises(NotFound):
        retry.retry_run(s, world.scope(), 10**12)
    # A paused plan or group, or a dismissed group: refused, the run stays failed.
    with unit_of_work(world.db) as s:
        service.pause_plan(s, world.scope(), plan_id, True)
    with unit_of_work(world.db) as s, pytest.raises(Conflict) as paused:
        retry.retry_run(s, world.scope(), run.id)
    assert "暂停" in paused.value.localized("zh")
    with unit_of_work(world.db) as s:
        service.pause_plan(s, world.scope(), plan_id, False)
        s.get_one(Group, world.groups["S2"]).status = "dismissed"
    with unit_of_work(world.db) as s, pytest.raises(Conflict) as dismissed:
        retry.retry_run(s, world.scope(), other.id)
    assert "解散" in dismissed.value.localized("zh")
    with world.db() as s:
        assert s.scalars(select(SopRunRetry)).all() == []
        assert {s.get_one(SopRun, r.id).state for r in (run, other)} == {"failed"}
    # The admin of S1 may; then it is queued and a second retry is refused.
    with unit_of_work(world.db) as s:
        assert retry.retry_run(s, world.scope("admin"), run.id).state == "queued"
    with unit_of_work(world.db) as s, pytest.raises(Conflict):
        retry.retry_run(s, world.scope("owner"), run.id)


def test_a_groups_failed_runs_are_retried_together(sop_world: SopWorld) -> None:
    world = sop_world
    plan_in(world, "S1")
    failed = world.runs(group_id=world.groups["S1"])[:3]
    with unit_of_work(world.db) as s:
        for row in failed:
            stored = s.get_one(SopRun, row.id)
            stored.state, stored.reason = "failed", "no_route"
    with unit_of_work(world.db) as s:
        out = retry.retry_failed(s, world.scope("owner"), group_id=world.groups["S1"], end=failed[1].due_at)
    assert out.retried == [failed[0].id] and out.refused == []
    with unit_of_work(world.db) as s:
        out = retry.retry_failed(s, world.scope(), group_id=world.groups["S1"])
    assert out.retried == [failed[1].id, failed[2].id]
    with unit_of_work(world.db) as s, pytest.raises(Forbidden):
        retry.retry_failed(s, world.scope("operator"), group_id=world.groups["S1"])


@pytest.fixture
def wecom_world(db: sessionmaker[Session]) -> Iterator[SopWorld]:
    yield from make_world(db, get_profile("wecom"))


def test_a_run_over_the_monthly_cap_is_refused_until_the_month_has_room(wecom_world: SopWorld) -> None:
    world = wecom_world
    steps = [StepSpec(at=time(10), category="内容推送", script=f"第{n}天的推送", day=n) for n in range(35)]
    with unit_of_work(world.db) as s:
        plan = service.create_plan(s, world.scope(), name="推送", kind="campaign", steps=steps)
        runs.apply(s, world.scope(), plan.id, world.groups["S1"], tomorrow())
    rows = world.runs()
    now = rows[0].due_at + timedelta(seconds=1)  # all 35 taken now, in one month
    with unit_of_work(world.db) as s:
        for r in rows:
            s.get_one(SopRun, r.id).state = "queued"
        out = fire_runs(s, [r.id for r in rows], now)
    over = out.failed[0]
    with unit_of_work(world.db) as s, pytest.raises(Conflict) as refused:
        retry.retry_run(s, world.scope(), over, now=now)
    assert "群发次数已用完" in refused.value.localized("zh")
    with world.db() as s:
        assert s.get_one(SopRun, over).reason == "monthly_cap" and s.scalars(select(SopRunRetry)).all() == []
    # One of the month's sends failed on the platform: its own retry has room (the failed send
    # it replaces no longer counts) and is handed on within the cap.
    world.run_jobs()
    with unit_of_work(world.db) as s:
        sent = s.get_one(SopRun, out.sent[0])
        assert sent.action_id is not None
        action = s.get_one(OutboundAction, sent.action_id)
        assert action.state == "awaiting_confirmation"
        transition(s, action, OutboundState.FAILED, "WeCom refused the mass send")
    with unit_of_work(world.db) as s:
        assert retry.retry_run(s, world.scope(), out.sent[0], now=now).attempt == 2
    with unit_of_work(world.db) as s:
        assert fire_runs(s, [out.sent[0]], now + timedelta(minutes=1)).sent == [out.sent[0]]


def test_a_bulk_retry_takes_back_no_more_runs_than_the_month_has_room_for(wecom_world: SopWorld) -> None:
    """One of the month's sends failed on the platform: a bulk retry of the group queues it again
    and refuses the runs failed over the cap (they would fail again at once), not all of them."""
    world = wecom_world
    steps = [StepSpec(at=time(10), category="内容推送", script=f"第{n}天的推送", day=n) for n in range(35)]
    with unit_of_work(world.db) as s:
        plan = service.create_plan(s, world.scope(), name="推送", kind="campaign", steps=steps)
        runs.apply(s, world.scope(), plan.id, world.groups["S1"], tomorrow())
    rows = world.runs()
    now = rows[0].due_at + timedelta(seconds=1)
    with unit_of_work(world.db) as s:
        for r in rows:
            s.get_one(SopRun, r.id).state = "queued"
        out = fire_runs(s, [r.id for r in rows], now)
    assert len(out.failed) > 1
    world.run_jobs()
    with unit_of_work(world.db) as s:
        action = s.get_one(OutboundAction, s.get_one(SopRun, out.sent[0]).action_id)
        transition(s, action, OutboundState.FAILED, "WeCom refused the mass send")
    with unit_of_work(world.db) as s:
        done = retry.retry_failed(s, world.scope(), group_id=world.groups["S1"], now=now)
    assert done.retried == [out.sent[0]]
    assert sorted(i for i, _ in done.refused) == sorted(out.failed)
    assert all("群发次数已用完" in e.localized("zh") for _, e in done.refused)
    with unit_of_work(world.db) as s:
        fired = fire_runs(s, done.retried, now + timedelta(minutes=1))
    assert fired.sent == [out.sent[0]] and fired.failed == []


def test_the_cli_retries_a_failed_run(sop_world: SopWorld) -> None:
    world = sop_world
    plan_in(world, "S1")
    run = first_run(world, "S1")
    with unit_of_work(world.db) as s:
        stored = s.get_one(SopRun, run.id)
        stored.state, stored.reason = "failed", "no_text"
    done = runner.invoke(app, ["sop", "retry", str(run.id), "--format", "json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert {k: out[k] for k in ("run", "state", "attempt")} == {"run": run.id, "state": "queued", "attempt": 2}
    assert out["fire_at"].endswith("+08:00")
    with world.db() as s:
        assert s.scalars(select(SopRunRetry.retried_by)).one() is None  # the command line, no person
    again = runner.invoke(app, ["sop", "retry", str(run.id), "--format", "json"])
    assert again.exit_code == 2 and str(run.id) in again.output
    world.run_jobs()
    assert bot_messages(world, "S1") == ["S1 群早上好"]

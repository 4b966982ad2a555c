"""A staff member's calendar asks the database for their groups' runs only: a month in which the
organisation has more runs than one calendar reads (``MAX_RUNS``), all due before theirs, still
shows every one of their runs, untruncated."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import insert, select

from qunyun.db.session import unit_of_work
from qunyun.models import SopApplication, SopRun, SopStep
from qunyun.sop import calendar, runs, service
from qunyun.sop.calendar import MAX_RUNS, span
from qunyun.sop.types import Executor, RunState
from qunyun.timeutil import utcnow
from tests.sop.conftest import ZONE, SopWorld, daily_steps, tomorrow


def flood(world: SopWorld, group: str, count: int, at: datetime) -> None:
    """``count`` runs of one of ``group``'s steps, all due in the minutes after ``at`` (each on a
    day of its own, as the runs' key wants)."""
    with unit_of_work(world.db) as s:
        plan = service.create_plan(s, world.scope(), name="刷屏计划", kind="daily", steps=daily_steps(Executor.BOT))
        runs.apply(s, world.scope(), plan.id, world.groups[group], tomorrow())
        app_id = s.scalars(select(SopApplication.id).where(SopApplication.plan_id == plan.id)).one()
        step_id = s.scalars(select(SopStep.id).where(SopStep.plan_id == plan.id).order_by(SopStep.id)).first()
        now = utcnow()
        base = date(1900, 1, 1)  # days no real run has
        rows = [
            {
                "org_id": world.org_id,
                "plan_id": plan.id,
                "application_id": app_id,
                "group_id": world.groups[group],
                "step_id": step_id,
                "day": int((base + timedelta(days=i)).strftime("%Y%m%d")),
                "due_at": at + timedelta(seconds=i),
                "fire_at": at + timedelta(seconds=i),
                "state": RunState.PLANNED.value,
                "reason": "",
                "updated_at": now,
            }
            for i in range(count)
        ]
        for i in range(0, count, 5000):
            s.execute(insert(SopRun), rows[i : i + 5000])


def test_a_staff_members_month_reads_their_runs_past_the_cap(sop_world: SopWorld) -> None:
    anchor = tomorrow()
    first, *_ = span("month", anchor)
    sop_world.add_group("S3", owner=None)  # nobody's
    with unit_of_work(sop_world.db) as s:  # the owner runs S1 and S2 (two groups: one query for both)
        plan = service.create_plan(
            s, sop_world.scope(), name="日常节奏", kind="daily", steps=daily_steps(Executor.OWNER)
        )
        for key in ("S1", "S2"):
            runs.apply(s, sop_world.scope(), plan.id, sop_world.groups[key], anchor)
    # More runs than a calendar reads, all in S3, all due before any of S1's and S2's.
    flood(sop_world, "S3", MAX_RUNS + 1_000, datetime.combine(first, time(0, 0), ZONE))
    with sop_world.db() as s:
        month_end = datetime.combine(span("month", anchor)[1] + timedelta(days=1), time(), ZONE)
        mine = s.scalars(select(SopRun.id).where(SopRun.plan_id == plan.id, SopRun.due_at < month_end)).all()
        assert mine
        everyone = calendar.calendar(s, sop_world.scope(), view="month", anchor=anchor)
        theirs = calendar.calendar(s, sop_world.scope(), view="month", anchor=anchor, staff_id=sop_world.staff["owner"])
        own = calendar.calendar(
            s, sop_world.scope("owner"), view="month", anchor=anchor, staff_id=sop_world.staff["owner"]
        )
        none = calendar.calendar(
            s,
            sop_world.scope(),
            view="month",
            anchor=anchor,
            staff_id=sop_world.staff["owner"],
            group_id=sop_world.groups["S3"],
        )
    assert everyone.truncated  # the whole organisation's month is still capped, and says so
    for cal in (theirs, own):
        shown = [r for d in cal.days for r in d.runs]
        assert not cal.truncated
        assert sorted(r.id for r in shown) == sorted(mine)
        assert {r.group_name for r in shown} == {"S1 群", "S2 群"}
    assert [r for d in none.days for r in d.runs] == [] and not none.truncated  # S3 is not the owner's

"""SOP reports (sop.reports): execution rate, on-time rate and average delay per group and per
staff member, as docs/sop.md defines them, and workload against 5-10 groups per operator."""

from __future__ import annotations

from datetime import timedelta

import pytest

from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput, NotFound
from qunyun.models import SopRun
from qunyun.sop import reports, service
from qunyun.sop.types import RunState
from qunyun.tasks.service import complete
from tests.sop.conftest import SopWorld, local, tomorrow
from tests.sop.test_calendar import PNG, daily_plan, fire, first_day


def day_played(world: SopWorld) -> None:
    """Tomorrow, as it will have gone: S1's three runs on time (the bot at 08:02, the owner's
    screenshot step done at 12:30) but 晚安语 taken 3 h late (expired); S2's 早安语 90 min late,
    its assisted step still with the owner, 晚安语 on time."""
    s1, s2 = first_day(world, "S1"), first_day(world, "S2")
    fire(world, s1[0], 2)
    fire(world, s1[1], 0)
    fire(world, s1[2], 180)
    fire(world, s2[0], 90)
    fire(world, s2[1], 0)
    fire(world, s2[2], 0)
    world.run_jobs()
    with unit_of_work(world.db) as s:
        task_id = s.get_one(SopRun, s1[1].id).task_id
        assert task_id is not None
        complete(s, world.scope("owner"), task_id, evidence_image=PNG, now=s1[1].due_at + timedelta(minutes=30))


def test_execution_per_group_and_per_staff_member(sop_world: SopWorld) -> None:
    daily_plan(sop_world)
    day_played(sop_world)
    after = local(tomorrow(), 23, 59)
    with sop_world.db() as s:
        report = reports.execution(s, sop_world.scope(), start=tomorrow(), end=tomorrow(), now=after)
        by_group = {r.name: r for r in report.rows}
        s1, s2 = by_group["S1 群"], by_group["S2 群"]
        assert (s1.due, s1.executed, s1.on_time, s1.missed, s1.waiting) == (3, 2, 2, 1, 0)
        assert (s2.due, s2.executed, s2.on_time, s2.missed, s2.waiting) == (3, 2, 1, 0, 1)
        assert s1.execution_rate == pytest.approx(2 / 3) and s1.on_time_rate == 1.0
        assert s1.average_delay_minutes == pytest.approx((2 + 30) / 2, abs=0.1)
        assert s2.on_time_rate == 0.5 and s2.average_delay_minutes == pytest.approx(45.0, abs=0.1)
        assert (report.total.due, report.total.executed, report.total.on_time) == (6, 4, 3)
        # Per staff member: the owner has the bot's runs of their groups and their tasks.
        staff = reports.execution(s, sop_world.scope(), start=tomorrow(), end=tomorrow(), by="staff", now=after)
        assert [(r.name, r.due, r.executed) for r in staff.rows] == [("owner老师", 6, 4)]
        # Only what is due by ``now`` counts: at 10:00 the morning runs.
        morning = reports.execution(s, sop_world.scope(), start=tomorrow(), end=tomorrow(), now=local(tomorrow(), 10))
        assert morning.total.due == 2 and morning.total.on_time == 1


def test_paused_runs_are_not_due_and_the_scope_narrows_the_rows(sop_world: SopWorld) -> None:
    sop_world.add_group("S3", owner=None)
    daily_plan(sop_world, groups=("S1", "S2", "S3"))
    day_played(sop_world)
    with unit_of_work(sop_world.db) as s:
        service.pause_group(s, sop_world.scope(), sop_world.groups["S3"], True)
    after = local(tomorrow(), 23, 59)
    with sop_world.db() as s:

        def names(who: str) -> list[str]:
            found = reports.execution(s, sop_world.scope(who), start=tomorrow(), end=tomorrow(), now=after)
            return [r.name for r in found.rows]

        # S3's runs read paused: not due, so S3 has no row even for the lead.
        assert names("lead") == names("analyst") == ["S1 群", "S2 群"]
        assert names("operator") == ["S1 群"]
        with pytest.raises(NotFound):
            reports.execution(
                s, sop_world.scope("owner"), start=tomorrow(), end=tomorrow(), group_id=sop_world.groups["S3"]
            )
        with pytest.raises(InvalidInput) as backwards:
            reports.execution(s, sop_world.scope(), start=tomorrow(), end=tomorrow() - timedelta(days=1))
        assert backwards.value.field == "to"
        with pytest.raises(InvalidInput) as by:
            reports.execution(s, sop_world.scope(), start=tomorrow(), end=tomorrow(), by="plan")  # type: ignore[arg-type]
        assert by.value.field == "by"


def test_workload_flags_people_outside_five_to_ten_groups(sop_world: SopWorld) -> None:
    for n in range(4, 12):
        sop_world.add_group(f"S{n}")  # the owner now runs 10 groups: within the norm
    daily_plan(sop_world, groups=("S1",))
    fire(sop_world, first_day(sop_world, "S1")[1], 0)  # an open task for the owner
    later = local(tomorrow(), 23)
    with sop_world.db() as s:
        lines = {
            r.name: r
            for r in reports.workload_report(s, sop_world.scope(), start=tomorrow(), end=tomorrow(), now=later).rows
        }
        assert (lines["owner老师"].groups, lines["owner老师"].load) == (10, "ok")
        assert (lines["owner老师"].open_tasks, lines["owner老师"].overdue_tasks) == (1, 1)
        assert (lines["operator老师"].groups, lines["operator老师"].load) == (1, "under")
        assert lines["lead老师"].load == ""
        # Nothing fired but the assisted step: all three runs of the day are still waiting.
        assert lines["owner老师"].sop is not None and lines["owner老师"].sop.waiting == 3
    sop_world.add_group("S12")
    with sop_world.db() as s:
        mine = reports.workload_report(s, sop_world.scope("owner"), start=tomorrow(), end=tomorrow(), now=later)
        assert [(r.name, r.groups, r.load) for r in mine.rows] == [("owner老师", 11, "over")]
    assert RunState.DONE in reports.EXECUTED

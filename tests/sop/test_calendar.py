"""The group calendar and the campaign Gantt (sop.calendar): runs by day with their effective
states, month and week spans, filters by group, staff member, plan and state, and the scope —
owners and operators see their groups only, and asking for another's group or person is 404."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import update

from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput, NotFound
from qunyun.models import SopRun
from qunyun.sop import calendar, runs, service
from qunyun.sop.calendar import gantt, span
from qunyun.sop.execute import fire_runs
from qunyun.sop.types import Executor, Phase, RunState
from qunyun.tasks.service import complete
from tests.sop.conftest import SopWorld, campaign_steps, daily_steps, local, tomorrow

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def daily_plan(world: SopWorld, groups: tuple[str, ...] = ("S1", "S2"), start: date | None = None) -> int:
    with unit_of_work(world.db) as s:
        plan = service.create_plan(s, world.scope(), name="日常节奏", kind="daily", steps=daily_steps(Executor.OWNER))
        for key in groups:
            runs.apply(s, world.scope(), plan.id, world.groups[key], start or tomorrow())
        return plan.id


def fire(world: SopWorld, run: SopRun, minutes_late: int) -> None:
    """Take one run as the engine would, ``minutes_late`` after it was due."""
    with unit_of_work(world.db) as s:
        s.execute(update(SopRun).where(SopRun.id == run.id).values(state=RunState.QUEUED.value))
        fire_runs(s, [run.id], run.due_at + timedelta(minutes=minutes_late))


def first_day(world: SopWorld, group: str) -> list[SopRun]:
    return [r for r in world.runs(group_id=world.groups[group]) if r.day == int(tomorrow().strftime("%Y%m%d"))]


def test_month_and_week_spans_are_whole_monday_first_weeks() -> None:
    first, last, previous, following = span("month", date(2026, 12, 17))
    assert (first, last) == (date(2026, 11, 30), date(2027, 1, 3))
    assert (previous, following) == (date(2026, 11, 1), date(2027, 1, 1))
    first, last, previous, following = span("week", date(2026, 12, 3))  # a Thursday
    assert (first, last, previous, following) == (
        date(2026, 11, 30),
        date(2026, 12, 6),
        date(2026, 11, 26),
        date(2026, 12, 10),
    )
    first, last, _, _ = span("month", date(2027, 2, 10))  # February 2027 starts on a Monday
    assert first == date(2027, 2, 1) and (last - first).days + 1 == 28


def test_the_calendar_shows_each_run_in_its_state(sop_world: SopWorld) -> None:
    daily_plan(sop_world)
    s1 = first_day(sop_world, "S1")
    fire(sop_world, s1[0], 2)  # 早安语 by the bot: sent
    fire(sop_world, s1[1], 0)  # 活跃活动 for the owner: assigned, then done with a screenshot
    fire(sop_world, s1[2], 180)  # 晚安语 three hours late: expired
    sop_world.run_jobs()
    with unit_of_work(sop_world.db) as s:
        task_id = s.get_one(SopRun, s1[1].id).task_id
        assert task_id is not None
        complete(s, sop_world.scope("owner"), task_id, evidence_image=PNG)
    with sop_world.db() as s:
        week = calendar.calendar(s, sop_world.scope("owner"), view="week", anchor=tomorrow())
    assert len(week.weeks) == 1 and len(week.days) == 7
    day = next(d for d in week.days if d.day == tomorrow())
    mine = {(r.group_name, r.category): r.state for r in day.runs}
    assert mine[("S1 群", "早安语")] == RunState.SENT
    assert mine[("S1 群", "活跃活动")] == RunState.DONE
    assert mine[("S1 群", "晚安语")] == RunState.EXPIRED
    assert mine[("S2 群", "早安语")] == RunState.PLANNED
    assert day.counts[RunState.PLANNED] == 3 and day.counts[RunState.SENT] == 1
    assert [r.at for r in day.runs] == sorted(r.at for r in day.runs)
    assert day.runs[0].at.hour == 8 and day.runs[0].at.utcoffset() == timedelta(hours=8)
    # Filters: one state; one group; the groups one person runs.
    with sop_world.db() as s:
        bad = calendar.calendar(
            s, sop_world.scope("lead"), view="week", anchor=tomorrow(), states={RunState.EXPIRED, RunState.FAILED}
        )
        assert [r.category for d in bad.days for r in d.runs] == ["晚安语"]
        one = calendar.calendar(s, sop_world.scope(), view="week", anchor=tomorrow(), group_id=sop_world.groups["S2"])
        assert {r.group_name for d in one.days for r in d.runs} == {"S2 群"}
        theirs = calendar.calendar(
            s, sop_world.scope(), view="month", anchor=tomorrow(), staff_id=sop_world.staff["operator"]
        )
        assert {r.group_name for d in theirs.days for r in d.runs} == {"S1 群"}
        month = calendar.calendar(s, sop_world.scope(), view="month", anchor=tomorrow())
    assert all(len(w) == 7 for w in month.weeks)
    assert all(d.in_range == (d.day.month == tomorrow().month) for d in month.days)
    # A daily plan is materialized 28 days ahead: the month's remaining days all have runs.
    shown = [d for d in month.days if d.in_range and d.day >= tomorrow()]
    assert all(len(d.runs) == 6 for d in shown)


def test_owners_and_operators_see_their_groups_only(sop_world: SopWorld) -> None:
    sop_world.add_group("S3", owner=None)  # nobody's: only the lead and the analyst see it
    daily_plan(sop_world, groups=("S1", "S2", "S3"))
    with sop_world.db() as s:

        def groups(who: str, **where: int) -> set[str]:
            cal = calendar.calendar(s, sop_world.scope(who), view="week", anchor=tomorrow(), **where)  # type: ignore[arg-type]
            return {r.group_name for d in cal.days for r in d.runs}

        assert groups("lead") == groups("analyst") == {"S1 群", "S2 群", "S3 群"}
        assert groups("owner") == {"S1 群", "S2 群"}
        assert groups("operator") == groups("admin") == {"S1 群"}
        assert groups("owner", staff_id=sop_world.staff["owner"]) == {"S1 群", "S2 群"}
        with pytest.raises(NotFound) as no_group:
            groups("owner", group_id=sop_world.groups["S3"])
        assert no_group.value.field == "group_id"
        for who, other in (("owner", "lead"), ("operator", "owner"), ("admin", "operator")):
            with pytest.raises(NotFound) as no_staff:
                groups(who, staff_id=sop_world.staff[other])
            assert no_staff.value.field == "staff_id"
        # The lead may look at anyone's calendar; nobody at a person of no organisation of theirs.
        assert groups("lead", staff_id=sop_world.staff["operator"]) == {"S1 群"}
        with pytest.raises(NotFound):
            groups("lead", staff_id=999_999)
        with pytest.raises(InvalidInput) as bad_view:
            calendar.calendar(s, sop_world.scope(), view="year")  # type: ignore[arg-type]
        assert bad_view.value.field == "view"
        with pytest.raises(InvalidInput) as bad_state:
            calendar.parse_states(["sent,delivered"])
        assert bad_state.value.field == "state"


def test_the_gantt_lays_a_campaign_out_by_phase_and_day(sop_world: SopWorld) -> None:
    start = tomorrow() + timedelta(days=10)
    with unit_of_work(sop_world.db) as s:
        plan = service.create_plan(s, sop_world.scope(), name="28天训练营", kind="campaign", steps=campaign_steps())
        for key in ("S1", "S2"):
            runs.apply(s, sop_world.scope(), plan.id, sop_world.groups[key], start)
        daily = service.create_plan(s, sop_world.scope(), name="日常", kind="daily", steps=daily_steps())
        plan_id, daily_id = plan.id, daily.id
    # The first step (D-7) of S1 goes out; the rest wait.
    first = sop_world.runs(group_id=sop_world.groups["S1"], plan_id=plan_id)[0]
    fire(sop_world, first, 1)
    sop_world.run_jobs()
    with sop_world.db() as s:
        chart = gantt(s, sop_world.scope("owner"), plan_id)
        assert chart.offsets == list(range(-7, 15))
        assert [(p.phase, p.first, p.last) for p in chart.phases] == [
            (Phase.BEFORE, -7, -1),
            (Phase.DURING, 0, 13),
            (Phase.AFTER, 14, 14),
        ]
        assert [p.label for p in chart.phases] == ["营前", "营中", "营后"]
        assert [(st.day, st.category) for st in chart.steps] == [(-7, "新品预告"), (0, "活跃活动"), (14, "内容推送")]
        assert [r.group_name for r in chart.rows] == ["S1 群", "S2 群"]
        s1 = chart.rows[0]
        assert [c.state for c in s1.on(-7, chart.steps)] == [RunState.SENT]
        assert [c.state for c in s1.on(0, chart.steps)] == [RunState.PLANNED]
        assert s1.on(0, chart.steps)[0].day == start
        assert s1.on(3, chart.steps) == []
        assert [r.group_name for r in gantt(s, sop_world.scope("operator"), plan_id).rows] == ["S1 群"]
        assert len(gantt(s, sop_world.scope("lead"), plan_id, group_id=sop_world.groups["S2"]).rows) == 1
        with pytest.raises(InvalidInput) as not_campaign:
            gantt(s, sop_world.scope(), daily_id)
        assert not_campaign.value.field == "plan_id"
        with pytest.raises(NotFound):
            gantt(s, sop_world.scope("operator"), plan_id, group_id=sop_world.groups["S2"])


def test_assisted_runs_land_in_the_assignees_inbox(sop_world: SopWorld) -> None:
    daily_plan(sop_world, groups=("S1",))
    assisted = first_day(sop_world, "S1")[1]
    fire(sop_world, assisted, 0)
    from qunyun.tasks.service import list_tasks

    with sop_world.db() as s:
        items, total = list_tasks(s, sop_world.scope("owner"), view="open")
    assert total == 1
    task = items[0].task
    assert task.kind == "sop_step" and task.detail["evidence_required"] is True
    assert task.due_at == assisted.due_at + timedelta(hours=1)
    assert local(tomorrow(), 12) == assisted.due_at

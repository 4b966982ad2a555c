"""The demo runs the SOP: the seeds' daily rhythm in the regional groups and a 28-day campaign
in owner1's groups, carried out by the SOP engine on the simulation's clock, so that the
calendar, the inbox and the reports have runs in several states."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.models import Role, SopPlan, SopRun, Staff, StaffTask
from qunyun.simulate.demo import load_demo
from qunyun.simulate.sop_rhythm import CAMPAIGN_PLAN, DAILY_PLAN, DAILY_STEPS
from qunyun.sop import calendar, reports
from qunyun.sop.types import DAILY_CATEGORIES, RunState
from qunyun.tasks.service import list_tasks


def test_the_demo_runs_the_daily_rhythm_and_a_campaign(db: sessionmaker[Session]) -> None:
    end = datetime(2026, 3, 29, 21, 30).astimezone()
    demo = load_demo(members=200, days=10, end=end, password="demo-pass-1")
    assert {s.category for s in DAILY_STEPS} == set(DAILY_CATEGORIES)
    assert DAILY_STEPS[0].at.hour == 8 and DAILY_STEPS[-1].at.hour == 20
    with unit_of_work(db, write=False) as s:
        plans = {p.name: p for p in s.scalars(select(SopPlan).where(SopPlan.org_id == demo.org_id))}
        assert plans[DAILY_PLAN].kind == "daily" and plans[CAMPAIGN_PLAN].kind == "campaign"
        staff = {u: (i, r) for u, i, r in s.execute(select(Staff.username, Staff.id, Staff.role))}
        lead = Scope(staff_id=staff["lead"][0], org_id=demo.org_id, role=Role.LEAD)
        owner = Scope(staff_id=staff["owner1"][0], org_id=demo.org_id, role=Role.OWNER)
        zone_end = end.astimezone(ZoneInfo("Asia/Shanghai"))
        month = calendar.calendar(s, lead, view="month", anchor=zone_end.date())
        states = set(month.counts)
        # Past runs went out, were done by a person, expired or were skipped; future ones wait.
        assert {RunState.SENT, RunState.DONE, RunState.ASSIGNED, RunState.EXPIRED, RunState.PLANNED} <= states, states
        assert RunState.SKIPPED in states
        yesterday = next(d for d in month.days if d.day == zone_end.date() - timedelta(days=1))
        assert {r.category for r in yesterday.runs} >= set(DAILY_CATEGORIES)
        # The campaign: its steps before today were carried out in owner1's groups.
        chart = calendar.gantt(s, owner, plans[CAMPAIGN_PLAN].id)
        assert len(chart.rows) == 5 and [p.label for p in chart.phases] == ["营前", "营中", "营后"]
        cells = [c.state for row in chart.rows for c in row.cells.values()]
        assert RunState.PLANNED in cells and (RunState.SENT in cells or RunState.DONE in cells)
        # The reports have figures; the owner's inbox has open SOP tasks.
        report = reports.execution(s, lead, start=zone_end.date() - timedelta(days=6), end=zone_end.date(), now=end)
        assert report.total.due > 0 and 0.5 < (report.total.execution_rate or 0) < 1
        assert 0 < (report.total.on_time_rate or 0) < 1
        items, total = list_tasks(s, owner, view="open", now=end)
        assert total > 0 and any(i.task.kind == "sop_step" for i in items)
        done_with_image = s.scalar(
            select(func.count())
            .select_from(StaffTask)
            .where(StaffTask.org_id == demo.org_id, StaffTask.status == "done", StaffTask.evidence_image.is_not(None))
        )
        assert done_with_image and done_with_image > 0
        future = s.scalar(
            select(func.count()).select_from(SopRun).where(SopRun.org_id == demo.org_id, SopRun.due_at > end)
        )
        assert future and future > 0

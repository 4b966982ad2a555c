"""SOP pages: the group calendar (群日历, month and week, by group, person, plan and state), a
campaign's Gantt view and the execution and workload reports. They call ``sop.calendar`` and
``sop.reports`` with the viewer's scope — what an owner sees is what the API gives them. A failed
run in the week view has a 重试 button (``sop.retry``, as the API's retry).

A query string a person edited by hand falls back to the defaults (this month, no filter)
rather than an error page; a group or person outside the viewer's scope is the usual 404."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from qunyun.console.web import MAX_BIGINT, ConsolePage, Form, check_form, int_param, path_id
from qunyun.locale import Msg
from qunyun.sop import calendar as sop_calendar
from qunyun.sop import reports as sop_reports
from qunyun.sop import retry as sop_retry
from qunyun.sop.calendar import LEGEND, OUTCOME, VIEWS, View
from qunyun.sop.types import PlanKind, RunState

router = APIRouter()
# A month cell lists this many runs; the rest are counted and a link opens the day's week.
MONTH_CELL_RUNS = 4


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _state(value: str | None) -> RunState | None:
    try:
        return RunState(value) if value else None
    except ValueError:
        return None


def _options(page: ConsolePage) -> dict[str, Any]:
    return sop_calendar.filter_options(page.db, page.scope)


def _frame(page: ConsolePage) -> dict[str, Any]:
    return {"legend": LEGEND, "outcome": {s: o.value for s, o in OUTCOME.items()}}


@router.get("/sop")
def sop_calendar_page(page: ConsolePage) -> Response:
    params = page.request.query_params
    view: View = "week" if params.get("view") == "week" else "month"
    group_id = int_param(params.get("group"))
    staff_id = int_param(params.get("staff"))
    plan_id = int_param(params.get("plan"))
    state = _state(params.get("state"))
    options = _options(page)
    plans = {p.id for p in options["plans"]}
    cal = sop_calendar.calendar(
        page.db,
        page.scope,
        view=view,
        anchor=_day(params.get("date")) or page.today(),
        group_id=group_id,
        staff_id=staff_id,
        plan_id=plan_id if plan_id in plans else None,
        states={state} if state is not None else None,
    )
    context = {
        **_frame(page),
        **options,
        "cal": cal,
        "views": VIEWS,
        "state": state,
        "today": page.today(),
        "cell_runs": MONTH_CELL_RUNS,
        "week_of": lambda d: page.url("/sop", view="week", date=d.isoformat()),
        "can_retry": _retry_check(page),
    }
    return page.render("sop/calendar.html", "sop", context)


def _retry_check(page: ConsolePage) -> Any:
    """Whether the viewer may retry a run of a group they see (its 重试 button)."""
    groups = sop_retry.retry_groups(page.db, page.scope)
    return lambda group_id: groups is None or group_id in groups


@router.post("/sop/runs/{run_id}/retry")
def sop_retry_run(page: ConsolePage, run_id: str, form: Form) -> Response:
    """Send a failed run again, then back to its day's week."""
    check_form(page, form)
    run_number = path_id(run_id, Msg("err.sop.no_run", id=run_id), maximum=MAX_BIGINT)
    run = sop_retry.retry_run(page.db, page.scope, run_number)
    day = run.due_at.astimezone(page.zone).date()
    return RedirectResponse(page.url("/sop", view="week", date=day.isoformat()), status_code=303)


@router.get("/sop/gantt")
def sop_gantt_page(page: ConsolePage) -> Response:
    options = _options(page)
    campaigns = [p for p in options["plans"] if p.kind == PlanKind.CAMPAIGN.value]
    wanted = int_param(page.request.query_params.get("plan"))
    group_id = int_param(page.request.query_params.get("group"))
    chosen = next((p.id for p in campaigns if p.id == wanted), campaigns[0].id if campaigns else None)
    chart = sop_calendar.gantt(page.db, page.scope, chosen, group_id=group_id) if chosen is not None else None
    context = {**_frame(page), **options, "campaigns": campaigns, "chart": chart, "group_id": group_id}
    return page.render("sop/gantt.html", "sop", context)


@router.get("/sop/reports")
def sop_reports_page(page: ConsolePage) -> Response:
    params = page.request.query_params
    end = _day(params.get("to")) or page.today()
    start = _day(params.get("from")) or end - timedelta(days=6)
    if start > end or (end - start).days >= sop_reports.MAX_RANGE_DAYS:
        start = end - timedelta(days=6)
    by_group = sop_reports.execution(page.db, page.scope, start=start, end=end, by="group")
    by_staff = sop_reports.execution(page.db, page.scope, start=start, end=end, by="staff")
    load = sop_reports.workload_report(page.db, page.scope, start=start, end=end)
    context = {
        **_frame(page),
        "start": start,
        "end": end,
        "by_group": by_group,
        "by_staff": by_staff,
        "load": load,
        "tolerance": int(sop_reports.ON_TIME_TOLERANCE.total_seconds() // 60),
    }
    return page.render("sop/reports.html", "sop", context)

"""REST routes for SOP plans and runs: /api/v1/sop (thin: the service decides who may do what)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Path, Query, Request, status

from qunyun.api.errors import api_language
from qunyun.api.pagination import BigId, Id, Page, Paging
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.sop import calendar, reports, retry, runs, service
from qunyun.sop.schemas import (
    AppliedOut,
    ApplyIn,
    AttachIn,
    AttachmentOut,
    CalendarOut,
    ExecutionOut,
    GanttOut,
    PauseIn,
    PauseOut,
    PlanCreate,
    PlanOut,
    PlanUpdate,
    RetriedOut,
    RetryFailedIn,
    RetryRefusedOut,
    RunDetailOut,
    RunOut,
    StepsReplace,
    WorkloadOut,
)

router = APIRouter(prefix="/sop", tags=["sop"])
PlanId = Annotated[Id, Path(description="SOP plan id")]
GroupId = Annotated[Id, Path(description="Group id")]
RunId = Annotated[BigId, Path(description="SOP run id")]


@router.get("/plans", response_model=list[PlanOut], summary="The organisation's SOP plans, by name")
def list_plans(db: DbSession, scope: CurrentScope) -> list[PlanOut]:
    return [PlanOut.of(plan) for plan in service.list_plans(db, scope)]


@router.post("/plans", response_model=PlanOut, status_code=status.HTTP_201_CREATED, summary="Create a plan")
def create_plan(body: PlanCreate, db: DbSession, scope: CurrentScope) -> PlanOut:
    steps = [s.spec() for s in body.steps]
    quiet = body.quiet_hours.value() if body.quiet_hours is not None else None
    plan = service.create_plan(db, scope, name=body.name, kind=body.kind, steps=steps, quiet_hours=quiet)
    return PlanOut.of(plan, steps)


@router.get("/plans/{plan_id}", response_model=PlanOut, summary="One plan with its steps")
def get_plan(plan_id: PlanId, db: DbSession, scope: CurrentScope) -> PlanOut:
    plan, steps = service.plan_steps(db, scope, plan_id)
    return PlanOut.of(plan, steps)


@router.patch("/plans/{plan_id}", response_model=PlanOut, summary="Rename, pause or resume a plan, set quiet hours")
def update_plan(plan_id: PlanId, body: PlanUpdate, db: DbSession, scope: CurrentScope) -> PlanOut:
    service.require_plan(db, scope, plan_id, write=True)
    given = body.model_fields_set
    if body.name is not None:
        service.rename_plan(db, scope, plan_id, body.name)
    if body.paused is not None:
        service.pause_plan(db, scope, plan_id, body.paused)
    if "quiet_hours" in given:
        service.set_quiet_hours(db, scope, plan_id, body.quiet_hours.value() if body.quiet_hours else None)
    plan, steps = service.plan_steps(db, scope, plan_id)
    return PlanOut.of(plan, steps)


@router.put("/plans/{plan_id}/steps", response_model=PlanOut, summary="Replace a plan's steps (future runs follow)")
def replace_steps(plan_id: PlanId, body: StepsReplace, db: DbSession, scope: CurrentScope) -> PlanOut:
    service.replace_steps(db, scope, plan_id, [s.spec() for s in body.steps])
    plan, steps = service.plan_steps(db, scope, plan_id)
    return PlanOut.of(plan, steps)


@router.post(
    "/plans/{plan_id}/attachments",
    response_model=AttachmentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Attach a plan to a playbook, a community or a group",
)
def attach(plan_id: PlanId, body: AttachIn, db: DbSession, scope: CurrentScope) -> AttachmentOut:
    row = service.attach(
        db,
        scope,
        plan_id,
        playbook_id=body.playbook_id,
        community_id=body.community_id,
        group_id=body.group_id,
        start=body.start,
    )
    return AttachmentOut.of(row)


@router.get("/plans/{plan_id}/attachments", response_model=list[AttachmentOut], summary="A plan's attachments")
def list_attachments(plan_id: PlanId, db: DbSession, scope: CurrentScope) -> list[AttachmentOut]:
    return [AttachmentOut.of(row) for row in service.attachments(db, scope, plan_id)]


@router.post("/plans/{plan_id}/apply", response_model=AppliedOut, summary="Run a plan in a group: make its runs")
def apply(plan_id: PlanId, body: ApplyIn, db: DbSession, scope: CurrentScope) -> AppliedOut:
    if body.group_id is None:
        service.require_plan(db, scope, plan_id, write=True)
        raise InvalidInput(Msg("err.sop.group_required"), field="group_id")
    applied = runs.apply(db, scope, plan_id, body.group_id, body.start)
    return AppliedOut(application_id=applied.application.id, runs=applied.runs)


@router.put("/groups/{group_id}/pause", response_model=PauseOut, summary="Pause or resume a group's SOP")
def pause_group(group_id: GroupId, body: PauseIn, db: DbSession, scope: CurrentScope) -> PauseOut:
    return PauseOut(group_id=group_id, paused=service.pause_group(db, scope, group_id, body.paused))


@router.get("/runs", response_model=Page[RunOut], summary="Runs of the groups you see, soonest first")
def list_runs(
    db: DbSession,
    scope: CurrentScope,
    paging: Paging,
    group_id: Annotated[Id | None, Query(description="One group's runs")] = None,
    plan_id: Annotated[Id | None, Query(description="One plan's runs")] = None,
    date_from: Annotated[date | None, Query(alias="from", description="First day (organisation's zone)")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last day, included")] = None,
) -> Page[RunOut]:
    start, end = _days(db, scope, date_from, date_to)
    where: dict[str, Any] = {"group_id": group_id, "plan_id": plan_id, "start": start, "end": end}
    rows = runs.list_runs(db, scope, limit=paging.limit, offset=paging.offset, **where)
    items = [RunOut.of(r) for r in rows]
    total = runs.count_runs(db, scope, **where)
    return Page[RunOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


def _days(
    db: DbSession, scope: CurrentScope, first: date | None, last: date | None
) -> tuple[datetime | None, datetime | None]:
    """The instants [start, end) of the days ``first`` to ``last`` (both included) in the
    organisation's zone; None where a bound is not given."""
    zone = runs.zone_of(db, scope.org_id)
    start = datetime.combine(first, time(), zone) if first is not None else None
    end = datetime.combine(last + timedelta(days=1), time(), zone) if last is not None else None
    return start, end


@router.post("/runs/{run_id}/retry", response_model=RunDetailOut, summary="Send a failed run again")
def retry_run(run_id: RunId, db: DbSession, scope: CurrentScope) -> RunDetailOut:
    """Queue a failed run again as a new attempt (its own idempotency key); 409 unless it is failed,
    or when its group is dismissed, its SOP paused or the platform's monthly cap reached."""
    retry.retry_run(db, scope, run_id)
    return RunDetailOut.with_retries(runs.get_run(db, scope, run_id), retry.retries_of(db, scope, run_id))


@router.post("/runs/retry", response_model=RetriedOut, summary="Send a group's or a plan's failed runs again")
def retry_failed(body: RetryFailedIn, db: DbSession, scope: CurrentScope, request: Request) -> RetriedOut:
    start, end = _days(db, scope, body.date_from, body.date_to)
    done = retry.retry_failed(db, scope, group_id=body.group_id, plan_id=body.plan_id, start=start, end=end)
    lang = api_language(request)
    refused = [RetryRefusedOut(run_id=i, code=e.code, message=e.localized(lang)) for i, e in done.refused]
    return RetriedOut(retried=done.retried, refused=refused)


# --- calendar, Gantt and reports ------------------------------------------------------------------


@router.get("/calendar", response_model=CalendarOut, summary="The group calendar: a month or a week of runs")
def get_calendar(
    db: DbSession,
    scope: CurrentScope,
    view: Annotated[str, Query(description="month or week")] = "month",
    on: Annotated[date | None, Query(alias="date", description="A day of the month or week (default today)")] = None,
    group_id: Annotated[Id | None, Query(description="One group's runs")] = None,
    staff_id: Annotated[Id | None, Query(description="The runs of the groups this person runs")] = None,
    plan_id: Annotated[Id | None, Query(description="One plan's runs")] = None,
    state: Annotated[list[str] | None, Query(description="Only these states (repeat or comma-separate)")] = None,
) -> CalendarOut:
    cal = calendar.calendar(
        db,
        scope,
        view=calendar.parse_view(view),
        anchor=on,
        group_id=group_id,
        staff_id=staff_id,
        plan_id=plan_id,
        states=calendar.parse_states(state),
    )
    return CalendarOut.of(cal)


@router.get("/plans/{plan_id}/gantt", response_model=GanttOut, summary="A campaign's steps and runs by day offset")
def get_gantt(
    plan_id: PlanId,
    db: DbSession,
    scope: CurrentScope,
    group_id: Annotated[Id | None, Query(description="One group's application(s)")] = None,
) -> GanttOut:
    return GanttOut.of(calendar.gantt(db, scope, plan_id, group_id=group_id))


def _range(db: DbSession, scope: CurrentScope, start: date | None, end: date | None) -> tuple[date, date]:
    """The report's days: by default the last 7 days up to today (organisation's zone)."""
    today = datetime.now(runs.zone_of(db, scope.org_id)).date()
    end = end or today
    return start or end - timedelta(days=6), end


@router.get("/reports/execution", response_model=ExecutionOut, summary="SOP execution and on-time rates")
def get_execution(
    db: DbSession,
    scope: CurrentScope,
    by: Annotated[str, Query(description="group or staff")] = "group",
    date_from: Annotated[date | None, Query(alias="from", description="First day (default: 6 days before to)")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last day, included (default: today)")] = None,
    group_id: Annotated[Id | None, Query(description="One group's runs")] = None,
) -> ExecutionOut:
    start, end = _range(db, scope, date_from, date_to)
    if by not in reports.BY:
        raise InvalidInput(Msg("err.sop_cal.by", allowed=", ".join(reports.BY)), field="by")
    report = reports.execution(db, scope, start=start, end=end, by=cast(reports.By, by), group_id=group_id)
    return ExecutionOut.of(report)


@router.get("/reports/workload", response_model=WorkloadOut, summary="Staff workload against 5-10 groups each")
def get_workload(
    db: DbSession,
    scope: CurrentScope,
    date_from: Annotated[date | None, Query(alias="from", description="First day of the SOP figures")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last day, included (default: today)")] = None,
) -> WorkloadOut:
    start, end = _range(db, scope, date_from, date_to)
    return WorkloadOut.of(reports.workload_report(db, scope, start=start, end=end), start, end)

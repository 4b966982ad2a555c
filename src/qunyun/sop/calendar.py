"""The group calendar (群日历) and a campaign's Gantt view: SOP runs laid out by day, in the
caller's scope (docs/sop.md, "Calendar").

- :func:`calendar`: a month (Monday-first weeks covering it) or an ISO week of runs, for the
  groups the caller sees, one group's, or the groups one staff member runs (owns or is assigned
  to); each run with its effective state. Owners, admins and operators see their groups only: a
  group or a person outside their scope is NotFound, as everywhere else.
- :func:`gantt`: a campaign plan's steps along their day offsets (营前 D-7 … 营后 D+20), and for
  each group it was applied to (in the caller's scope) the state of each step's run.

Both only read; they narrow by the scope themselves, so the API and the console call the same
functions.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, group_visible, require_group
from qunyun.db.collation import by_pinyin
from qunyun.errors import InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import (
    Group,
    GroupStatus,
    OutboundAction,
    Role,
    SopApplication,
    SopGroupPause,
    SopPlan,
    SopRun,
    SopStep,
    Staff,
    StaffGroupAssignment,
    StaffTask,
)
from qunyun.sop.runs import RunRow, effective_state, list_runs, to_date, zone_of
from qunyun.sop.service import require_plan
from qunyun.sop.types import PHASE_LABELS, Phase, PlanKind, RunState
from qunyun.timeutil import utcnow

View = Literal["month", "week"]
VIEWS: tuple[View, ...] = ("month", "week")
# A calendar reads at most this many runs (a month of 25 groups × 8 slots is ~6,200); beyond it
# the answer says it is truncated and asks for a narrower filter.
MAX_RUNS = 20_000
# The states a legend shows, in the order of a run's life (docs/sop.md, "States").
LEGEND: tuple[RunState, ...] = (
    RunState.PLANNED,
    RunState.QUEUED,
    RunState.SENDING,
    RunState.SENT,
    RunState.AWAITING_CONFIRMATION,
    RunState.CONFIRMED,
    RunState.ASSIGNED,
    RunState.DONE,
    RunState.FAILED,
    RunState.EXPIRED,
    RunState.SKIPPED,
    RunState.PAUSED,
)


class Outcome(enum.StrEnum):
    """A state's meaning for a person reading the calendar (its colour family)."""

    WAITING = "waiting"  # still to come or under way
    GOOD = "good"  # went out or was done
    PERSON = "person"  # waits on a person
    BAD = "bad"  # failed or expired
    OFF = "off"  # skipped or paused


OUTCOME: dict[RunState, Outcome] = {
    RunState.PLANNED: Outcome.WAITING,
    RunState.QUEUED: Outcome.WAITING,
    RunState.SENDING: Outcome.WAITING,
    RunState.SENT: Outcome.GOOD,
    RunState.CONFIRMED: Outcome.GOOD,
    RunState.DONE: Outcome.GOOD,
    RunState.AWAITING_CONFIRMATION: Outcome.PERSON,
    RunState.ASSIGNED: Outcome.PERSON,
    RunState.FAILED: Outcome.BAD,
    RunState.EXPIRED: Outcome.BAD,
    RunState.SKIPPED: Outcome.OFF,
    RunState.PAUSED: Outcome.OFF,
}


@dataclass(frozen=True)
class CalendarRun:
    id: int
    plan_id: int
    plan_name: str
    category: str
    title: str
    executor: str
    group_id: int
    group_name: str
    day: date
    at: datetime  # due, in the organisation's zone
    state: RunState
    reason: str
    task_id: int | None
    attempt: int = 1  # 2 and on: a failed run retried (sop.retry)


@dataclass
class CalendarDay:
    day: date
    in_range: bool  # a month view's leading and trailing days of other months are False
    runs: list[CalendarRun] = field(default_factory=list)

    @property
    def counts(self) -> dict[RunState, int]:
        """Runs per state, in the legend's order."""
        found = Counter(r.state for r in self.runs)
        return {s: found[s] for s in LEGEND if found[s]}


@dataclass
class Calendar:
    view: View
    anchor: date
    first: date  # the first day shown
    last: date  # the last day shown (included)
    previous: date  # the anchor of the previous month or week
    next: date
    weeks: list[list[CalendarDay]]
    counts: dict[RunState, int]
    truncated: bool
    group_id: int | None = None
    staff_id: int | None = None
    plan_id: int | None = None

    @property
    def days(self) -> list[CalendarDay]:
        return [d for week in self.weeks for d in week]


def parse_view(value: str) -> View:
    if value not in VIEWS:
        raise InvalidInput(Msg("err.sop_cal.view", views=", ".join(VIEWS)), field="view")
    return value


def parse_states(values: list[str] | None) -> set[RunState] | None:
    """The ``state`` filter; unknown names are refused naming the field."""
    if not values:
        return None
    out = set()
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.add(RunState(part))
            except ValueError as exc:
                allowed = ", ".join(s.value for s in LEGEND)
                raise InvalidInput(Msg("err.sop_cal.state", value=part, allowed=allowed), field="state") from exc
    return out or None


def span(view: View, anchor: date) -> tuple[date, date, date, date]:
    """(first day shown, last day shown, previous anchor, next anchor) for a view around
    ``anchor``: a month shows the Monday-first weeks that cover it, a week its ISO week."""
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        return first, first + timedelta(days=6), anchor - timedelta(days=7), anchor + timedelta(days=7)
    month_first = anchor.replace(day=1)
    month_next = (month_first + timedelta(days=32)).replace(day=1)
    month_last = month_next - timedelta(days=1)
    first = month_first - timedelta(days=month_first.weekday())
    last = month_last + timedelta(days=6 - month_last.weekday())
    previous = (month_first - timedelta(days=1)).replace(day=1)
    return first, last, previous, month_next


def staff_group_ids(session: Session, scope: Scope, staff_id: int) -> list[int]:
    """The groups staff member ``staff_id`` runs (owns or is assigned to) that ``scope`` sees.
    Someone else than oneself is for leads and analysts only: NotFound otherwise, as for a
    person of another organisation."""
    person = session.scalar(select(Staff.id).where(Staff.id == staff_id, Staff.org_id == scope.org_id))
    if person is None or (not scope.whole_org and staff_id != scope.staff_id):
        raise NotFound(Msg("err.sop_cal.no_staff", id=staff_id), field="staff_id")
    assigned = select(StaffGroupAssignment.group_id).where(StaffGroupAssignment.staff_id == staff_id)
    query = select(Group.id).where(
        group_visible(scope), (Group.owner_id == staff_id) | Group.id.in_(assigned), Group.org_id == scope.org_id
    )
    return sorted(session.scalars(query))


def calendar(
    session: Session,
    scope: Scope,
    *,
    view: View = "month",
    anchor: date | None = None,
    group_id: int | None = None,
    staff_id: int | None = None,
    plan_id: int | None = None,
    states: set[RunState] | None = None,
) -> Calendar:
    """The runs of a month or a week that ``scope`` sees, by day: all its groups', one group's,
    or those of the groups a staff member runs; optionally one plan's and some states only."""
    view = parse_view(view)
    zone = zone_of(session, scope.org_id)
    anchor = anchor or utcnow().astimezone(zone).date()
    first, last, previous, following = span(view, anchor)
    if group_id is not None:
        require_group(session, scope, group_id)
    # A staff member's calendar asks the database for the runs of their groups only.
    wanted = staff_group_ids(session, scope, staff_id) if staff_id is not None else None
    start = datetime.combine(first, time(), zone)
    end = datetime.combine(last + timedelta(days=1), time(), zone)
    rows: list[RunRow] = []
    if wanted is None or wanted:
        rows = list_runs(
            session,
            scope,
            group_id=group_id,
            group_ids=wanted,
            plan_id=plan_id,
            start=start,
            end=end,
            limit=MAX_RUNS + 1,
        )
    truncated = len(rows) > MAX_RUNS
    rows = rows[:MAX_RUNS]
    shown = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    days = {d: CalendarDay(d, True) for d in shown}
    if view == "month":
        for d, cell in days.items():
            cell.in_range = d.month == anchor.month
    counts: Counter[RunState] = Counter()
    for row in rows:
        if states is not None and row.state not in states:
            continue
        at = row.due_at.astimezone(zone)
        item = CalendarRun(
            id=row.id,
            plan_id=row.plan_id,
            plan_name=row.plan_name,
            category=row.category,
            title=row.title,
            executor=row.executor,
            group_id=row.group_id,
            group_name=row.group_name,
            day=to_date(row.day),
            at=at,
            state=row.state,
            reason=row.reason,
            task_id=row.task_id,
            attempt=row.attempt,
        )
        on = days.get(at.date())
        if on is not None:
            on.runs.append(item)
            counts[row.state] += 1
    ordered = list(days.values())
    weeks = [ordered[i : i + 7] for i in range(0, len(ordered), 7)]
    return Calendar(
        view=view,
        anchor=anchor,
        first=first,
        last=last,
        previous=previous,
        next=following,
        weeks=weeks,
        counts={s: counts[s] for s in LEGEND if counts[s]},
        truncated=truncated,
        group_id=group_id,
        staff_id=staff_id,
        plan_id=plan_id,
    )


# --- Gantt ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GanttStep:
    id: int
    phase: Phase | None
    day: int  # offset from the start day
    at: time
    category: str
    title: str
    executor: str


@dataclass(frozen=True)
class GanttCell:
    run_id: int
    state: RunState
    day: date


@dataclass
class GanttRow:
    """One application of the campaign: a group and its start day, with each step's run."""

    application_id: int
    group_id: int
    group_name: str
    start: date
    cells: dict[int, GanttCell] = field(default_factory=dict)  # step id → its run

    def on(self, offset: int, steps: list[GanttStep]) -> list[GanttCell]:
        """The runs of the steps at day ``offset``."""
        return [self.cells[s.id] for s in steps if s.day == offset and s.id in self.cells]


@dataclass(frozen=True)
class PhaseSpan:
    phase: Phase | None
    label: str
    first: int
    last: int

    @property
    def width(self) -> int:
        return self.last - self.first + 1


@dataclass
class Gantt:
    plan_id: int
    plan_name: str
    offsets: list[int]  # every day offset from the first step's to the last's
    phases: list[PhaseSpan]
    steps: list[GanttStep]
    rows: list[GanttRow]
    today: date

    def steps_on(self, offset: int) -> list[GanttStep]:
        return [s for s in self.steps if s.day == offset]


def _phase_of(offset: int) -> Phase:
    """The seeds' 28-day cycle, for a step that names no phase: before D0, the two weeks from
    D0, after."""
    return Phase.BEFORE if offset < 0 else Phase.DURING if offset < 14 else Phase.AFTER


def gantt(session: Session, scope: Scope, plan_id: int, *, group_id: int | None = None) -> Gantt:
    """A campaign's steps along their day offsets and, per application in a group ``scope``
    sees (one group's with ``group_id``), the state of each step's run. A daily plan is refused
    naming ``plan_id``: it has no days to lay out."""
    plan = require_plan(session, scope, plan_id)
    if plan.kind != PlanKind.CAMPAIGN:
        raise InvalidInput(Msg("err.sop_cal.not_campaign", id=plan_id), field="plan_id")
    if group_id is not None:
        require_group(session, scope, group_id)
    step_rows = list(
        session.scalars(
            select(SopStep).where(SopStep.plan_id == plan.id, SopStep.active.is_(True)).order_by(SopStep.position)
        )
    )
    apps_query = (
        select(SopApplication, Group.name)
        .join(Group, Group.id == SopApplication.group_id)
        .where(SopApplication.plan_id == plan.id, group_visible(scope))
        .order_by(SopApplication.start_day, Group.name, SopApplication.id)
    )
    if group_id is not None:
        apps_query = apps_query.where(SopApplication.group_id == group_id)
    apps = session.execute(apps_query).all()
    first_start = min((a.start_day for a, _ in apps), default=None)

    def offset_of(step: SopStep) -> int:
        if step.day is not None:
            return step.day
        if step.on_day is not None and first_start is not None:
            return (to_date(step.on_day) - to_date(first_start)).days
        return 0

    steps = sorted(
        (
            GanttStep(
                id=s.id,
                phase=Phase(s.phase) if s.phase else _phase_of(offset_of(s)),
                day=offset_of(s),
                at=time(s.at_minute // 60, s.at_minute % 60),
                category=s.category,
                title=s.title,
                executor=s.executor,
            )
            for s in step_rows
        ),
        key=lambda s: (s.day, s.at, s.id),
    )
    offsets = list(range(min(s.day for s in steps), max(s.day for s in steps) + 1)) if steps else []
    rows = [
        GanttRow(application_id=app.id, group_id=app.group_id, group_name=name, start=to_date(app.start_day))
        for app, name in apps
    ]
    by_app = {row.application_id: row for row in rows}
    _fill_cells(session, plan, by_app)
    phases: list[PhaseSpan] = []
    for offset in offsets:
        on = [s.phase for s in steps if s.day == offset]
        phase = on[0] if on else (phases[-1].phase if phases else _phase_of(offset))
        if phases and phases[-1].phase == phase:
            phases[-1] = PhaseSpan(phase, phases[-1].label, phases[-1].first, offset)
        else:
            phases.append(PhaseSpan(phase, PHASE_LABELS[phase] if phase else "", offset, offset))
    today = utcnow().astimezone(zone_of(session, scope.org_id)).date()
    return Gantt(plan.id, plan.name, offsets, phases, steps, rows, today)


def _fill_cells(session: Session, plan: SopPlan, by_app: dict[int, GanttRow]) -> None:
    """Each application's runs, with their effective state (as ``runs.list_runs`` derives it)."""
    if not by_app:
        return
    ids = list(by_app)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        query = (
            select(
                SopRun,
                SopApplication.paused,
                SopGroupPause.group_id,
                Group.status,
                OutboundAction.state,
                StaffTask.status,
            )
            .join(SopApplication, SopApplication.id == SopRun.application_id)
            .join(Group, Group.id == SopRun.group_id)
            .outerjoin(SopGroupPause, SopGroupPause.group_id == SopRun.group_id)
            .outerjoin(OutboundAction, OutboundAction.id == SopRun.action_id)
            .outerjoin(StaffTask, StaffTask.id == SopRun.task_id)
            .where(SopRun.application_id.in_(chunk))
        )
        for run, app_paused, pause, status, action, task in session.execute(query):
            state = effective_state(
                run.state,
                action_state=action,
                task_status=task,
                paused=bool(plan.paused or app_paused or pause is not None),
                dismissed=status == GroupStatus.DISMISSED,
            )
            by_app[run.application_id].cells[run.step_id] = GanttCell(run.id, state, to_date(run.day))


# Who may appear in the person filter: the roles that run groups.
RUNNING_ROLES = (Role.LEAD.value, Role.OWNER.value, Role.ADMIN.value, Role.OPERATOR.value)


def filter_options(session: Session, scope: Scope) -> dict[str, list[Any]]:
    """The calendar's filter choices in ``scope``: the groups it sees (pinyin order), the people
    whose calendar it may open (everyone running groups for a lead or analyst, themselves
    otherwise) and the organisation's plans."""
    groups = list(
        session.execute(
            select(Group.id, Group.name)
            .where(group_visible(scope))
            .order_by(by_pinyin(session, Group.__table__.c.name), Group.id)
        )
    )
    people = select(Staff.id, Staff.display_name).where(
        Staff.org_id == scope.org_id, Staff.role.in_(RUNNING_ROLES), Staff.is_active.is_(True)
    )
    if not scope.whole_org:
        people = people.where(Staff.id == scope.staff_id)
    plans = list(
        session.execute(
            select(SopPlan.id, SopPlan.name, SopPlan.kind).where(SopPlan.org_id == scope.org_id).order_by(SopPlan.name)
        )
    )
    return {"groups": groups, "people": list(session.execute(people.order_by(Staff.id))), "plans": plans}

"""SOP reports: how well the plans were carried out, per group and per staff member, and each
person's workload against the seeds' norm of 5-10 groups per operator (docs/sop.md, "Reports").

Definitions (normative; the docs repeat them):

- A run is **due** in a range of days when its due time falls on one of those days (the
  organisation's zone) and has passed. Runs skipped because their plan, application or group
  was paused or the group dismissed (or that read ``paused``) are not due: someone decided they
  should not go.
- A due run is **executed** when it ended ``sent``, ``confirmed`` (sent by the bot) or ``done``
  (an assisted run whose task was completed).
- Its **execution time** is when it was handed to the connector (``fired_at``) for the bot's
  runs, when its task was completed for assisted ones.
- It is **on time** when executed no later than :data:`ON_TIME_TOLERANCE` after its due time
  (the assisted task's own due time: a 早安语 posted at 09:00 instead of 08:00 still counts).
- ``execution_rate`` = executed / due; ``on_time_rate`` = on time / executed;
  ``average_delay_minutes`` = the mean of (execution time − due time), at least 0, over the
  executed runs; each null when its divisor is 0.
- A run counts for the staff member who had it: its task's assignee for an assisted run, the
  group's owner for the bot's (the person answerable for the group); none: "unassigned".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, group_visible, require_group
from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.models import (
    Group,
    GroupStatus,
    OutboundAction,
    SopApplication,
    SopGroupPause,
    SopPlan,
    SopRun,
    Staff,
    StaffTask,
)
from qunyun.sop.runs import effective_state, zone_of
from qunyun.sop.types import RunState
from qunyun.team.service import GROUPS_PER_OPERATOR, Load, workload
from qunyun.timeutil import utcnow

By = Literal["group", "staff"]
BY: tuple[By, ...] = ("group", "staff")
ON_TIME_TOLERANCE = timedelta(hours=1)
EXECUTED = frozenset({RunState.SENT, RunState.CONFIRMED, RunState.DONE})
NOT_DUE_REASONS = frozenset({"paused", "dismissed"})
MAX_RANGE_DAYS = 366


@dataclass
class ExecutionRow:
    """The figures of one group or one staff member (``key`` 0: runs without a person)."""

    key: int
    name: str
    due: int = 0
    executed: int = 0
    on_time: int = 0
    missed: int = 0  # failed, expired, or its task cancelled
    waiting: int = 0  # due, still with a person or under way
    delay_seconds: float = 0.0

    @property
    def execution_rate(self) -> float | None:
        return self.executed / self.due if self.due else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.executed if self.executed else None

    @property
    def average_delay_minutes(self) -> float | None:
        return round(self.delay_seconds / self.executed / 60, 1) if self.executed else None

    def add(self, state: RunState, delay: timedelta | None) -> None:
        self.due += 1
        if state in EXECUTED:
            self.executed += 1
            seconds = max(0.0, delay.total_seconds()) if delay is not None else 0.0
            self.delay_seconds += seconds
            if seconds <= ON_TIME_TOLERANCE.total_seconds():
                self.on_time += 1
        elif state in (RunState.FAILED, RunState.EXPIRED, RunState.SKIPPED):
            self.missed += 1
        else:
            self.waiting += 1


@dataclass
class ExecutionReport:
    by: By
    start: date
    end: date
    rows: list[ExecutionRow]
    total: ExecutionRow


@dataclass
class WorkloadLine:
    staff_id: int
    name: str
    role: str
    groups: int
    open_tasks: int
    overdue_tasks: int
    load: Load  # under / ok / over the norm; "" for roles that run no groups
    sop: ExecutionRow | None = None  # the person's SOP figures over the report's range


@dataclass
class WorkloadReport:
    norm: tuple[int, int] = GROUPS_PER_OPERATOR
    rows: list[WorkloadLine] = field(default_factory=list)


def check_range(start: date, end: date) -> None:
    if end < start:
        raise InvalidInput(Msg("err.sop_cal.range_order"), field="to")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise InvalidInput(Msg("err.sop_cal.range_long", limit=MAX_RANGE_DAYS), field="to")


def execution(
    session: Session,
    scope: Scope,
    *,
    start: date,
    end: date,
    by: By = "group",
    group_id: int | None = None,
    now: datetime | None = None,
) -> ExecutionReport:
    """Execution and on-time rates and the average delay of the SOP runs due from ``start`` to
    ``end`` (included) in the groups ``scope`` sees, per group or per staff member."""
    if by not in BY:
        raise InvalidInput(Msg("err.sop_cal.by", allowed=", ".join(BY)), field="by")
    check_range(start, end)
    if group_id is not None:
        require_group(session, scope, group_id)
    now = now or utcnow()
    zone = zone_of(session, scope.org_id)
    low = datetime.combine(start, time(), zone)
    high = min(datetime.combine(end + timedelta(days=1), time(), zone), now)
    query = (
        select(
            SopRun.state,
            SopRun.reason,
            SopRun.due_at,
            SopRun.fired_at,
            SopRun.group_id,
            Group.name,
            Group.owner_id,
            Group.status,
            SopPlan.paused,
            SopApplication.paused,
            SopGroupPause.group_id,
            OutboundAction.state,
            StaffTask.status,
            StaffTask.done_at,
            StaffTask.assignee_id,
        )
        .join(Group, Group.id == SopRun.group_id)
        .join(SopPlan, SopPlan.id == SopRun.plan_id)
        .join(SopApplication, SopApplication.id == SopRun.application_id)
        .outerjoin(SopGroupPause, SopGroupPause.group_id == SopRun.group_id)
        .outerjoin(OutboundAction, OutboundAction.id == SopRun.action_id)
        .outerjoin(StaffTask, StaffTask.id == SopRun.task_id)
        .where(SopRun.org_id == scope.org_id, group_visible(scope), SopRun.due_at >= low, SopRun.due_at < high)
    )
    if group_id is not None:
        query = query.where(SopRun.group_id == group_id)
    rows: dict[int, ExecutionRow] = {}
    total = ExecutionRow(0, "")
    people: set[int] = set()
    for (
        stored,
        reason,
        due_at,
        fired_at,
        run_group,
        group_name,
        owner_id,
        group_status,
        plan_paused,
        app_paused,
        group_paused,
        action_state,
        task_status,
        done_at,
        assignee_id,
    ) in session.execute(query):
        state = effective_state(
            stored,
            action_state=action_state,
            task_status=task_status,
            paused=bool(plan_paused or app_paused or group_paused is not None),
            dismissed=group_status == GroupStatus.DISMISSED,
        )
        if state == RunState.PAUSED or (state == RunState.SKIPPED and reason in NOT_DUE_REASONS):
            continue
        if state == RunState.SKIPPED and task_status is None:
            continue  # skipped by the engine for a reason it records (a dismissed group)
        executed_at = done_at if state == RunState.DONE else fired_at
        delay = executed_at - due_at if executed_at is not None else None
        if by == "group":
            key, name = run_group, group_name
        else:
            person = assignee_id if task_status is not None else owner_id
            key, name = (person or 0), ""
            if person:
                people.add(person)
        row = rows.get(key)
        if row is None:
            row = rows[key] = ExecutionRow(key, name)
        row.add(state, delay)
        total.add(state, delay)
    if by == "staff" and people:
        names = dict(session.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(people))).all())
        for row in rows.values():
            row.name = names.get(row.key, "")
    ordered = sorted(rows.values(), key=lambda r: (r.key == 0, r.name, r.key))
    return ExecutionReport(by=by, start=start, end=end, rows=ordered, total=total)


def workload_report(
    session: Session, scope: Scope, *, start: date, end: date, now: datetime | None = None
) -> WorkloadReport:
    """Each person the caller sees (leads and analysts: everyone; others: themselves) with their
    groups, open and overdue tasks, where the group count falls against the 5-10 norm, and their
    SOP figures over ``start`` … ``end``."""
    check_range(start, end)
    now = now or utcnow()
    today = now.astimezone(zone_of(session, scope.org_id)).date()
    sop = {row.key: row for row in execution(session, scope, start=start, end=end, by="staff", now=now).rows}
    report = WorkloadReport()
    for row in workload(session, scope, today, now=now):
        if row.staff.role == "integration":
            continue
        report.rows.append(
            WorkloadLine(
                staff_id=row.staff.id,
                name=row.staff.display_name,
                role=row.staff.role,
                groups=len(row.groups),
                open_tasks=row.tasks,
                overdue_tasks=row.overdue,
                load=row.load,
                sop=sop.get(row.staff.id),
            )
        )
    return report

"""Retrying a failed SOP run (docs/sop.md, "Retrying a failed run").

A run that ended ``failed`` — nothing to send through (``no_route``), nothing to send
(``no_text``), over the platform's monthly cap, or its send refused by the platform — may be sent
again by a person: the run's attempt goes up by one and it is queued again (or planned for the end
of its plan's quiet hours). Its next send goes through the same exactly-once path under a key of
its own (``sop:run:<id>:<attempt>``, :func:`qunyun.sop.execute.run_key`): the failed attempt's
key would only give back the failed action. The failed action stays with its own history; the
retry is recorded in ``sop_run_retries`` (who, when, what failed and why).

Who: leads and admins, and the owner of the run's group (群主), for a group in their scope;
a run outside the scope is NotFound like a missing one, an analyst or another role Forbidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, group_visible, require_group, require_write
from qunyun.db.base import to_micros
from qunyun.errors import Conflict, Forbidden, InvalidInput, NotFound, QunyunError
from qunyun.locale import Msg
from qunyun.models import (
    Group,
    GroupStatus,
    OutboundAction,
    OutboundState,
    SopApplication,
    SopGroupPause,
    SopPlan,
    SopRun,
    SopRunRetry,
    SopStep,
    StaffTask,
)
from qunyun.sop.execute import enqueue_fire, monthly_cap_reached
from qunyun.sop.runs import effective_state, fire_instant, schedule_minutes, zone_of
from qunyun.sop.service import EDITOR_ROLES, require_plan
from qunyun.sop.types import Executor, RunState
from qunyun.timeutil import utcnow

# The failed attempt's reason when the platform refused the send (the run's own reason is empty:
# it had been handed on).
PLATFORM_REASON = "platform"
# Runs one bulk retry takes at most (a day of a plan's failures in a few dozen groups).
BULK_LIMIT = 500


def may_retry(scope: Scope, group: Group) -> bool:
    """Whether ``scope`` may retry the runs of ``group`` (one it sees): leads and admins, and the
    group's owner; never a read-only role."""
    return scope.can_write and (scope.role in EDITOR_ROLES or group.owner_id == scope.staff_id)


def retry_groups(session: Session, scope: Scope) -> set[int] | None:
    """The groups whose runs ``scope`` may retry, among those it sees: None for all of them
    (leads and admins), else the groups it owns (none for a read-only role)."""
    if not scope.can_write:
        return set()
    if scope.role in EDITOR_ROLES:
        return None
    return set(session.scalars(select(Group.id).where(Group.org_id == scope.org_id, Group.owner_id == scope.staff_id)))


def retry_run(session: Session, scope: Scope, run_id: int, *, now: datetime | None = None) -> SopRun:
    """Send a failed run again: recorded as a retry, queued now (planned for the end of its plan's
    quiet hours if they hold now). Conflict unless the run is failed, or when its group is
    dismissed, its SOP paused, or its platform's monthly cap reached."""
    now = now or utcnow()
    run, group = _locked(session, scope, run_id)
    require_write(scope)
    if not may_retry(scope, group):
        raise Forbidden(Msg("err.sop.retry_not_allowed"))
    _retry(session, scope, run, group, now, zone_of(session, scope.org_id))
    return run


@dataclass
class RetriedMany:
    """What :func:`retry_failed` did: the runs retried, and those left failed with the reason."""

    retried: list[int] = field(default_factory=list)
    refused: list[tuple[int, QunyunError]] = field(default_factory=list)


def retry_failed(
    session: Session,
    scope: Scope,
    *,
    group_id: int | None = None,
    plan_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    now: datetime | None = None,
) -> RetriedMany:
    """Retry the failed runs of a group or a plan (at least one of them) due in [start, end), the
    oldest first, at most :data:`BULK_LIMIT`. A run that may not be retried (its group paused,
    the cap reached) stays failed and is reported, the others are retried."""
    if group_id is None and plan_id is None:
        raise InvalidInput(Msg("err.sop.retry_needs_filter"), field="group_id")
    require_write(scope)
    if group_id is not None:
        group = require_group(session, scope, group_id, write=True)
        if not may_retry(scope, group):
            raise Forbidden(Msg("err.sop.retry_not_allowed"))
    if plan_id is not None:
        require_plan(session, scope, plan_id)
    now = now or utcnow()
    where = [SopRun.org_id == scope.org_id, group_visible(scope), _failed()]
    if group_id is not None:
        where.append(SopRun.group_id == group_id)
    if plan_id is not None:
        where.append(SopRun.plan_id == plan_id)
    if start is not None:
        where.append(SopRun.due_at >= start)
    if end is not None:
        where.append(SopRun.due_at < end)
    if scope.role not in EDITOR_ROLES:  # an owner retries their own groups' runs only
        where.append(Group.owner_id == scope.staff_id)
    ids = list(
        session.scalars(
            select(SopRun.id)
            .join(Group, Group.id == SopRun.group_id)
            .where(*where)
            .order_by(SopRun.due_at, SopRun.id)
            .limit(BULK_LIMIT)
        )
    )
    zone = zone_of(session, scope.org_id)
    out = RetriedMany()
    # Bot sends this call queued again, by group: each counts towards the monthly cap before it
    # fires, so a month with room for one does not take back every run it had refused.
    queued: dict[int, int] = {}
    for run_id in ids:
        run, group = _locked(session, scope, run_id)
        try:
            sends = _retry(session, scope, run, group, now, zone, pending=queued.get(group.id, 0))
        except QunyunError as exc:  # checked before anything is written for it
            out.refused.append((run_id, exc))
        else:
            out.retried.append(run_id)
            queued[group.id] = queued.get(group.id, 0) + sends
    return out


def retries_of(session: Session, scope: Scope, run_id: int) -> list[SopRunRetry]:
    """A run's retries, the first first (NotFound for a run the scope does not see)."""
    _locked(session, scope, run_id, lock=False)
    return list(session.scalars(select(SopRunRetry).where(SopRunRetry.run_id == run_id).order_by(SopRunRetry.attempt)))


# --- internals ------------------------------------------------------------------------------------


def _failed() -> ColumnElement[bool]:
    """A WHERE clause on ``SopRun``: failed before it was handed on, or its send failed."""
    send_failed = exists().where(
        OutboundAction.id == SopRun.action_id, OutboundAction.state == OutboundState.FAILED.value
    )
    return or_(
        and_(SopRun.state == RunState.FAILED.value, SopRun.action_id.is_(None), SopRun.task_id.is_(None)),
        and_(SopRun.action_id.is_not(None), send_failed),
    )


def _locked(session: Session, scope: Scope, run_id: int, *, lock: bool = True) -> tuple[SopRun, Group]:
    """The run (locked: two retries at once act once) and its group, if the scope sees it."""
    query = (
        select(SopRun, Group)
        .join(Group, Group.id == SopRun.group_id)
        .where(SopRun.id == run_id, SopRun.org_id == scope.org_id, group_visible(scope))
    )
    if lock:
        query = query.with_for_update(of=SopRun)
    found = session.execute(query).first()
    if found is None:
        raise NotFound(Msg("err.sop.no_run", id=run_id), field="run_id")
    return found[0], found[1]


def _retry(
    session: Session, scope: Scope, run: SopRun, group: Group, now: datetime, zone: ZoneInfo, *, pending: int = 0
) -> int:
    """Check that ``run`` may go again (nothing written otherwise), record the retry and queue it.
    ``pending``: bot sends in the group queued again before it and not yet fired (a bulk retry's).
    Returns 1 when the run is a bot send (it counts towards the monthly cap), else 0."""
    action = session.get(OutboundAction, run.action_id) if run.action_id is not None else None
    task = session.scalar(select(StaffTask.status).where(StaffTask.id == run.task_id)) if run.task_id else None
    state = effective_state(run.state, action_state=action.state if action else None, task_status=task)
    if state != RunState.FAILED:
        raise Conflict(Msg("err.sop.retry_not_failed", id=run.id, state=Msg(f"sop.state.{state.value}")), field="state")
    if group.status in (GroupStatus.DISMISSED, GroupStatus.ARCHIVED):
        raise Conflict(Msg("err.sop.group_dismissed", id=group.id), field="group_id")
    plan = session.get_one(SopPlan, run.plan_id)
    app = session.get_one(SopApplication, run.application_id)
    if plan.paused or app.paused or session.get(SopGroupPause, group.id) is not None:
        raise Conflict(Msg("err.sop.retry_paused", group=group.name, plan=plan.name), field="state")
    step = session.get_one(SopStep, run.step_id)
    # The failed send of this month stops counting towards the cap once the run is retried.
    local = now.astimezone(zone)
    replacing = int(
        run.action_id is not None
        and run.fired_at is not None
        and (run.fired_at.astimezone(zone).year, run.fired_at.astimezone(zone).month) == (local.year, local.month)
    )
    bot = step.executor == Executor.BOT
    if bot and monthly_cap_reached(session, group, zone, now, pending=pending, replacing=replacing):
        raise Conflict(Msg("err.sop.retry_monthly_cap", group=group.name), field="state")

    attempt = run.attempt + 1
    session.add(
        SopRunRetry(
            org_id=run.org_id,
            run_id=run.id,
            attempt=attempt,
            failed_action_id=run.action_id,
            failed_reason=run.reason or (PLATFORM_REASON if action is not None else ""),
            failed_detail=(action.last_error or "") if action is not None else "",
            retried_by=scope.staff_id or None,  # the command line acts without a person
            retried_at=now,
        )
    )
    at = _next_allowed(now, zone, (plan.quiet_start, plan.quiet_end))
    run.attempt = attempt
    run.attempt_due_at = at
    run.fire_at = at
    run.action_id = None  # the failed action is kept (the retry names it), with its history
    run.task_id = None
    run.text = None
    run.fired_at = None
    run.reason = ""
    run.updated_at = now
    if at <= now:
        run.state = RunState.QUEUED.value
        enqueue_fire(session, [run.id], run.org_id)
    else:  # in quiet hours: taken by the minute's sop.fire_due when they end
        run.state = RunState.PLANNED.value
        schedule_minutes(session, [to_micros(at)])
    session.flush()
    return int(bot)


def _next_allowed(now: datetime, zone: ZoneInfo, quiet: tuple[int | None, int | None]) -> datetime:
    """``now``, or the end of the quiet hours when they hold now (:func:`fire_instant` moves the
    minute out of them)."""
    local = now.astimezone(zone)
    moved = fire_instant(local.date(), local.hour * 60 + local.minute, zone, quiet)
    return moved if moved > now else now

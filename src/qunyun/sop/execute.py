"""Firing SOP runs: due runs are claimed, checked, rendered and handed on — to the connector as
an outbound action (executor bot) or to a person as a staff task (a staff role). docs/sop.md.

Two jobs, both ordinary (database-only) jobs, so that what they write commits once with their
completion (docs/jobs.md):

1. ``sop.fire_due`` (every minute, and once at each minute some run is due: the same job, by its
   key) claims due ``planned`` runs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), marks them
   ``queued`` and enqueues ``sop.fire`` jobs of :data:`CHUNK` runs each, so that every worker
   takes a share; when it claimed its limit it enqueues itself again.
2. ``sop.fire`` locks each run, and if it is still ``queued``: skips it (plan, group or
   application paused; group dismissed), expires it (later than :data:`LATE_LIMIT`), fails it
   (over a platform's monthly cap) or delays it (over a per-minute cap), or requests the send
   under the idempotency key ``sop:run:<id>`` (``sop:run:<id>:<attempt>`` for a retried run,
   :func:`run_key`) — the two-phase send path does the rest, and a crash anywhere never sends
   twice — or opens the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, Text, any_, bindparam, cast, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from qunyun.connectors.base import get_profile
from qunyun.connectors.dispatch import JOB_MAX_ATTEMPTS, ActionRequest, pg_array, request_actions
from qunyun.db.base import to_micros
from qunyun.errors import QunyunError
from qunyun.locale import Msg
from qunyun.models import (
    Group,
    GroupStatus,
    Organisation,
    SopApplication,
    SopGroupPause,
    SopPlan,
    SopRun,
    SopStep,
    Staff,
    StaffGroupAssignment,
    TaskKind,
)
from qunyun.sop.runs import action_run_state, schedule_minutes, to_date
from qunyun.sop.types import SCRIPT_VARIABLES, Executor, MaterialKind, PlanKind, RunState
from qunyun.tasks.service import default_assignee, open_task
from qunyun.texttemplate import fill_lenient
from qunyun.timeutil import utcnow
from qunyun.worker.queue import enqueue

FIRE_JOB = "sop.fire"
CHUNK = 50  # runs per sop.fire job
FANOUT_LIMIT = 2000  # runs one sop.fire_due claims; it enqueues itself again for the rest
# A run taken later than this after it was due is expired, not sent: a 早安语 at noon is wrong.
LATE_LIMIT = timedelta(hours=2)
# An assisted run's task is due this long after the run (then reminded, then escalated).
TASK_DUE_AFTER = timedelta(hours=1)
KEY_PREFIX = "sop:run:"
# Platform caps, where a platform's profile does not declare them (``limits``):
# WeCom group mass sends per group per month (at most as many as the month has days), and
# Telegram's ~20 messages a minute per group.
MONTHLY_CAP_PLATFORMS = frozenset({"wecom"})
PER_MINUTE_CAP: dict[str, int] = {"telegram": 20}
# The profile keys of a per-minute cap per group (Telegram's profile declares the second).
PER_MINUTE_KEYS = ("group_messages_per_minute", "messages_per_minute_per_group")
WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


class Reason:
    """Why a run did not go out (``SopRun.reason``; catalogue ``sop.reason.<value>``)."""

    PAUSED = "paused"
    DISMISSED = "dismissed"
    LATE = "late"
    MONTHLY_CAP = "monthly_cap"
    MINUTE_CAP = "minute_cap"  # delayed, not failed
    NO_ROUTE = "no_route"  # no connection, or the action was refused at request
    NO_TEXT = "no_text"


def run_key(run: SopRun) -> str:
    """The idempotency key of the send of a run's current attempt: ``sop:run:<id>``, and from a
    retry on ``sop:run:<id>:<attempt>`` — a new action, where the failed attempt's key would
    only give back the failed action."""
    return f"{KEY_PREFIX}{run.id}" if run.attempt <= 1 else f"{KEY_PREFIX}{run.id}:{run.attempt}"


# --- fanning out ----------------------------------------------------------------------------------


def claim_due(session: Session, now: datetime, *, org_id: int | None = None, limit: int = FANOUT_LIMIT) -> int:
    """Claim up to ``limit`` due planned runs, mark them queued and enqueue their ``sop.fire``
    jobs (:data:`CHUNK` each); returns how many were claimed."""
    query = (
        select(SopRun.id, SopRun.org_id)
        .where(SopRun.state == RunState.PLANNED.value, SopRun.fire_at <= now)
        .order_by(SopRun.fire_at, SopRun.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if org_id is not None:
        query = query.where(SopRun.org_id == org_id)
    rows = session.execute(query).all()
    if not rows:
        return 0
    ids = [r.id for r in rows]
    for i in range(0, len(ids), 1000):
        session.execute(
            update(SopRun)
            .where(SopRun.id.in_(ids[i : i + 1000]))
            .values(state=RunState.QUEUED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    by_org: dict[int, list[int]] = {}
    for run_id, run_org in rows:
        by_org.setdefault(run_org, []).append(run_id)
    for run_org, run_ids in by_org.items():
        for i in range(0, len(run_ids), CHUNK):
            enqueue_fire(session, run_ids[i : i + CHUNK], run_org)
    return len(ids)


def enqueue_fire(session: Session, run_ids: list[int], org_id: int | None) -> None:
    """A ``sop.fire`` job for ``run_ids``. Each crash of a worker holding it costs an attempt, and
    a dead one would leave its runs queued until the hourly sweep: it gets as many attempts as a
    send's perform job."""
    enqueue(session, FIRE_JOB, {"run_ids": run_ids}, org_id=org_id, max_attempts=JOB_MAX_ATTEMPTS)


# --- firing ---------------------------------------------------------------------------------------


@dataclass
class Fired:
    """What one :func:`fire_runs` did, by run id."""

    sent: list[int] = field(default_factory=list)  # handed to the connector
    assigned: list[int] = field(default_factory=list)  # a staff task opened
    skipped: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    delayed: list[int] = field(default_factory=list)


@dataclass
class _Context:
    """Rows looked up once per batch."""

    plans: dict[int, SopPlan] = field(default_factory=dict)
    steps: dict[int, SopStep] = field(default_factory=dict)
    groups: dict[int, Group] = field(default_factory=dict)
    apps: dict[int, SopApplication] = field(default_factory=dict)
    zones: dict[int, ZoneInfo] = field(default_factory=dict)
    paused_groups: set[int] = field(default_factory=set)
    owners: dict[int, str] = field(default_factory=dict)
    pending: dict[int, int] = field(default_factory=dict)  # group id → sends of the batch so far


def fire_runs(session: Session, run_ids: Sequence[int], now: datetime | None = None) -> Fired:
    """Fire the given runs that are still ``queued`` (any other is left alone, so a job that runs
    again, or two jobs naming one run, act once)."""
    now = now or utcnow()
    fired = Fired()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:  # one statement text whatever the chunk's size: parsed and planned once
        runs = list(session.scalars(_QUEUED_PG, {"ids": pg_array(sorted(set(run_ids)))}))
    else:
        runs = list(session.scalars(_QUEUED.where(SopRun.id.in_(list(run_ids)))))
    if not runs:
        return fired
    ctx = _load(session, runs)
    sends: list[_Send] = []
    for run in runs:
        _fire(session, ctx, run, now, fired, sends)
    _request_sends(session, sends, now, fired)
    session.flush()
    return fired


@dataclass
class _Send:
    """A bot run of the batch whose send is requested with the others (``request_actions``)."""

    run: SopRun
    text: str
    request: ActionRequest


def _request_sends(session: Session, sends: list[_Send], now: datetime, fired: Fired) -> None:
    """Request the batch's sends in one dispatch batch per organisation (a few statements for all
    of them) and hand each run on; a run whose send cannot be routed (no connection, a group on
    another one, a payload that does not build) fails, with nothing written for it."""
    by_org: dict[int, list[_Send]] = {}
    for send in sends:
        by_org.setdefault(send.run.org_id, []).append(send)
    # PostgreSQL: the runs handed on are written in one statement, not one UPDATE a run.
    postgres = session.get_bind().dialect.name == "postgresql"
    handed: list[SopRun] = []
    for org_id, batch in by_org.items():
        outcomes = request_actions(session, org_id, [send.request for send in batch])
        for send, outcome in zip(batch, outcomes, strict=True):
            run = send.run
            if isinstance(outcome, QunyunError):
                _settle(run, RunState.FAILED, Reason.NO_ROUTE, now, fired.failed)
                continue
            # Stored as at least "sending" (handed on); what it is now is its action's state.
            state = action_run_state(outcome.state)
            values = {
                "action_id": outcome.id,
                "text": send.text,
                "fired_at": now,
                "state": (RunState.SENDING if state == RunState.QUEUED else state).value,
                "reason": "",
                "updated_at": now,
            }
            for name, value in values.items():
                if postgres:  # the row is written below, with the others: the ORM takes it as stored
                    set_committed_value(run, name, value)
                else:
                    setattr(run, name, value)
            handed.append(run)
            fired.sent.append(run.id)
    if postgres and handed:
        session.execute(
            _HANDED_PG,
            {
                "ids": pg_array([run.id for run in handed]),
                "actions": pg_array([run.action_id for run in handed]),
                "states": pg_array([run.state for run in handed]),
                "texts": pg_array([run.text for run in handed]),
                "at": to_micros(now),
            },
        )


_HANDED_PG = text(
    """
    UPDATE sop_runs AS r
    SET action_id = h.action_id, text = h.text, state = h.state, reason = '', fired_at = :at, updated_at = :at
    FROM unnest(CAST(:ids AS BIGINT[]), CAST(:actions AS BIGINT[]), CAST(:states AS VARCHAR[]), CAST(:texts AS TEXT[]))
        AS h(id, action_id, state, text)
    WHERE r.id = h.id
    """
)


_QUEUED = (
    select(SopRun)
    .where(SopRun.state == RunState.QUEUED.value, SopRun.action_id.is_(None), SopRun.task_id.is_(None))
    .order_by(SopRun.id)
    .with_for_update()
)
_QUEUED_PG = _QUEUED.where(SopRun.id == any_(cast(bindparam("ids", type_=Text()), postgresql.ARRAY(BigInteger()))))
_BY_ANY_ID: dict[Any, Any] = {}  # model → its SELECT … WHERE id = ANY(:ids) (PostgreSQL)


def _load(session: Session, runs: Sequence[SopRun]) -> _Context:
    ctx = _Context()
    postgres = session.get_bind().dialect.name == "postgresql"

    def by_id(model: Any, ids: set[int]) -> dict[int, Any]:
        if not postgres:
            return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))}
        if model not in _BY_ANY_ID:
            array = cast(bindparam("ids", type_=Text()), postgresql.ARRAY(BigInteger()))
            _BY_ANY_ID[model] = select(model).where(model.id == any_(array))
        return {row.id: row for row in session.scalars(_BY_ANY_ID[model], {"ids": pg_array(sorted(ids))})}

    ctx.plans = by_id(SopPlan, {r.plan_id for r in runs})
    ctx.steps = by_id(SopStep, {r.step_id for r in runs})
    ctx.groups = by_id(Group, {r.group_id for r in runs})
    ctx.apps = by_id(SopApplication, {r.application_id for r in runs})
    ctx.paused_groups = set(
        session.scalars(select(SopGroupPause.group_id).where(SopGroupPause.group_id.in_(ctx.groups)))
    )
    for org_id, zone in session.execute(
        select(Organisation.id, Organisation.time_zone).where(Organisation.id.in_({r.org_id for r in runs}))
    ):
        ctx.zones[org_id] = ZoneInfo(zone)
    owner_ids = {g.owner_id for g in ctx.groups.values() if g.owner_id is not None}
    if owner_ids:
        ctx.owners = dict(session.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(owner_ids))).all())
    return ctx


def _settle(run: SopRun, state: RunState, reason: str, now: datetime, bucket: list[int]) -> None:
    run.state = state.value
    run.reason = reason
    run.updated_at = now
    bucket.append(run.id)


def _fire(session: Session, ctx: _Context, run: SopRun, now: datetime, fired: Fired, sends: list[_Send]) -> None:
    plan, step, group, app = (
        ctx.plans[run.plan_id],
        ctx.steps[run.step_id],
        ctx.groups[run.group_id],
        ctx.apps[run.application_id],
    )
    if group.status in (GroupStatus.DISMISSED, GroupStatus.ARCHIVED):
        return _settle(run, RunState.SKIPPED, Reason.DISMISSED, now, fired.skipped)
    if plan.paused or app.paused or group.id in ctx.paused_groups:
        return _settle(run, RunState.SKIPPED, Reason.PAUSED, now, fired.skipped)
    # A retried attempt is late counting from when it became due, not from the run's due time.
    if now - (run.attempt_due_at or run.due_at) > LATE_LIMIT:
        return _settle(run, RunState.EXPIRED, Reason.LATE, now, fired.expired)
    zone = ctx.zones[run.org_id]
    text = compose(session, ctx, run, step, plan, group, app, zone)
    executor = Executor(step.executor)
    if executor != Executor.BOT:
        return _assign(session, run, step, plan, group, executor, text, now, fired)
    if not text.strip() and not _media(step):
        return _settle(run, RunState.FAILED, Reason.NO_TEXT, now, fired.failed)
    pending = ctx.pending.get(group.id, 0)  # sends of this batch in the group, not yet requested
    cap = _over_cap(session, group, zone, now, pending)
    if cap == Reason.MONTHLY_CAP:
        return _settle(run, RunState.FAILED, Reason.MONTHLY_CAP, now, fired.failed)
    if cap == Reason.MINUTE_CAP:
        # Back to planned a minute on, with the minute's job to take it then.
        run.fire_at = now + timedelta(minutes=1)
        _settle(run, RunState.PLANNED, Reason.MINUTE_CAP, now, fired.delayed)
        schedule_minutes(session, [to_micros(run.fire_at)])
        return None
    payload: dict[str, Any] = {"text": text}
    media = _media(step)
    if media is not None:
        payload["material"] = media
    request = ActionRequest("send_group_message", payload, run_key(run), group_id=group.id)
    sends.append(_Send(run, text, request))
    ctx.pending[group.id] = pending + 1
    return None


def _assign(
    session: Session,
    run: SopRun,
    step: SopStep,
    plan: SopPlan,
    group: Group,
    executor: Executor,
    text: str,
    now: datetime,
    fired: Fired,
) -> None:
    """An assisted run: a task with the script and materials for the group's person in the
    executor's role (else the group's usual assignee)."""
    detail = {
        "sop_run_id": run.id,
        "plan_id": plan.id,
        "plan": plan.name,
        "category": step.category,
        "title": step.title,
        "detail": step.detail,
        "payload": {"text": text},
        "materials": list(step.materials or []),
        "prompt": step.prompt,
        "executor": executor.value,
        "evidence_required": step.evidence_required,
    }
    task = open_task(
        session,
        org_id=run.org_id,
        kind=TaskKind.SOP_STEP,
        title=Msg("sop.task.title", category=step.category, title=step.title or step.category, group=group.name),
        detail=detail,
        group_id=group.id,
        assignee_id=assignee_for(session, group, executor),
        due_at=run.due_at + TASK_DUE_AFTER,
    )
    run.task_id = task.id
    run.text = text
    run.fired_at = now
    _settle(run, RunState.ASSIGNED, "", now, fired.assigned)


def assignee_for(session: Session, group: Group, executor: Executor) -> int | None:
    """The group's active person in the executor's role: its owner (群主), else one assigned to
    it in that role (the longest assigned); None when there is none (the task's default rule)."""
    if executor == Executor.OWNER and group.owner_id is not None:
        active = session.scalar(select(Staff.is_active).where(Staff.id == group.owner_id))
        if active:
            return group.owner_id
    assigned = session.scalar(
        select(StaffGroupAssignment.staff_id)
        .join(Staff, Staff.id == StaffGroupAssignment.staff_id)
        .where(
            StaffGroupAssignment.group_id == group.id,
            StaffGroupAssignment.role == executor.value,
            Staff.is_active.is_(True),
        )
        .order_by(StaffGroupAssignment.id)
        .limit(1)
    )
    return assigned if assigned is not None else default_assignee(session, group.org_id, group.id)


# --- rendering ------------------------------------------------------------------------------------


def script_values(
    *,
    group: Group,
    owner_name: str,
    plan: SopPlan,
    app: SopApplication,
    day: date,
    next_activity: str = "",
) -> dict[str, str]:
    """The values of :data:`SCRIPT_VARIABLES` for a run on ``day``. ``{day}`` is the campaign's
    day (D-7, D+3…) or, in a daily plan, the how-manieth day of the plan (1 on its start day)."""
    offset = (day - to_date(app.start_day)).days
    return {
        "group_name": group.name,
        "member_count": str(group.member_count),
        "date": f"{day.month}月{day.day}日",
        "weekday": WEEKDAYS[day.weekday()],
        "owner_name": owner_name,
        "next_activity": next_activity,
        "plan_name": plan.name,
        "day": f"D{offset:+d}" if plan.kind == PlanKind.CAMPAIGN else str(offset + 1),
    }


def compose(
    session: Session,
    ctx: _Context,
    run: SopRun,
    step: SopStep,
    plan: SopPlan,
    group: Group,
    app: SopApplication,
    zone: ZoneInfo,
) -> str:
    """The message of a run: its script, its interaction prompt and its text and link materials,
    one paragraph each, with the variables filled in."""
    wants_next = "{next_activity}" in step.script or "{next_activity}" in step.prompt
    values = script_values(
        group=group,
        owner_name=ctx.owners.get(group.owner_id or 0, ""),
        plan=plan,
        app=app,
        day=to_date(run.day),
        next_activity=_next_activity(session, run) if wants_next else "",
    )
    parts = [fill_lenient(step.script, values, allowed=SCRIPT_VARIABLES).strip()]
    if step.prompt.strip():
        parts.append(fill_lenient(step.prompt, values, allowed=SCRIPT_VARIABLES).strip())
    for material in step.materials or []:
        if material["kind"] == MaterialKind.TEXT:
            parts.append(material["value"].strip())
        elif material["kind"] == MaterialKind.LINK:
            parts.append(" ".join(p for p in (material.get("title", "").strip(), material["value"].strip()) if p))
    return "\n\n".join(p for p in parts if p)


def _media(step: SopStep) -> str | None:
    """The first image, mini-program or file: sent along with the text."""
    for material in step.materials or []:
        if material["kind"] in (MaterialKind.IMAGE, MaterialKind.MINIPROGRAM, MaterialKind.FILE):
            return str(material["value"])
    return None


def _next_activity(session: Session, run: SopRun) -> str:
    """The title (or category) of the group's next 活跃活动 run after this one."""
    row = session.execute(
        select(SopStep.title, SopStep.category)
        .join(SopRun, SopRun.step_id == SopStep.id)
        .where(SopRun.group_id == run.group_id, SopRun.due_at > run.due_at, SopStep.category == "活跃活动")
        .order_by(SopRun.due_at)
        .limit(1)
    ).first()
    return (row.title or row.category) if row is not None else ""


# --- caps -----------------------------------------------------------------------------------------


def monthly_cap_reached(
    session: Session, group: Group, zone: ZoneInfo, now: datetime, *, pending: int = 0, replacing: int = 0
) -> bool:
    """Whether a send in ``group`` now would be over its platform's monthly cap (a retry is refused
    rather than failed again at once); ``pending``: sends queued before it and not yet fired (a
    bulk retry's); ``replacing``: sends counted so far that it replaces (a retried run's failed
    send of this month, no longer counted once it is retried)."""
    return _over_cap(session, group, zone, now, pending - replacing) == Reason.MONTHLY_CAP


def _over_cap(session: Session, group: Group, zone: ZoneInfo, now: datetime, pending: int = 0) -> str | None:
    """Which platform cap a send in ``group`` now would break, if any (counted over the SOP's own
    sends in the group, ``pending`` of them in this batch and not yet requested)."""
    try:
        limits = get_profile(group.platform).limits
    except QunyunError:  # a platform without a declared profile: no caps known
        limits = {}
    sent = (SopRun.group_id == group.id, SopRun.action_id.is_not(None))
    monthly = limits.get("mass_sends_per_month")
    if monthly is not None or group.platform in MONTHLY_CAP_PLATFORMS:
        local = now.astimezone(zone)
        first = datetime(local.year, local.month, 1, tzinfo=zone)
        after = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=zone)
        cap = monthly if monthly is not None else (after - first).days
        count = session.scalar(
            select(func.count()).select_from(SopRun).where(*sent, SopRun.fired_at >= first, SopRun.fired_at < after)
        )
        if (count or 0) + pending >= cap:
            return Reason.MONTHLY_CAP
    per_minute = next((limits[key] for key in PER_MINUTE_KEYS if key in limits), PER_MINUTE_CAP.get(group.platform))
    if per_minute is not None:
        count = session.scalar(
            select(func.count()).select_from(SopRun).where(*sent, SopRun.fired_at > now - timedelta(minutes=1))
        )
        if (count or 0) + pending >= per_minute:
            return Reason.MINUTE_CAP
    return None

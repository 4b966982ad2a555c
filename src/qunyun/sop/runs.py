"""SOP runs: a plan applied to a group materializes one run per step and day, with its fire time
in the organisation's time zone (docs/sop.md).

- A **daily** plan's runs are materialized :data:`HORIZON_DAYS` ahead and extended every day
  (:func:`extend_all`, the periodic job ``sop.extend``); a **campaign**'s all at once (start day
  + each step's offset, or the step's own date).
- Only runs whose time is still to come are made: applying a plan does not back-fill the past.
- A run inside its plan's quiet hours is due when they end (same day, or the next morning for
  quiet hours over midnight): it waits, it is not skipped.
- Editing a plan (steps, quiet hours) deletes its runs not yet due and makes them again: runs
  that fired, or are due and about to, keep what they were.
- Rows are inserted in bulk (Core executemany, no ORM objects): 2.24 M runs for 10,000 groups
  run in minutes, not hours (docs/performance.md).

A run's state (:class:`RunState`) is stored while the run is the SOP engine's own (planned,
queued, skipped, expired, failed before it was handed on); once it fired it is the state of its
outbound action or staff task, read through :func:`effective_state`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Table, and_, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, group_visible, require_group
from qunyun.db.base import to_micros
from qunyun.errors import InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import (
    Group,
    GroupStatus,
    Job,
    JobStatus,
    Organisation,
    OutboundAction,
    SopApplication,
    SopAttachment,
    SopGroupPause,
    SopPlan,
    SopRun,
    SopStep,
    StaffTask,
)
from qunyun.sop.service import AttachTarget, active_steps, require_editor, require_plan
from qunyun.sop.types import PlanKind, RunState
from qunyun.timeutil import day_key, utcnow

FIRE_DUE_JOB = "sop.fire_due"  # the periodic pass that claims due runs (qunyun.sop.execute)
HORIZON_DAYS = 28  # a daily plan's runs are materialized this far ahead
INSERT_CHUNK = 5000  # rows built in memory before they are inserted
VALUES_CHUNK = 500  # rows per INSERT statement (11 parameters each: within every driver's limit)
# States of a run that has not fired: rebuilt when its plan changes.
UNFIRED = (RunState.PLANNED.value,)

_ACTION_TO_RUN: dict[str, RunState] = {
    "planned": RunState.QUEUED,
    "queued": RunState.QUEUED,
    "sending": RunState.SENDING,
    "sent": RunState.SENT,
    "awaiting_confirmation": RunState.AWAITING_CONFIRMATION,
    "confirmed": RunState.CONFIRMED,
    "delegated": RunState.ASSIGNED,  # a person does it by hand
    "uncertain": RunState.ASSIGNED,  # a person checks whether it went out
    "failed": RunState.FAILED,
    "expired": RunState.EXPIRED,
}
_TASK_TO_RUN: dict[str, RunState] = {"open": RunState.ASSIGNED, "done": RunState.DONE, "cancelled": RunState.SKIPPED}


def effective_state(
    stored: str,
    *,
    action_state: str | None = None,
    task_status: str | None = None,
    paused: bool = False,
    dismissed: bool = False,
) -> RunState:
    """What a run is now: its action's or task's state once it fired, else its own (a planned
    run of a paused plan or group reads ``paused``, of a dismissed group ``skipped``)."""
    if action_state is not None:
        return _ACTION_TO_RUN.get(action_state, RunState.QUEUED)
    if task_status is not None:
        return _TASK_TO_RUN.get(task_status, RunState.ASSIGNED)
    state = RunState(stored)
    if state == RunState.PLANNED:
        if dismissed:
            return RunState.SKIPPED
        if paused:
            return RunState.PAUSED
    return state


def action_run_state(action_state: str) -> RunState:
    return _ACTION_TO_RUN.get(action_state, RunState.QUEUED)


# --- time ----------------------------------------------------------------------------------------


def zone_of(session: Session, org_id: int) -> ZoneInfo:
    return ZoneInfo(session.get_one(Organisation, org_id).time_zone)


def to_date(key: int) -> date:
    return date(key // 10000, key // 100 % 100, key % 100)


def fire_instant(day: date, minute: int, zone: ZoneInfo, quiet: tuple[int | None, int | None]) -> datetime:
    """The instant of ``minute`` (of the local day) on ``day``, moved to the end of the quiet
    hours when it falls inside them."""
    start, end = quiet
    if start is not None and end is not None:
        if start < end and start <= minute < end:
            minute = end
        elif start > end and minute >= start:
            day, minute = day + timedelta(days=1), end
        elif start > end and minute < end:
            minute = end
    return datetime.combine(day, time(minute // 60, minute % 60), zone)


def bucket_key(at: datetime) -> str:
    """The periodic scheduler's bucket of the minute that holds ``at``: the job firing the runs due
    in that minute and the periodic pass of that minute are one job (one key)."""
    minute = datetime.fromtimestamp(int(at.timestamp()) // 60 * 60, UTC)
    return f"{minute:%Y-%m-%dT%H:%M:%SZ}"


def schedule_minutes(session: Session, instants: Iterable[int]) -> None:
    """Make sure a ``sop.fire_due`` job runs at each minute of ``instants`` (UTC microseconds),
    so that runs go out on time rather than at the periodic scheduler's next look. One insert for
    every minute; a minute that has its job already keeps it (the key is unique)."""
    minutes = sorted({value // 60_000_000 for value in instants})
    if not minutes:
        return
    now = utcnow()
    rows = []
    for minute in minutes:
        at = datetime.fromtimestamp(minute * 60, UTC)
        bucket = bucket_key(at)
        rows.append(
            {
                "org_id": None,
                "kind": FIRE_DUE_JOB,
                "payload": {"bucket": bucket},
                "key": f"{FIRE_DUE_JOB}@{bucket}",
                "status": JobStatus.QUEUED.value,
                "priority": 0,
                "run_at": at,
                "attempts": 0,
                "max_attempts": 5,
                "created_at": now,
            }
        )
    table = cast(Table, Job.__table__)
    for i in range(0, len(rows), VALUES_CHUNK):
        session.execute(_insert_ignoring(session, table).values(rows[i : i + VALUES_CHUNK]))


# --- applying -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    application: SopApplication
    runs: int  # runs made now


def apply(
    session: Session, scope: Scope, plan_id: int, group_id: int, start: date | None, *, now: datetime | None = None
) -> Applied:
    """Run a plan in a group from ``start`` (default: today in the organisation's zone) and
    materialize its runs. Applying a daily plan again returns its application (runs extended);
    a campaign applied again with another start is a second cycle."""
    plan = require_plan(session, scope, plan_id, write=True)
    group = require_group(session, scope, group_id, write=True)
    if group.status == GroupStatus.DISMISSED:
        raise InvalidInput(Msg("err.sop.group_dismissed", id=group.id), field="group_id")
    now = now or utcnow()
    zone = zone_of(session, scope.org_id)
    application = _application(session, plan, group.id, start or now.astimezone(zone).date(), None)
    return Applied(application, materialize(session, plan, [application], now, zone=zone))


def apply_many(
    session: Session, scope: Scope, plan_id: int, group_ids: Sequence[int], start: date, *, now: datetime | None = None
) -> int:
    """Apply one plan to many groups at once (benches, a community's groups); the runs made."""
    require_editor(scope)
    plan = require_plan(session, scope, plan_id, write=True)
    wanted = list(dict.fromkeys(group_ids))
    visible: set[int] = set()
    for i in range(0, len(wanted), 1000):
        chunk = wanted[i : i + 1000]
        visible |= set(session.scalars(select(Group.id).where(Group.id.in_(chunk), group_visible(scope))))
    now = now or utcnow()
    zone = zone_of(session, scope.org_id)
    apps = _applications(session, plan, [g for g in wanted if g in visible], start)
    return materialize(session, plan, apps, now, zone=zone)


def _applications(session: Session, plan: SopPlan, group_ids: list[int], start: date) -> list[SopApplication]:
    """Each group's application of the plan (as :func:`_application`), made in bulk."""
    start_day = day_key(start)

    def existing(chunk: list[int]) -> dict[int, SopApplication]:
        query = select(SopApplication).where(SopApplication.plan_id == plan.id, SopApplication.group_id.in_(chunk))
        if plan.kind == PlanKind.CAMPAIGN:
            query = query.where(SopApplication.start_day == start_day)
        found: dict[int, SopApplication] = {}
        for app in session.scalars(query.order_by(SopApplication.id)):
            found.setdefault(app.group_id, app)
        return found

    out: list[SopApplication] = []
    created = utcnow()
    for i in range(0, len(group_ids), 1000):
        chunk = group_ids[i : i + 1000]
        have = existing(chunk)
        rows = [
            {
                "org_id": plan.org_id,
                "plan_id": plan.id,
                "group_id": g,
                "attachment_id": None,
                "start_day": start_day,
                "through_day": None,
                "paused": False,
                "created_at": created,
            }
            for g in chunk
            if g not in have
        ]
        if rows:
            session.execute(_insert_ignoring(session, cast(Table, SopApplication.__table__)), rows)
            have = existing(chunk)
        out.extend(have[g] for g in chunk if g in have)
    return out


def _application(
    session: Session, plan: SopPlan, group_id: int, start: date, attachment_id: int | None
) -> SopApplication:
    query = select(SopApplication).where(SopApplication.plan_id == plan.id, SopApplication.group_id == group_id)
    if plan.kind == PlanKind.CAMPAIGN:
        query = query.where(SopApplication.start_day == day_key(start))
    existing = session.scalar(query.order_by(SopApplication.id).limit(1))
    if existing is not None:
        return existing
    row = SopApplication(
        org_id=plan.org_id,
        plan_id=plan.id,
        group_id=group_id,
        attachment_id=attachment_id,
        start_day=day_key(start),
        through_day=None,
        paused=False,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def materialize(
    session: Session,
    plan: SopPlan,
    applications: Sequence[SopApplication],
    now: datetime,
    *,
    zone: ZoneInfo | None = None,
    steps: Sequence[SopStep] | None = None,
) -> int:
    """Insert the runs the applications lack (time still to come, through the horizon for a daily
    plan); returns how many were made."""
    if not applications:
        return 0
    zone = zone or zone_of(session, plan.org_id)
    steps = list(steps) if steps is not None else active_steps(session, plan.id)
    quiet = (plan.quiet_start, plan.quiet_end)
    now_micros = to_micros(now)
    today = now.astimezone(zone).date()
    stamp = now_micros
    rows: list[dict[str, Any]] = []
    made = 0
    # The same (day, minute) comes up in every group: compute each instant once.
    instants: dict[tuple[date, int], int] = {}
    due: set[int] = set()

    def instant(day: date, minute: int) -> int:
        value = instants.get((day, minute))
        if value is None:
            value = instants[(day, minute)] = to_micros(fire_instant(day, minute, zone, quiet))
        return value

    for app in applications:
        start = to_date(app.start_day)
        if plan.kind == PlanKind.DAILY:
            first = max(start, today)
            if app.through_day is not None:
                first = max(first, to_date(app.through_day) + timedelta(days=1))
            last = max(start, today) + timedelta(days=HORIZON_DAYS - 1)
            days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
            pairs = [(d, s) for d in days for s in steps]
            app.through_day = max(app.through_day or 0, day_key(last))
        else:
            pairs = [(to_date(s.on_day) if s.on_day else start + timedelta(days=s.day or 0), s) for s in steps]
            app.through_day = max((day_key(d) for d, _ in pairs), default=None)
        for day, step in pairs:
            at = instant(day, step.at_minute)
            if at < now_micros:
                continue
            due.add(at)
            rows.append(
                {
                    "org_id": plan.org_id,
                    "plan_id": plan.id,
                    "application_id": app.id,
                    "group_id": app.group_id,
                    "step_id": step.id,
                    "day": day_key(day),
                    "due_at": at,
                    "fire_at": at,
                    "state": RunState.PLANNED.value,
                    "reason": "",
                    "updated_at": stamp,
                }
            )
            if len(rows) >= INSERT_CHUNK:
                made += _insert(session, rows)
                rows = []
    made += _insert(session, rows)
    schedule_minutes(session, due)
    session.flush()
    return made


RUN_COLUMNS = (
    "org_id",
    "plan_id",
    "application_id",
    "group_id",
    "step_id",
    "day",
    "due_at",
    "fire_at",
    "state",
    "reason",
    "updated_at",
)


def _insert(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert runs, passing over any a concurrent materialization made first (the unique key).

    PostgreSQL: COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT DO NOTHING
    (a statement per row, even pipelined, ran at a few thousand rows a second). SQLite: the
    driver's executemany, which loops in C."""
    if not rows:
        return 0
    if session.get_bind().dialect.name != "postgresql":
        session.execute(_insert_ignoring(session, cast(Table, SopRun.__table__)), rows)
        return len(rows)
    raw = session.connection().connection.driver_connection
    columns = ", ".join(RUN_COLUMNS)
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS sop_runs_in (org_id int, plan_id int, application_id int,"
            " group_id int, step_id int, day int, due_at bigint, fire_at bigint, state varchar(24),"
            " reason varchar(64), updated_at bigint) ON COMMIT DROP"
        )
        with cur.copy(f"COPY sop_runs_in ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in RUN_COLUMNS))
        cur.execute(f"INSERT INTO sop_runs ({columns}) SELECT {columns} FROM sop_runs_in ON CONFLICT DO NOTHING")
        cur.execute("TRUNCATE sop_runs_in")
    return len(rows)


def _insert_ignoring(session: Session, table: Table) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)).on_conflict_do_nothing()


def rebuild_plan(session: Session, plan: SopPlan, now: datetime) -> int:
    """After a plan changed: delete its runs not yet due and make them again from its current
    steps (future runs only). Returns the runs made. "Not yet due" is by the due time: a run due
    already but held back a minute by a platform's cap (``fire_at`` later) is not a future run,
    and would not be made again (:func:`materialize` makes none in the past)."""
    session.execute(delete(SopRun).where(SopRun.plan_id == plan.id, SopRun.state.in_(UNFIRED), SopRun.due_at >= now))
    apps = list(session.scalars(select(SopApplication).where(SopApplication.plan_id == plan.id)))
    for app in apps:
        app.through_day = None
    return materialize(session, plan, apps, now)


# --- attachments and new groups ---------------------------------------------------------------------


def _covered_groups(session: Session, attachment: SopAttachment) -> list[int]:
    column = {
        AttachTarget.GROUP: Group.id,
        AttachTarget.PLAYBOOK: Group.playbook_id,
        AttachTarget.COMMUNITY: Group.community_id,
    }[attachment.target]
    return list(
        session.scalars(
            select(Group.id).where(
                Group.org_id == attachment.org_id, column == attachment.target_id, Group.status != GroupStatus.DISMISSED
            )
        )
    )


def apply_attachment(
    session: Session, attachment: SopAttachment, now: datetime, *, group_ids: Iterable[int] | None = None
) -> int:
    """Give every group the attachment covers (or those of ``group_ids`` it covers) that lacks
    one an application of its plan, and materialize; returns the runs made."""
    plan = session.get_one(SopPlan, attachment.plan_id)
    covered = _covered_groups(session, attachment)
    if group_ids is not None:
        wanted = set(group_ids)
        covered = [g for g in covered if g in wanted]
    if not covered:
        return 0
    have = set(
        session.scalars(
            select(SopApplication.group_id).where(
                SopApplication.plan_id == plan.id, SopApplication.group_id.in_(covered)
            )
        )
    )
    zone = zone_of(session, plan.org_id)
    today = now.astimezone(zone).date()
    steps = active_steps(session, plan.id)
    first_offset = min((s.day for s in steps if s.day is not None), default=0)
    apps = []
    for group_id in covered:
        if group_id in have:
            continue
        if attachment.start_day is not None:
            start = to_date(attachment.start_day)
        elif plan.kind == PlanKind.CAMPAIGN:
            start = today - timedelta(days=first_offset)  # the first step (D-7) falls today
        else:
            start = today
        apps.append(_application(session, plan, group_id, start, attachment.id))
    return materialize(session, plan, apps, now, zone=zone, steps=steps)


def apply_attached(session: Session, group_id: int, *, now: datetime | None = None) -> int:
    """Give a group the plans attached to it, its playbook or its community (call it where a
    group is created from a playbook; the periodic ``sop.extend`` does it too). Runs made."""
    group = session.get(Group, group_id)
    if group is None or group.status == GroupStatus.DISMISSED:
        return 0
    targets = [(AttachTarget.GROUP, group.id)]
    if group.playbook_id is not None:
        targets.append((AttachTarget.PLAYBOOK, group.playbook_id))
    if group.community_id is not None:
        targets.append((AttachTarget.COMMUNITY, group.community_id))
    found = session.scalars(
        select(SopAttachment).where(
            SopAttachment.org_id == group.org_id,
            or_(*(and_(SopAttachment.target == t, SopAttachment.target_id == i) for t, i in targets)),
        )
    )
    now = now or utcnow()
    return sum(apply_attachment(session, attachment, now, group_ids=[group.id]) for attachment in found)


def extend_all(session: Session, now: datetime, *, org_id: int | None = None) -> int:
    """The daily pass: attachments reach groups that appeared since, and daily plans' runs are
    extended to the horizon. Returns the runs made."""
    made = 0
    query = select(SopAttachment).order_by(SopAttachment.id)
    if org_id is not None:
        query = query.where(SopAttachment.org_id == org_id)
    for attachment in list(session.scalars(query)):
        made += apply_attachment(session, attachment, now)
    plans = select(SopPlan).where(SopPlan.kind == PlanKind.DAILY.value)
    if org_id is not None:
        plans = plans.where(SopPlan.org_id == org_id)
    for plan in list(session.scalars(plans.order_by(SopPlan.id))):
        zone = zone_of(session, plan.org_id)
        horizon = day_key(now.astimezone(zone).date() + timedelta(days=HORIZON_DAYS - 1))
        apps = list(
            session.scalars(
                select(SopApplication)
                .join(Group, Group.id == SopApplication.group_id)
                .where(
                    SopApplication.plan_id == plan.id,
                    or_(SopApplication.through_day.is_(None), SopApplication.through_day < horizon),
                    Group.status != GroupStatus.DISMISSED,
                )
            )
        )
        made += materialize(session, plan, apps, now, zone=zone)
    return made


# --- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    id: int
    plan_id: int
    plan_name: str
    step_id: int
    category: str
    title: str
    executor: str
    group_id: int
    group_external_id: str
    group_name: str
    day: int
    due_at: datetime
    fire_at: datetime
    fired_at: datetime | None
    state: RunState
    reason: str
    action_id: int | None
    task_id: int | None
    attempt: int = 1  # 2 and on: retried (sop.retry)


def list_runs(
    session: Session,
    scope: Scope,
    *,
    group_id: int | None = None,
    plan_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
    group_ids: Sequence[int] | None = None,
    run_id: int | None = None,
) -> list[RunRow]:
    """Runs of the groups the scope sees (one group's if ``group_id``; only those among
    ``group_ids`` when given; only run ``run_id`` when given), due in [start, end), oldest
    first, with their effective state."""
    if group_id is not None:
        require_group(session, scope, group_id)
    if plan_id is not None:
        require_plan(session, scope, plan_id)
    query = (
        select(
            SopRun,
            SopPlan.name,
            SopPlan.paused,
            SopStep.category,
            SopStep.title,
            SopStep.executor,
            Group.external_id,
            Group.name,
            Group.status,
            SopApplication.paused,
            SopGroupPause.group_id,
            OutboundAction.state,
            StaffTask.status,
        )
        .join(SopPlan, SopPlan.id == SopRun.plan_id)
        .join(SopStep, SopStep.id == SopRun.step_id)
        .join(Group, Group.id == SopRun.group_id)
        .join(SopApplication, SopApplication.id == SopRun.application_id)
        .outerjoin(SopGroupPause, SopGroupPause.group_id == SopRun.group_id)
        .outerjoin(OutboundAction, OutboundAction.id == SopRun.action_id)
        .outerjoin(StaffTask, StaffTask.id == SopRun.task_id)
        .where(*_filters(scope, group_id, plan_id, start, end, group_ids))
        .order_by(SopRun.due_at, SopRun.id)
    )
    if run_id is not None:
        query = query.where(SopRun.id == run_id)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    out = []
    for (
        run,
        plan_name,
        plan_paused,
        category,
        title,
        executor,
        ext,
        name,
        status,
        app_paused,
        pause,
        action,
        task,
    ) in session.execute(query).all():
        state = effective_state(
            run.state,
            action_state=action,
            task_status=task,
            paused=bool(plan_paused or app_paused or pause is not None),
            dismissed=status == GroupStatus.DISMISSED,
        )
        out.append(
            RunRow(
                id=run.id,
                plan_id=run.plan_id,
                plan_name=plan_name,
                step_id=run.step_id,
                category=category,
                title=title,
                executor=executor,
                group_id=run.group_id,
                group_external_id=ext,
                group_name=name,
                day=run.day,
                due_at=run.due_at,
                fire_at=run.fire_at,
                fired_at=run.fired_at,
                state=state,
                reason=run.reason,
                action_id=run.action_id,
                task_id=run.task_id,
                attempt=run.attempt,
            )
        )
    return out


def get_run(session: Session, scope: Scope, run_id: int) -> RunRow:
    """One run the scope sees, with its effective state (NotFound otherwise, as for a missing one)."""
    found = list_runs(session, scope, run_id=run_id)
    if not found:
        raise NotFound(Msg("err.sop.no_run", id=run_id), field="run_id")
    return found[0]


def count_runs(
    session: Session,
    scope: Scope,
    *,
    group_id: int | None = None,
    plan_id: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> int:
    """How many runs :func:`list_runs` finds with the same filters (no limit)."""
    query = (
        select(func.count())
        .select_from(SopRun)
        .join(Group, Group.id == SopRun.group_id)
        .where(*_filters(scope, group_id, plan_id, start, end))
    )
    return session.scalar(query) or 0


def _filters(
    scope: Scope,
    group_id: int | None,
    plan_id: int | None,
    start: datetime | None,
    end: datetime | None,
    group_ids: Sequence[int] | None = None,
) -> list[ColumnElement[bool]]:
    where = [SopRun.org_id == scope.org_id, group_visible(scope)]
    if group_id is not None:
        where.append(SopRun.group_id == group_id)
    if group_ids is not None:
        where.append(SopRun.group_id.in_(group_ids))
    if plan_id is not None:
        where.append(SopRun.plan_id == plan_id)
    if start is not None:
        where.append(SopRun.due_at >= start)
    if end is not None:
        where.append(SopRun.due_at < end)
    return where

"""Staff tasks: opened by domains (dispatch, later SOP, care, moderation…), assigned by group
ownership and role, reminded before they are due, escalated to the lead when overdue, completed
with evidence — and completing one can confirm the outbound action behind it.

Who sees a task: leads and analysts every task of the organisation; anyone else the tasks
assigned or escalated to them and those of the groups they own or administer. Who may complete
one: whoever sees it and may write (an analyst gets 403, everyone else who cannot see it 404).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, or_, select, true
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, require_write
from qunyun.config import get_settings
from qunyun.errors import Conflict, InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import (
    Group,
    Organisation,
    OutboundAction,
    OutboundActionTransition,
    Role,
    Staff,
    StaffGroupAssignment,
    StaffTask,
    StaffTaskEvent,
    TaskEventKind,
    TaskKind,
    TaskNoticeKind,
    TaskStatus,
)
from qunyun.tasks import notices, storage
from qunyun.tasks.titles import to_json
from qunyun.timeutil import utcnow

View = Literal["today", "overdue", "done", "open", "new"]
# ``new``: open tasks with a reminder or an escalation to the caller not yet seen (tasks.notices).
VIEWS: tuple[View, ...] = ("today", "overdue", "done", "open", "new")
TITLE_LIMIT = 300  # StaffTask.title: String(300)
EVIDENCE_TEXT_LIMIT = 2000
EVIDENCE_LINK_LIMIT = 2000  # StaffTask.evidence_link: String(2000)
# A task without a due time is reminded once a day while open, at most this many times.
REMIND_EVERY = timedelta(days=1)
MAX_REMINDERS = 3
# Group roles whose holders manage a group's tasks (operators see only their own).
MANAGING_ROLES = ("owner", "admin")
# Action states that wait on a person: completing the task confirms the action. "uncertain" is
# the state of a send that may have gone out (two-phase sends); listed by value so this works
# before and after that state exists.
AWAITING_PERSON = frozenset({"awaiting_confirmation", "delegated", "uncertain"})


@dataclass(frozen=True)
class TaskItem:
    """A task with the names a list shows next to it."""

    task: StaffTask
    group_name: str | None
    assignee_name: str | None
    escalated_to_name: str | None = None
    completed_by_name: str | None = None

    @property
    def needs_image(self) -> bool:
        """Completing it takes an uploaded screenshot that it does not have yet."""
        return requires_image(self.task) and not self.task.evidence_image


@dataclass
class Sweep:
    """What one ``remind_and_escalate`` pass did: task ids reminded and escalated."""

    reminded: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)


# --- visibility -------------------------------------------------------------------------------


def managed_group_ids(scope: Scope) -> Any:
    """SELECT of the ids of the groups whose tasks ``scope`` manages: owned, or assigned as
    owner or admin."""
    assigned = select(StaffGroupAssignment.group_id).where(
        StaffGroupAssignment.staff_id == scope.staff_id, StaffGroupAssignment.role.in_(MANAGING_ROLES)
    )
    return select(Group.id).where(
        Group.org_id == scope.org_id, or_(Group.owner_id == scope.staff_id, Group.id.in_(assigned))
    )


def task_visible(scope: Scope) -> ColumnElement[bool]:
    """A WHERE clause on ``StaffTask`` limiting rows to what ``scope`` may see."""
    same_org = StaffTask.org_id == scope.org_id
    if scope.whole_org:
        return same_org
    return and_(
        same_org,
        or_(
            StaffTask.assignee_id == scope.staff_id,
            StaffTask.escalated_to_id == scope.staff_id,
            StaffTask.group_id.in_(managed_group_ids(scope)),
        ),
    )


# --- opening and closing ----------------------------------------------------------------------


def default_assignee(session: Session, org_id: int, group_id: int | None) -> int | None:
    """Who gets a task of ``group_id``: the group's owner; else an owner or admin assigned to the
    group (owners first, then the longest assigned); else the organisation's lead. Inactive
    staff are passed over."""
    if group_id is not None:
        owner = session.scalar(
            select(Group.owner_id)
            .join(Staff, Staff.id == Group.owner_id)
            .where(Group.id == group_id, Group.org_id == org_id, Staff.is_active.is_(True))
        )
        if owner is not None:
            return owner
        assigned = session.scalar(
            select(StaffGroupAssignment.staff_id)
            .join(Staff, Staff.id == StaffGroupAssignment.staff_id)
            .where(
                StaffGroupAssignment.group_id == group_id,
                StaffGroupAssignment.role.in_(MANAGING_ROLES),
                Staff.org_id == org_id,
                Staff.is_active.is_(True),
            )
            .order_by(
                case((StaffGroupAssignment.role == "owner", 0), else_=1),
                StaffGroupAssignment.id,
            )
            .limit(1)
        )
        if assigned is not None:
            return assigned
    return organisation_lead(session, org_id)


def organisation_lead(session: Session, org_id: int) -> int | None:
    """The organisation's lead (the first active one), or None if it has none."""
    return session.scalar(
        select(Staff.id)
        .where(Staff.org_id == org_id, Staff.role == Role.LEAD.value, Staff.is_active.is_(True))
        .order_by(Staff.id)
        .limit(1)
    )


def open_task(
    session: Session,
    *,
    org_id: int,
    kind: TaskKind | str,
    title: Msg | str,
    detail: Mapping[str, Any],
    group_id: int | None = None,
    assignee_id: int | None = None,
    outbound_action_id: int | None = None,
    due_at: datetime | None = None,
) -> StaffTask:
    """Open a task. ``title`` is a catalogue message (rendered in each reader's language; its
    English text is kept in ``title`` too) or plain text. Without ``assignee_id`` it goes to
    :func:`default_assignee`. The first reminder is due before ``due_at``."""
    try:
        task_kind = TaskKind(kind)
    except ValueError as exc:
        raise InvalidInput(Msg("err.task.unknown_kind", kind=str(kind)), field="kind") from exc
    in_org = select(Group.id).where(Group.id == group_id, Group.org_id == org_id)
    if group_id is not None and session.scalar(in_org) is None:
        raise InvalidInput(Msg("err.task.no_group", id=group_id), field="group_id")
    if assignee_id is None:
        assignee_id = default_assignee(session, org_id, group_id)
    elif session.scalar(select(Staff.id).where(Staff.id == assignee_id, Staff.org_id == org_id)) is None:
        raise InvalidInput(Msg("err.task.no_staff", id=assignee_id), field="assignee_id")
    english = str(title)
    if not english.strip():
        raise InvalidInput(Msg("err.task.title_empty"), field="title")
    now = utcnow()
    task = StaffTask(
        org_id=org_id,
        group_id=group_id,
        assignee_id=assignee_id,
        kind=task_kind.value,
        title=english[:TITLE_LIMIT],
        title_key=title.key if isinstance(title, Msg) else None,
        title_values={k: to_json(v) for k, v in title.values.items()} if isinstance(title, Msg) else None,
        detail=dict(detail),
        status=TaskStatus.OPEN.value,
        outbound_action_id=outbound_action_id,
        due_at=due_at,
        created_at=now,
        remind_at=first_reminder(now, due_at),
        reminded=0,
    )
    session.add(task)
    session.flush()
    _event(session, task, TaskEventKind.CREATED, now, detail={"assignee_id": assignee_id})
    return task


def first_reminder(now: datetime, due_at: datetime | None) -> datetime:
    """When a new task is first reminded: ``task_remind_before_minutes`` before it is due (at
    once if that has passed), or a day after it opened if it has no due time."""
    if due_at is None:
        return now + REMIND_EVERY
    return max(now, due_at - timedelta(minutes=get_settings().task_remind_before_minutes))


def close_for_action(session: Session, action_id: int, status: TaskStatus) -> int:
    """Close the open tasks of an outbound action (done: it was confirmed; cancelled: it expired
    or failed). Returns how many were closed."""
    status = TaskStatus(status)
    if status is TaskStatus.OPEN:
        raise ValueError("close_for_action closes tasks: done or cancelled")
    now = utcnow()
    closed = 0
    for task in session.scalars(
        select(StaffTask).where(StaffTask.outbound_action_id == action_id, StaffTask.status == TaskStatus.OPEN.value)
    ):
        task.status = status.value
        task.done_at = now
        task.remind_at = None
        kind = TaskEventKind.COMPLETED if status is TaskStatus.DONE else TaskEventKind.CANCELLED
        _event(session, task, kind, now, detail={"by": "action", "action_id": action_id})
        closed += 1
    session.flush()
    return closed


# --- reading ----------------------------------------------------------------------------------


def get_task(session: Session, scope: Scope, task_id: int) -> StaffTask:
    """The task if ``scope`` may see it; NotFound for a missing task and for another's alike."""
    task = session.scalar(select(StaffTask).where(StaffTask.id == task_id, task_visible(scope)))
    if task is None:
        raise NotFound(Msg("err.task.not_found", id=task_id), field="task_id")
    return task


def get_item(session: Session, scope: Scope, task_id: int) -> TaskItem:
    """:func:`get_task` with the names of its group, assignee and escalation."""
    return _items(session, [get_task(session, scope, task_id)])[0]


def list_tasks(
    session: Session,
    scope: Scope,
    *,
    view: View = "open",
    now: datetime | None = None,
    assignee_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[TaskItem], int]:
    """A page of the tasks ``scope`` sees, and how many there are in all.

    ``today``: open and not yet overdue, due by the end of the organisation's day or without a
    due time; ``overdue``: open and past due (most overdue first); ``done``: completed, latest
    first; ``open``: every open task, soonest due first."""
    if view not in VIEWS:
        raise InvalidInput(Msg("err.task.bad_view", views=", ".join(VIEWS)), field="view")
    now = now or utcnow()
    query = select(StaffTask).where(task_visible(scope))
    if assignee_id is not None:
        query = query.where(StaffTask.assignee_id == assignee_id)
    end = _end_of_day(session, scope.org_id, now)
    query = query.where(_in_view(view, now, end, scope))
    order: list[Any]
    if view == "done":
        order = [StaffTask.done_at.desc().nulls_last(), StaffTask.id.desc()]
    else:
        order = [StaffTask.due_at.asc().nulls_last(), StaffTask.id]
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(*order).limit(limit).offset(offset)))
    return _items(session, rows), total


def view_counts(
    session: Session, scope: Scope, *, now: datetime | None = None, assignee_id: int | None = None
) -> dict[View, int]:
    """How many tasks ``scope`` sees in each view (the inbox's tab labels), in one query."""
    now = now or utcnow()
    end = _end_of_day(session, scope.org_id, now)
    query = select(
        *(func.coalesce(func.sum(case((_in_view(v, now, end, scope), 1), else_=0)), 0) for v in VIEWS)
    ).where(task_visible(scope))
    if assignee_id is not None:
        query = query.where(StaffTask.assignee_id == assignee_id)
    row = session.execute(query).one()
    return {view: int(n) for view, n in zip(VIEWS, row, strict=True)}


def _in_view(view: View, now: datetime, end_of_day: datetime, scope: Scope) -> ColumnElement[bool]:
    is_open = StaffTask.status == TaskStatus.OPEN.value
    if view == "new":
        return and_(is_open, StaffTask.id.in_(notices.unseen_task_ids(scope)))
    if view == "today":
        return and_(
            is_open,
            or_(StaffTask.due_at.is_(None), and_(StaffTask.due_at >= now, StaffTask.due_at < end_of_day)),
        )
    if view == "overdue":
        return and_(is_open, StaffTask.due_at < now)
    if view == "done":
        return StaffTask.status == TaskStatus.DONE.value
    return is_open


def notice_count(session: Session, scope: Scope) -> int:
    """How many open tasks the caller sees hold a reminder or an escalation to them not yet
    seen (the count next to 任务 on every console page): their own notices only."""
    if not scope.staff_id:
        return 0
    query = select(func.count()).where(
        task_visible(scope),
        StaffTask.status == TaskStatus.OPEN.value,
        StaffTask.id.in_(notices.unseen_task_ids(scope)),
    )
    return int(session.scalar(query) or 0)


def counts(session: Session, scope: Scope, staff_ids: list[int], now: datetime) -> dict[int, tuple[int, int]]:
    """Open and overdue tasks per assignee among ``staff_ids`` (only tasks ``scope`` sees); staff
    without open tasks are absent."""
    if not staff_ids:
        return {}
    rows = session.execute(
        select(
            StaffTask.assignee_id,
            func.count(),
            func.sum(case((StaffTask.due_at < now, 1), else_=0)),
        )
        .where(
            task_visible(scope),
            StaffTask.status == TaskStatus.OPEN.value,
            StaffTask.assignee_id.in_(staff_ids),
        )
        .group_by(StaffTask.assignee_id)
    )
    return {int(assignee): (int(n), int(late or 0)) for assignee, n, late in rows if assignee is not None}


def action_history(
    session: Session, scope: Scope, action_ids: Collection[int]
) -> dict[int, list[OutboundActionTransition]]:
    """The state changes of the outbound actions behind tasks ``scope`` sees, oldest first, by
    action id (what a person checking a send wants to know: when it was tried, what came back)."""
    if not action_ids:
        return {}
    visible = select(StaffTask.outbound_action_id).where(
        task_visible(scope), StaffTask.outbound_action_id.in_(sorted(set(action_ids)))
    )
    rows = session.scalars(
        select(OutboundActionTransition)
        .where(OutboundActionTransition.action_id.in_(visible))
        .order_by(OutboundActionTransition.action_id, OutboundActionTransition.id)
    )
    history: dict[int, list[OutboundActionTransition]] = {}
    for row in rows:
        history.setdefault(row.action_id, []).append(row)
    return history


def assignees(session: Session, scope: Scope) -> list[Staff]:
    """Staff who may be given tasks, for an assignee filter: the organisation's people for a lead
    or analyst, the caller alone otherwise."""
    query = select(Staff).where(Staff.org_id == scope.org_id, Staff.role != Role.INTEGRATION.value)
    if not scope.whole_org:
        query = query.where(Staff.id == scope.staff_id)
    return list(session.scalars(query.order_by(Staff.id)))


def evidence_image(session: Session, scope: Scope, task_id: int) -> tuple[str, str]:
    """The path and media type of a visible task's evidence image; NotFound if it has none."""
    task = get_task(session, scope, task_id)
    found = storage.image_file(task.evidence_image) if task.evidence_image else None
    if found is None:
        raise NotFound(Msg("err.task.no_image", id=task_id), field="task_id")
    path, media_type = found
    return str(path), media_type


# --- completing -------------------------------------------------------------------------------


def complete(
    session: Session,
    scope: Scope,
    task_id: int,
    *,
    evidence_text: str | None = None,
    evidence_link: str | None = None,
    evidence_image: bytes | None = None,
    confirm_action: bool = True,
    note: str | None = None,
    now: datetime | None = None,
) -> StaffTask:
    """Complete a task with its evidence. If its outbound action waits on a person (a send to
    confirm, a delegated or uncertain action) and ``confirm_action``, the action is confirmed.
    A task that asks for a screenshot (an SOP step with ``evidence_required``) is completed
    only with an image (422 naming ``evidence_image``). Completing a done task again changes
    nothing; a cancelled one is a Conflict. ``now``: when it was done (the demo's history)."""
    task = get_task(session, scope, task_id)
    require_write(scope)
    text = _clean_text(evidence_text, "evidence_text")
    note = _clean_text(note, "note")
    link = _clean_link(evidence_link)
    if evidence_image is not None:
        storage.check_image(evidence_image)
    if task.status == TaskStatus.DONE.value:
        return task
    if task.status != TaskStatus.OPEN.value:
        raise Conflict(Msg("err.task.cancelled", id=task.id), field="task_id")
    if evidence_image is None and not task.evidence_image and requires_image(task):
        raise InvalidInput(Msg("err.task.image_required", id=task.id), field="evidence_image")
    now = now or utcnow()
    if text is not None:
        task.evidence_text = text
    if link is not None:
        task.evidence_link = link
    if note is not None:
        task.note = note
    if evidence_image:
        task.evidence_image = storage.store_image(task.org_id, task.id, evidence_image)
    task.status = TaskStatus.DONE.value
    task.done_at = now
    task.completed_by_id = scope.staff_id
    task.remind_at = None
    _event(
        session,
        task,
        TaskEventKind.COMPLETED,
        now,
        actor_id=scope.staff_id,
        detail={"evidence": [k for k, v in (("text", text), ("link", link), ("image", evidence_image)) if v]},
    )
    session.flush()
    if confirm_action and task.outbound_action_id is not None:
        state = session.scalar(select(OutboundAction.state).where(OutboundAction.id == task.outbound_action_id))
        if state in AWAITING_PERSON:
            # Imported here: dispatch opens tasks through this module.
            from qunyun.connectors.dispatch import confirm

            by = session.scalar(select(Staff.display_name).where(Staff.id == scope.staff_id)) or scope.staff_id
            confirm(
                session, task.outbound_action_id, detail=Msg("sends.history.task_completed", task=task.id, staff=by)
            )
    return task


def requires_image(task: StaffTask) -> bool:
    """Whether completing ``task`` needs an uploaded image: an SOP step whose step asks for a
    screenshot (its detail's ``evidence_required``, set when the run opened the task)."""
    return task.kind == TaskKind.SOP_STEP.value and bool((task.detail or {}).get("evidence_required"))


def _clean_text(value: str | None, field_name: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > EVIDENCE_TEXT_LIMIT:
        raise InvalidInput(Msg("err.task.text_too_long", limit=EVIDENCE_TEXT_LIMIT), field=field_name)
    return value.strip()


def _clean_link(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    link = value.strip()
    parts = urlsplit(link) if len(link) <= EVIDENCE_LINK_LIMIT else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in link):
        raise InvalidInput(Msg("err.task.bad_link", limit=EVIDENCE_LINK_LIMIT), field="evidence_link")
    return link


# --- reminders and escalation -----------------------------------------------------------------


def remind_and_escalate(
    session: Session,
    now: datetime,
    *,
    grace: timedelta | None = None,
    org_id: int | None = None,
) -> Sweep:
    """Record a reminder on every open task whose ``remind_at`` has come (the next one a day
    later, at most ``MAX_REMINDERS``), and escalate to the organisation's lead, once, every
    open task overdue by more than ``grace`` (default: ``task_escalation_grace_minutes``); the
    assignee keeps the task. A task of an organisation without a lead is not escalated. Each
    reminder is a notice to the assignee, each escalation one to the lead (``tasks.notices``)."""
    if grace is None:
        grace = timedelta(minutes=get_settings().task_escalation_grace_minutes)
    sweep = Sweep()
    is_open = StaffTask.status == TaskStatus.OPEN.value
    in_org = StaffTask.org_id == org_id if org_id is not None else true()
    due_reminders = (
        select(StaffTask)
        .where(is_open, in_org, StaffTask.remind_at.is_not(None), StaffTask.remind_at <= now)
        .order_by(StaffTask.id)
        .with_for_update(skip_locked=True)
    )
    for task in session.scalars(due_reminders):
        task.reminded += 1
        task.remind_at = now + REMIND_EVERY if task.reminded < MAX_REMINDERS else None
        _event(session, task, TaskEventKind.REMINDED, now, detail={"count": task.reminded})
        if task.assignee_id is not None:
            notices.notify(session, task, task.assignee_id, TaskNoticeKind.REMINDED, now)
        sweep.reminded.append(task.id)
    overdue = (
        select(StaffTask)
        .where(is_open, in_org, StaffTask.escalated_at.is_(None), StaffTask.due_at < now - grace)
        .order_by(StaffTask.id)
        .with_for_update(skip_locked=True)
    )
    leads: dict[int, int | None] = {}
    for task in session.scalars(overdue):
        if task.org_id not in leads:
            leads[task.org_id] = organisation_lead(session, task.org_id)
        lead = leads[task.org_id]
        if lead is None:
            continue
        task.escalated_at = now
        task.escalated_to_id = lead
        _event(session, task, TaskEventKind.ESCALATED, now, detail={"to": lead})
        notices.notify(session, task, lead, TaskNoticeKind.ESCALATED, now)
        sweep.escalated.append(task.id)
    session.flush()
    return sweep


# --- helpers ----------------------------------------------------------------------------------


def history(session: Session, task_id: int) -> list[StaffTaskEvent]:
    """The task's events, oldest first."""
    return list(
        session.scalars(select(StaffTaskEvent).where(StaffTaskEvent.task_id == task_id).order_by(StaffTaskEvent.id))
    )


def _event(
    session: Session,
    task: StaffTask,
    kind: TaskEventKind,
    at: datetime,
    *,
    actor_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(StaffTaskEvent(task_id=task.id, kind=kind.value, at=at, actor_id=actor_id, detail=detail or {}))


def _end_of_day(session: Session, org_id: int, now: datetime) -> datetime:
    zone = ZoneInfo(session.scalar(select(Organisation.time_zone).where(Organisation.id == org_id)) or "UTC")
    local = now.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=1), time(), zone)


def _items(session: Session, tasks: list[StaffTask]) -> list[TaskItem]:
    group_ids = {t.group_id for t in tasks if t.group_id is not None}
    staff_ids = {s for t in tasks for s in (t.assignee_id, t.escalated_to_id, t.completed_by_id) if s is not None}
    groups = (
        dict(session.execute(select(Group.id, Group.name).where(Group.id.in_(group_ids))).all()) if group_ids else {}
    )
    people = (
        dict(session.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(staff_ids))).all())
        if staff_ids
        else {}
    )
    return [
        TaskItem(
            task=t,
            group_name=groups.get(t.group_id) if t.group_id is not None else None,
            assignee_name=people.get(t.assignee_id) if t.assignee_id is not None else None,
            escalated_to_name=people.get(t.escalated_to_id) if t.escalated_to_id is not None else None,
            completed_by_name=people.get(t.completed_by_id) if t.completed_by_id is not None else None,
        )
        for t in tasks
    ]

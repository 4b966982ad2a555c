"""Task notices: a reminder reaches the task's assignee, an escalation the lead it went to, as a
notice that stays unseen until the task is shown to that person. The console counts a person's
unseen notices next to 任务 on every page; ``GET /api/v1/tasks?view=new`` lists their tasks.

A notice belongs to one staff member: nobody else's count or view includes it, and showing a
task to a lead never marks its assignee's notice as seen.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.models import StaffTask, StaffTaskNotice, TaskNoticeKind

# An escalation says more than a reminder: shown first when a task has both.
_RANK = {TaskNoticeKind.ESCALATED.value: 0, TaskNoticeKind.REMINDED.value: 1}


def notify(session: Session, task: StaffTask, staff_id: int, kind: TaskNoticeKind, at: datetime) -> None:
    """Address a notice of ``task`` to ``staff_id`` (in the caller's transaction)."""
    session.add(StaffTaskNotice(task_id=task.id, staff_id=staff_id, kind=kind.value, at=at))


def unseen_task_ids(scope: Scope) -> Any:
    """SELECT of the ids of the tasks with a notice to ``scope``'s staff member not yet seen."""
    return select(StaffTaskNotice.task_id).where(
        StaffTaskNotice.staff_id == scope.staff_id, StaffTaskNotice.seen_at.is_(None)
    )


def unseen_kinds(session: Session, scope: Scope, task_ids: Collection[int]) -> dict[int, str]:
    """Which of ``task_ids`` hold a notice unseen by the caller, and of what kind (``escalated``
    before ``reminded``)."""
    if not task_ids or not scope.staff_id:
        return {}
    rows = session.execute(
        select(StaffTaskNotice.task_id, StaffTaskNotice.kind).where(
            StaffTaskNotice.staff_id == scope.staff_id,
            StaffTaskNotice.seen_at.is_(None),
            StaffTaskNotice.task_id.in_(sorted(set(task_ids))),
        )
    )
    kinds: dict[int, str] = {}
    for task_id, kind in rows:
        if task_id not in kinds or _RANK.get(kind, 9) < _RANK.get(kinds[task_id], 9):
            kinds[task_id] = kind
    return kinds


def mark_seen(session: Session, scope: Scope, task_ids: Collection[int] | None, now: datetime) -> int:
    """Mark the caller's unseen notices as seen: of ``task_ids``, or all of them (None). Others'
    notices are never touched. Returns how many notices were marked."""
    if not scope.staff_id or (task_ids is not None and not task_ids):
        return 0
    query = update(StaffTaskNotice).where(StaffTaskNotice.staff_id == scope.staff_id, StaffTaskNotice.seen_at.is_(None))
    if task_ids is not None:
        query = query.where(StaffTaskNotice.task_id.in_(sorted(set(task_ids))))
    return int(session.execute(query.values(seen_at=now)).rowcount or 0)  # type: ignore[attr-defined]


def mark_seen_after(scope: Scope, task_ids: Collection[int], now: datetime) -> None:
    """:func:`mark_seen` in a short transaction of its own, after a page showed the tasks (a read
    request does not become a writer)."""
    if task_ids:
        with unit_of_work() as session:
            mark_seen(session, scope, task_ids, now)

"""Tasks live codes open for people: a group's QR image about to expire, and a full pool whose
next group someone must create. Opened through ``qunyun.tasks.service.open_task`` (assigned to
the group's owner, else the lead); closed here when what they asked for happened."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from qunyun.models import StaffTask, StaffTaskEvent, TaskEventKind, TaskStatus
from qunyun.timeutil import utcnow


def close_task(session: Session, task_id: int, status: TaskStatus, detail: dict[str, Any]) -> bool:
    """Close an open task (done: what it asked for happened; cancelled: no longer needed).
    False when it is not open any more (a person closed it first)."""
    task = session.get(StaffTask, task_id)
    if task is None or task.status != TaskStatus.OPEN.value:
        return False
    now = utcnow()
    task.status = TaskStatus(status).value
    task.done_at = now
    task.remind_at = None
    kind = TaskEventKind.COMPLETED if status is TaskStatus.DONE else TaskEventKind.CANCELLED
    session.add(StaffTaskEvent(task_id=task.id, kind=kind.value, at=now, actor_id=None, detail=detail))
    session.flush()
    return True

"""The task tests reuse the API tests' world (two organisations, staff of every role, groups)
and open tasks through the service, as the domains do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from qunyun.locale import Msg
from tests.api.conftest import World, anon, api_app, client, password_hash, world

__all__ = ["anon", "api_app", "client", "open_in", "password_hash", "world"]

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def later_today(world: World, org: str = "a") -> datetime:
    """A due time between now and the end of the organisation's day, whatever the hour the test
    runs at (two hours from now is tomorrow after 22:00 in the organisation's zone)."""
    from qunyun.tasks.service import _end_of_day

    now = datetime.now(UTC)
    with world.db() as s:
        end = _end_of_day(s, world.org_a if org == "a" else world.org_b, now)
    return now + min(timedelta(hours=2), (end - now) / 2)


def open_in(
    world: World,
    group: str | None,
    *,
    title: Msg | str = "Post the weekly digest",
    due_at: datetime | None = None,
    assignee: str | None = None,
    org: str = "a",
    **values: Any,
) -> int:
    """Open a task of group ``group`` (a world key) and commit it; returns its id."""
    from qunyun.tasks.service import open_task

    with world.db() as s:
        task = open_task(
            s,
            org_id=world.org_a if org == "a" else world.org_b,
            kind=values.pop("kind", "other"),
            title=title,
            detail=values.pop("detail", {"payload": {"text": "本周精华已整理好"}}),
            group_id=world.groups[group] if group else None,
            assignee_id=world.staff[assignee] if assignee else None,
            due_at=due_at,
            **values,
        )
        s.commit()
        return task.id


def load(session: Session, task_id: int) -> Any:
    from qunyun.models import StaffTask

    task = session.get(StaffTask, task_id)
    assert task is not None
    return task

"""The reminder job: registered as a periodic job of the worker, typed, and doing one sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import qunyun.worker.builtin  # noqa: F401  (registers every domain's handlers)
from qunyun.tasks.jobs import REMIND_JOB
from qunyun.worker.queue import enqueue, handler_for
from qunyun.worker.scheduler import periodic_jobs
from tests.api.conftest import World
from tests.tasks.conftest import load, open_in


def test_the_reminder_job_is_periodic_and_typed(world: World) -> None:
    assert REMIND_JOB in {p.kind for p in periodic_jobs()}
    handler = handler_for(REMIND_JOB)
    assert handler is not None
    with world.db() as s, pytest.raises(ValueError, match="org_id"):
        enqueue(s, REMIND_JOB, {"org_id": "acme"})
    overdue = open_in(world, "g1", due_at=datetime.now(UTC) - timedelta(days=1))
    with world.db() as s:
        handler(s, {"bucket": "2026-12-03T10:00:00Z", "org_id": world.org_a})
        task = load(s, overdue)
        assert task.reminded == 1 and task.escalated_to_id == world.staff["lead"]

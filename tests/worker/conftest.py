"""Fixtures of the worker tests: an organisation, a fake clock and workers that follow it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from qunyun.db.session import unit_of_work
from qunyun.models import Organisation
from qunyun.timeutil import utcnow
from qunyun.worker.runner import Worker
from tests.worker.support import LEASE, Factory, FakeClock

MakeWorker = Callable[..., Worker]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def org_id(db: Factory) -> int:
    with unit_of_work(db) as s:
        org = Organisation(name="Queue", slug="queue", created_at=utcnow())
        s.add(org)
        s.flush()
        return org.id


@pytest.fixture
def make_worker(db: Factory, clock: FakeClock) -> MakeWorker:
    def make(name: str = "test:1", **kwargs: Any) -> Worker:
        return Worker(name, factory=db, lease_seconds=LEASE, clock=clock, **kwargs)

    return make

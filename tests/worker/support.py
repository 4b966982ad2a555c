"""What the worker tests share: a clock that moves when told, and short ways to add and look at jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.base import now_micros
from qunyun.db.session import unit_of_work
from qunyun.models import AuditLog, Job, JobRun
from qunyun.worker.queue import enqueue
from qunyun.worker.runner import MICROS

LEASE = 30

Factory = sessionmaker[Session]


class FakeClock:
    """Epoch microseconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = now_micros() + 60 * MICROS  # ahead of real time: jobs enqueued by the test are due

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * MICROS)


def add_job(db: Factory, kind: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> int:
    with unit_of_work(db) as s:
        return enqueue(s, kind, payload, **kwargs).id


def get_job(db: Factory, job_id: int) -> Job:
    with db() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def runs(db: Factory, job_id: int) -> list[JobRun]:
    with db() as s:
        return list(s.scalars(select(JobRun).where(JobRun.job_id == job_id).order_by(JobRun.attempt)))


def effects(db: Factory, job_id: int, action: str | None = None) -> list[AuditLog]:
    """The audit rows a test job wrote (of one ``action`` when given), oldest first."""
    with db() as s:
        stmt = select(AuditLog).where(AuditLog.target_id == str(job_id)).order_by(AuditLog.id)
        if action is not None:
            stmt = stmt.where(AuditLog.action == action)
        return list(s.scalars(stmt))


def steal(db: Factory, job_id: int) -> None:
    """What another worker does when it reclaims the job."""
    with unit_of_work(db) as s:
        s.execute(update(Job).where(Job.id == job_id).values(locked_by="thief:1", attempts=Job.attempts + 1))

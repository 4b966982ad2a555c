"""Periodic jobs: each kind is enqueued once per time bucket, however many workers ask.

Buckets are aligned to the Unix epoch in UTC (hourly jobs fall on the hour, daily ones at 00:00
UTC). The job key ``f"{kind}@{bucket start}"`` makes enqueueing idempotent, so every worker can
call :func:`schedule_due` now and then without coordinating with the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qunyun.models import Job
from qunyun.timeutil import utcnow
from qunyun.worker.queue import F, enqueue, job_handler


@dataclass(frozen=True)
class Periodic:
    kind: str
    every: timedelta

    def bucket(self, now: datetime) -> datetime:
        """Start of the bucket that contains ``now``."""
        seconds = int(self.every.total_seconds())
        return datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)

    def key(self, now: datetime) -> str:
        return f"{self.kind}@{self.bucket(now):%Y-%m-%dT%H:%M:%SZ}"


_PERIODIC: dict[str, Periodic] = {}


class PeriodicPayload(BaseModel):
    """The base of a typed periodic job's payload: the scheduler adds the bucket it runs for."""

    bucket: str | None = None


def periodic(kind: str, *, every: timedelta, payload: type[BaseModel] | None = None) -> Callable[[F], F]:
    """Register ``fn(session, payload)`` as the handler of ``kind`` and run it once per ``every``."""
    if every.total_seconds() < 1 or every.total_seconds() != int(every.total_seconds()):
        raise ValueError(f"periodic job {kind!r}: every must be a whole number of seconds, at least 1")

    def register(fn: F) -> F:
        job_handler(kind, payload=payload)(fn)
        _PERIODIC[kind] = Periodic(kind, every)
        return fn

    return register


def periodic_jobs() -> list[Periodic]:
    return sorted(_PERIODIC.values(), key=lambda p: p.kind)


def schedule_due(session: Session, *, now: datetime | None = None) -> list[str]:
    """Enqueue every periodic job not yet enqueued for the current bucket; returns the new keys.

    Runs in the caller's unit of work. A worker racing us to the same key loses nothing: its
    insert hits the unique key, only its savepoint rolls back, and the bucket still has one job.
    """
    now = now or utcnow()
    added: list[str] = []
    for job in periodic_jobs():
        key = job.key(now)
        if session.scalar(select(Job.id).where(Job.key == key)) is not None:
            continue
        try:
            with session.begin_nested():
                enqueue(session, job.kind, {"bucket": key.rsplit("@", 1)[1]}, key=key, run_at=now)
        except IntegrityError:
            continue  # another worker enqueued this bucket between our look-up and our insert
        added.append(key)
    return added

"""Enqueue jobs inside the caller's unit of work, so a job exists iff the data that caused it does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qunyun.models import Job, JobStatus
from qunyun.timeutil import utcnow

JobHandler = Callable[[Session, dict[str, Any]], None]
_HANDLERS: dict[str, JobHandler] = {}


def job_handler(kind: str) -> Callable[[JobHandler], JobHandler]:
    """Register ``fn(session, payload)`` as the handler of jobs of ``kind``.

    The handler runs inside the job's transaction: its writes commit together with the job's
    completion, or not at all.
    """

    def register(fn: JobHandler) -> JobHandler:
        _HANDLERS[kind] = fn
        return fn

    return register


def handler_for(kind: str) -> JobHandler | None:
    return _HANDLERS.get(kind)


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    org_id: int | None = None,
    run_at: datetime | None = None,
    key: str | None = None,
    max_attempts: int = 5,
    priority: int = 0,
) -> Job:
    """Add a job to the caller's transaction. With ``key``, enqueueing twice yields one job."""
    if key is not None:
        existing = session.scalar(select(Job).where(Job.key == key))
        if existing is not None:
            return existing
    now = utcnow()
    job = Job(
        org_id=org_id,
        kind=kind,
        payload=payload or {},
        key=key,
        status=JobStatus.QUEUED,
        priority=priority,
        run_at=run_at or now,
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
    )
    if key is None:
        session.add(job)
        session.flush()
        return job
    try:
        with session.begin_nested():  # a concurrent enqueue of the same key may win the race
            session.add(job)
            session.flush()
    except IntegrityError:
        existing = session.scalar(select(Job).where(Job.key == key))
        if existing is None:
            raise
        return existing
    return job


def enqueue_many(session: Session, rows: list[tuple[str, dict[str, Any], int | None]]) -> None:
    """Bulk-enqueue ``(kind, payload, org_id)`` jobs due now, in one statement."""
    if not rows:
        return
    now = utcnow()
    session.execute(
        insert(Job),
        [
            {
                "org_id": org_id,
                "kind": kind,
                "payload": payload,
                "key": None,
                "status": JobStatus.QUEUED.value,
                "priority": 0,
                "run_at": now,
                "attempts": 0,
                "max_attempts": 5,
                "created_at": now,
            }
            for kind, payload, org_id in rows
        ],
    )

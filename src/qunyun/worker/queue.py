"""Enqueue jobs inside the caller's unit of work, so a job exists iff the data that caused it does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qunyun.models import Job, JobStatus
from qunyun.timeutil import utcnow

F = TypeVar("F", bound=Callable[..., None])

JobHandler = Callable[[Session, dict[str, Any]], None]


@dataclass(frozen=True)
class Registered:
    """A job kind's handler and, for a typed job, the pydantic model of its payload."""

    fn: Callable[[Session, Any], None]
    payload: type[BaseModel] | None = None

    def parse(self, payload: dict[str, Any]) -> Any:
        """The payload as the handler takes it: the model (ValidationError when it does not
        fit), or the dict itself for an untyped handler."""
        return payload if self.payload is None else self.payload.model_validate(payload)

    def __call__(self, session: Session, payload: dict[str, Any]) -> None:
        """Run the handler on a stored payload (parsed as the runner parses it)."""
        self.fn(session, self.parse(payload))


_HANDLERS: dict[str, Registered] = {}


def job_handler(kind: str, *, payload: type[BaseModel] | None = None) -> Callable[[F], F]:
    """Register ``fn(session, payload)`` as the handler of jobs of ``kind``.

    With ``payload`` (a pydantic model) the job is typed: ``enqueue`` refuses a payload that does
    not fit the model, and the runner hands the handler the validated model; a stored payload that
    does not fit (an old or hand-made job) is dead at once, with the reason, never retried.
    The handler runs inside the job's transaction: its writes commit together with the job's
    completion, or not at all.
    """

    def register(fn: F) -> F:
        _HANDLERS[kind] = Registered(fn, payload)
        return fn

    return register


def handler_for(kind: str) -> Registered | None:
    return _HANDLERS.get(kind)


def invalid_payload_reason(kind: str, error: ValidationError) -> str:
    """One line naming each field of a payload that does not fit its model."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())) or 'payload'}: {e.get('msg', 'invalid')}" for e in error.errors()
    )
    return f"InvalidPayload: {kind}: {problems}"


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
    """Add a job to the caller's transaction. With ``key``, enqueueing twice yields one job.

    A typed job's payload is validated here (ValueError naming the fields) and stored as the
    model dumps it."""
    registered = _HANDLERS.get(kind)
    if registered is not None and registered.payload is not None:
        try:
            payload = registered.parse(payload or {}).model_dump(mode="json")
        except ValidationError as exc:
            raise ValueError(invalid_payload_reason(kind, exc)) from None
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

"""Enqueue jobs inside the caller's unit of work, so a job exists iff the data that caused it does.

Two kinds of handler: ``@job_handler`` (one function that runs inside the job's transaction) and
``@two_phase_handler`` (a :class:`TwoPhaseJob` whose ``call`` talks to a platform outside any
transaction, between a ``prepare`` that commits first and a ``record`` that commits with the
job's completion). docs/jobs.md tells the whole story.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from qunyun.db.unique import insert_or_get
from qunyun.models import Job, JobStatus
from qunyun.timeutil import utcnow

F = TypeVar("F", bound=Callable[..., None])
P = TypeVar("P", bound=BaseModel)
T = TypeVar("T")
R = TypeVar("R")

JobHandler = Callable[[Session, dict[str, Any]], None]


class TwoPhaseJob(Generic[P, T, R]):
    """A job that calls a platform, which must never happen inside a transaction.

    Subclass it and register the subclass with :func:`two_phase_handler`. The worker runs, for
    each job:

    1. ``prepare(session, payload)`` in a transaction that commits before the call: write down
       what is about to be done (e.g. the action's state ``sending`` with the attempt) and return
       what to call, or ``None`` when there is nothing to call (the job then completes in this
       same transaction);
    2. ``call(prepared)`` with no session and no transaction open; it may raise;
    3. ``record(session, payload, prepared, outcome)`` in the transaction that also completes the
       job; ``outcome`` is what ``call`` returned or the exception it raised. ``record`` decides:
       raise to have the job retried (backoff, then dead), or record a failure and return.

    A worker can die between any two steps, and a lease can pass to another worker before
    ``record`` commits (its writes then roll back): ``prepare`` must be safe to run again after a
    crash at ANY point, finding its own earlier ``sending`` mark and reconciling instead of
    calling blindly again.
    """

    def warm(self, session: Session, payloads: list[P], *, recording: bool) -> None:
        """Optional, before a batch's ``prepare`` calls (``recording``: its ``record`` calls), in
        their transaction: load or lock at once what each of them will need, one statement for
        the batch instead of one a job. The worker calls it on its optimistic path only, so a job
        must not depend on it."""

    def settle(self, session: Session, *, recording: bool) -> None:
        """Optional, after the ``prepare`` (``recording``: ``record``) calls of a batch that
        ``warm`` saw, in their transaction and before it commits: write what they left to the
        end of the batch (one statement for the batch instead of one a job). A failure here fails
        the batch's transaction, whose jobs then run one at a time."""

    def prepare(self, session: Session, payload: P) -> T | None:
        raise NotImplementedError

    def call(self, prepared: T) -> R:
        raise NotImplementedError

    def record(self, session: Session, payload: P, prepared: T, outcome: R | BaseException) -> None:
        raise NotImplementedError


TP = TypeVar("TP", bound=type[TwoPhaseJob[Any, Any, Any]])


@dataclass(frozen=True)
class Registered:
    """A job kind's handler: a function, or a two-phase job; and, for a typed job, the pydantic
    model of its payload (always for a two-phase job)."""

    fn: Callable[[Session, Any], None] | None
    payload: type[BaseModel] | None = None
    two_phase: TwoPhaseJob[Any, Any, Any] | None = None

    def parse(self, payload: dict[str, Any]) -> Any:
        """The payload as the handler takes it: the model (ValidationError when it does not
        fit), or the dict itself for an untyped handler."""
        return payload if self.payload is None else self.payload.model_validate(payload)

    def __call__(self, session: Session, payload: dict[str, Any]) -> None:
        """Run the handler on a stored payload (parsed as the runner parses it), in ``session``.

        For tests and tools: a two-phase job runs all three phases here, its call inside the
        caller's transaction, which the worker never does.
        """
        parsed = self.parse(payload)
        if self.two_phase is None:
            assert self.fn is not None
            self.fn(session, parsed)
            return
        prepared = self.two_phase.prepare(session, parsed)
        if prepared is None:
            return
        outcome: Any
        try:
            outcome = self.two_phase.call(prepared)
        except Exception as exc:
            outcome = exc
        self.two_phase.record(session, parsed, prepared, outcome)


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


def two_phase_handler(kind: str, *, payload: type[BaseModel]) -> Callable[[TP], TP]:
    """Register a :class:`TwoPhaseJob` subclass (instantiated once, without arguments) as the
    handler of jobs of ``kind``, typed by ``payload`` as with :func:`job_handler`."""

    def register(cls: TP) -> TP:
        _HANDLERS[kind] = Registered(None, payload, cls())
        return cls

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
    # A concurrent enqueue of the same key may win the race: its job is the one.
    return insert_or_get(session, job, lambda: session.scalar(select(Job).where(Job.key == key)))[0]


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

"""Job handlers that exist only in tests; worker processes load them through QUNYUN_WORKER_IMPORTS."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from qunyun.models import AuditLog
from qunyun.timeutil import utcnow
from qunyun.worker.queue import TwoPhaseJob, job_handler, two_phase_handler
from qunyun.worker.runner import current_job
from qunyun.worker.scheduler import periodic

RECORD = "test.record"
COMMITS = "test.commits"
TICK = "test.tick"
TYPED = "test.typed"
EXECUTION_LOG_ENV = "QUNYUN_TEST_EXECUTION_LOG"


@job_handler(RECORD)
def record(session: Session, payload: dict[str, Any]) -> None:
    """The job's effect: one audit row keyed by the job id, in the job's transaction.

    Payload: ``org_id``; optional ``sleep_ms`` (to make workers interleave) and ``fail_times``
    (attempts up to this number raise after writing, so their writes must roll back).
    """
    job = current_job()
    _log_execution(job.id)
    time.sleep(payload.get("sleep_ms", 0) / 1000)
    session.add(
        AuditLog(
            org_id=payload["org_id"],
            action="test.job_ran",
            target_type="job",
            target_id=str(job.id),
            detail={"worker": job.worker, "attempt": job.attempt, "pid": os.getpid()},
            at=utcnow(),
        )
    )
    session.flush()
    if job.attempt <= payload.get("fail_times", 0):
        raise RuntimeError(f"planned failure {job.attempt}")


@job_handler(COMMITS)
def commits(session: Session, payload: dict[str, Any]) -> None:
    """A broken handler: it commits behind the worker's back."""
    session.commit()


@periodic(TICK, every=timedelta(minutes=10))
def tick(session: Session, payload: dict[str, Any]) -> None:
    """A periodic job that does nothing."""


def _log_execution(job_id: int) -> None:
    """Outside the database, so that even executions whose writes rolled back are counted."""
    directory = os.environ.get(EXECUTION_LOG_ENV)
    if not directory:
        return
    path = Path(directory) / f"{os.getpid()}-{threading.get_ident()}.log"
    with path.open("a") as f:
        f.write(f"{job_id}\n")


class TypedPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int
    note: str


@job_handler(TYPED, payload=TypedPayload)
def typed(session: Session, payload: TypedPayload) -> None:
    """A typed job: it receives its payload validated, as the model."""
    assert isinstance(payload, TypedPayload)
    session.add(
        AuditLog(
            org_id=payload.org_id,
            action="test.typed_ran",
            target_type="job",
            target_id=str(current_job().id),
            detail={"note": payload.note},
            at=utcnow(),
        )
    )


TWO_PHASE = "test.two_phase"


class TwoPhasePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int
    nothing_to_call: bool = False  # prepare finds the work done already
    call_fails: bool = False
    record_fails_times: int = 0  # records of attempts up to this number raise after writing


class Crash(BaseException):
    """A worker dying where it stands: nothing of the runner catches it."""


@dataclass
class Calls:
    """What the two-phase job's calls saw, and what a test wants them to do besides."""

    seen: list[tuple[int, int]] = field(default_factory=list)  # (job id, attempt)
    hook: Callable[[int], None] | None = None  # called with the job id inside call()


CALLS = Calls()


@two_phase_handler(TWO_PHASE, payload=TwoPhasePayload)
class TwoPhaseRecord(TwoPhaseJob[TwoPhasePayload, tuple[int, bool], str]):
    """Prepare writes a ``test.prepared`` row, call returns a receipt (or raises), record writes
    ``test.recorded`` with what it got; all keyed by the job id."""

    def prepare(self, session: Session, payload: TwoPhasePayload) -> tuple[int, bool] | None:
        job = current_job()
        _audit(session, payload.org_id, "test.prepared", job.id, {"attempt": job.attempt})
        return None if payload.nothing_to_call else (job.id, payload.call_fails)

    def call(self, prepared: tuple[int, bool]) -> str:
        job = current_job()
        job_id, fails = prepared
        CALLS.seen.append((job.id, job.attempt))
        if CALLS.hook is not None:
            CALLS.hook(job_id)
        if fails:
            raise ConnectionError("platform unreachable")
        return f"receipt-{job_id}-{job.attempt}"

    def record(
        self, session: Session, payload: TwoPhasePayload, prepared: tuple[int, bool], outcome: str | BaseException
    ) -> None:
        job = current_job()
        seen = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else outcome
        _audit(session, payload.org_id, "test.recorded", job.id, {"attempt": job.attempt, "outcome": seen})
        if job.attempt <= payload.record_fails_times:
            raise RuntimeError(f"planned record failure {job.attempt}")


def _audit(session: Session, org_id: int, action: str, job_id: int, detail: dict[str, Any]) -> None:
    session.add(
        AuditLog(org_id=org_id, action=action, target_type="job", target_id=str(job_id), detail=detail, at=utcnow())
    )
    session.flush()


SETTLED = "test.settled"
_PENDING = "test.settled.pending"


@dataclass
class Settles:
    """The settle calls of ``test.settled`` jobs, and whether the next one fails."""

    calls: list[tuple[bool, int]] = field(default_factory=list)  # (recording, rows written)
    fail_next: bool = False


SETTLES = Settles()


@two_phase_handler(SETTLED, payload=TwoPhasePayload)
class SettledRecord(TwoPhaseJob[TwoPhasePayload, int, str]):
    """Like ``test.two_phase``, but a warmed batch leaves its ``test.prepared`` and
    ``test.recorded`` rows to ``settle``, which writes them all at once."""

    def warm(self, session: Session, payloads: list[TwoPhasePayload], *, recording: bool) -> None:
        session.info[_PENDING] = []

    def prepare(self, session: Session, payload: TwoPhasePayload) -> int | None:
        job = current_job()
        _defer(
            session,
            AuditLog(
                org_id=payload.org_id,
                action="test.prepared",
                target_type="job",
                target_id=str(job.id),
                detail={"attempt": job.attempt},
                at=utcnow(),
            ),
        )
        return job.id

    def call(self, prepared: int) -> str:
        job = current_job()
        CALLS.seen.append((job.id, job.attempt))
        if CALLS.hook is not None:
            CALLS.hook(prepared)
        return f"receipt-{prepared}-{job.attempt}"

    def record(self, session: Session, payload: TwoPhasePayload, prepared: int, outcome: str | BaseException) -> None:
        job = current_job()
        detail = {"attempt": job.attempt, "outcome": str(outcome)}
        _defer(
            session,
            AuditLog(
                org_id=payload.org_id,
                action="test.recorded",
                target_type="job",
                target_id=str(job.id),
                detail=detail,
                at=utcnow(),
            ),
        )

    def settle(self, session: Session, *, recording: bool) -> None:
        pending = session.info.pop(_PENDING, [])
        if SETTLES.fail_next:
            SETTLES.fail_next = False
            raise RuntimeError("planned settle failure")
        session.add_all(pending)
        session.flush()
        SETTLES.calls.append((recording, len(pending)))


def _defer(session: Session, row: AuditLog) -> None:
    """Kept for ``settle`` in a warmed batch, else written now."""
    pending = session.info.get(_PENDING)
    if pending is None:
        session.add(row)
        session.flush()
    else:
        pending.append(row)

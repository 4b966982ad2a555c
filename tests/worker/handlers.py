"""Job handlers that exist only in tests; worker processes load them through QUNYUN_WORKER_IMPORTS."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from qunyun.models import AuditLog
from qunyun.timeutil import utcnow
from qunyun.worker.queue import job_handler
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

"""The trivial jobs of bench/bench_jobs.py; workers load them through QUNYUN_WORKER_IMPORTS."""

from __future__ import annotations

import json
import time
from typing import cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from qunyun.db.base import now_micros
from qunyun.models import AuditLog
from qunyun.worker.queue import TwoPhaseJob, job_handler, two_phase_handler

TOUCH = "bench.touch"
TOUCH_CORE = "bench.touch_core"
TOUCH_TWO_PHASE = "bench.touch_two_phase"
AUDIT = cast(Table, AuditLog.__table__)


class TouchPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int
    n: int


# The bare loop's INSERT (bench/bench_jobs.py issues this very string through psycopg).
INSERT_SQL = (
    "INSERT INTO audit_log (org_id, action, target_type, target_id, detail, at)"
    " VALUES (%s, 'bench.touch', 'job', %s, %s, %s)"
)
# The same row through SQLAlchemy Core, as most handlers write. inline(): no RETURNING of the new
# id, which the handler does not need (SQLAlchemy fetches it for a single-row INSERT otherwise).
INSERT_ROW = insert(AUDIT).inline()


def insert_params(payload: TouchPayload) -> tuple[int, str, str, int]:
    """The bare loop's parameters, computed as it computes them."""
    return payload.org_id, str(payload.n), json.dumps({"n": payload.n}), time.time_ns() // 1000


def write_row(session: Session, payload: TouchPayload) -> None:
    """One small row, in the job's transaction: the bare loop's INSERT, through the same driver
    call (the DB-API cursor of the job's connection), so that both sides do the same INSERT work
    and the comparison measures the queue. ``write_row_core`` is the SQLAlchemy Core variant."""
    session.connection().connection.cursor().execute(INSERT_SQL, insert_params(payload))


def write_row_core(session: Session, payload: TouchPayload) -> None:
    """The same row through SQLAlchemy Core (a statement built once, as a hot handler keeps it)."""
    session.execute(
        INSERT_ROW,
        {
            "org_id": payload.org_id,
            "action": "bench.touch",
            "target_type": "job",
            "target_id": str(payload.n),
            "detail": {"n": payload.n},
            "at": now_micros(),
        },
    )


@job_handler(TOUCH, payload=TouchPayload)
def touch(session: Session, payload: TouchPayload) -> None:
    write_row(session, payload)


@job_handler(TOUCH_CORE, payload=TouchPayload)
def touch_core(session: Session, payload: TouchPayload) -> None:
    write_row_core(session, payload)


@two_phase_handler(TOUCH_TWO_PHASE, payload=TouchPayload)
class TouchTwoPhase(TwoPhaseJob[TouchPayload, int, int]):
    """Nothing to write down before a call that does nothing; the row is written by record."""

    def prepare(self, session: Session, payload: TouchPayload) -> int | None:
        return payload.n

    def call(self, prepared: int) -> int:
        return prepared

    def record(self, session: Session, payload: TouchPayload, prepared: int, outcome: int | BaseException) -> None:
        write_row(session, payload)

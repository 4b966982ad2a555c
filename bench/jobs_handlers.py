"""The trivial jobs of bench/bench_jobs.py; workers load them through QUNYUN_WORKER_IMPORTS."""

from __future__ import annotations

from typing import cast

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from qunyun.db.base import now_micros
from qunyun.models import AuditLog
from qunyun.worker.queue import TwoPhaseJob, job_handler, two_phase_handler

TOUCH = "bench.touch"
TOUCH_TWO_PHASE = "bench.touch_two_phase"
AUDIT = cast(Table, AuditLog.__table__)


class TouchPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int
    n: int


# inline(): no RETURNING of the new id, which the handler does not need; without it SQLAlchemy
# fetches the primary key of a single-row INSERT, work the bare loop does not do.
INSERT_ROW = insert(AUDIT).inline()


def write_row(session: Session, payload: TouchPayload) -> None:
    """One small row: the same INSERT the bare loop issues (a statement built once, as a hot
    handler would keep it)."""
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


@two_phase_handler(TOUCH_TWO_PHASE, payload=TouchPayload)
class TouchTwoPhase(TwoPhaseJob[TouchPayload, int, int]):
    """Nothing to write down before a call that does nothing; the row is written by record."""

    def prepare(self, session: Session, payload: TouchPayload) -> int | None:
        return payload.n

    def call(self, prepared: int) -> int:
        return prepared

    def record(self, session: Session, payload: TouchPayload, prepared: int, outcome: int | BaseException) -> None:
        write_row(session, payload)

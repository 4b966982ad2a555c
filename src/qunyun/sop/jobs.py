"""The SOP engine's jobs: claiming due runs, firing them, and the daily extension of plans."""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.models import SopRun
from qunyun.sop.execute import CHUNK, FANOUT_LIMIT, FIRE_JOB, claim_due, enqueue_fire, fire_runs
from qunyun.sop.runs import FIRE_DUE_JOB, extend_all
from qunyun.sop.types import RunState
from qunyun.timeutil import utcnow
from qunyun.worker.queue import enqueue, job_handler
from qunyun.worker.scheduler import PeriodicPayload, periodic

log = logging.getLogger(__name__)

EXTEND_JOB = "sop.extend"
# A run queued this long without its fire job having run (the job dead or purged) is given a new one.
STUCK_AFTER = timedelta(minutes=15)


class FireDuePayload(PeriodicPayload):
    model_config = ConfigDict(extra="forbid")


class FirePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    run_ids: list[int]


@periodic(FIRE_DUE_JOB, every=timedelta(minutes=1), payload=FireDuePayload)
def fire_due_job(session: Session, payload: FireDuePayload) -> None:
    """Claim the runs due now and hand them to ``sop.fire`` jobs; again at once if more wait."""
    claimed = claim_due(session, utcnow())
    if claimed >= FANOUT_LIMIT:
        enqueue(session, FIRE_DUE_JOB, {"bucket": payload.bucket})


@job_handler(FIRE_JOB, payload=FirePayload)
def fire_job(session: Session, payload: FirePayload) -> None:
    """Fire a chunk of queued runs (each once: a run no longer queued is left alone)."""
    fire_runs(session, payload.run_ids)


@periodic(EXTEND_JOB, every=timedelta(hours=1), payload=FireDuePayload)
def extend_job(session: Session, payload: FireDuePayload) -> None:
    """Attached plans reach new groups, daily plans' runs reach the horizon, and queued runs whose
    fire job went away get another."""
    now = utcnow()
    made = extend_all(session, now)
    stuck = list(
        session.scalars(
            select(SopRun.id)
            .where(
                SopRun.state == RunState.QUEUED.value,
                SopRun.action_id.is_(None),
                SopRun.task_id.is_(None),
                SopRun.updated_at < now - STUCK_AFTER,
            )
            .order_by(SopRun.id)
            .limit(FANOUT_LIMIT)
        )
    )
    for i in range(0, len(stuck), CHUNK):
        enqueue_fire(session, stuck[i : i + CHUNK], None)
    if made or stuck:
        log.info("sop.extend: %d runs made, %d stuck runs given a new fire job", made, len(stuck))

"""Background jobs of the connectors. ``qunyun.worker.builtin`` imports this module so that the
handlers are registered in the worker."""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from qunyun.connectors import dispatch
from qunyun.connectors.base import ActionResult
from qunyun.connectors.dispatch import EXPIRE_JOB, PERFORM_JOB, SWEEP_JOB, PreparedCall, expire_overdue, sweep_stuck
from qunyun.worker.queue import TwoPhaseJob, two_phase_handler
from qunyun.worker.scheduler import PeriodicPayload, periodic


class PerformPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    action_id: int


log = logging.getLogger(__name__)


class ExpirePayload(PeriodicPayload):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int | None = None


class SweepPayload(PeriodicPayload):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int | None = None


@two_phase_handler(PERFORM_JOB, payload=PerformPayload)
class PerformAction(TwoPhaseJob[PerformPayload, PreparedCall, ActionResult | None]):
    """Perform one queued outbound action: commit ``sending``, call the platform outside any
    transaction, record the outcome (``qunyun.connectors.dispatch``: prepare, call, record)."""

    def warm(self, session: Session, payloads: list[PerformPayload], *, recording: bool) -> None:
        # The batch's usual moves (sending, sent) are written at its end, by settle.
        dispatch.lock_batch(session, [p.action_id for p in payloads], with_targets=not recording, defer=True)

    def settle(self, session: Session, *, recording: bool) -> None:
        dispatch.settle_batch(session)

    def prepare(self, session: Session, payload: PerformPayload) -> PreparedCall | None:
        return dispatch.prepare(session, payload.action_id)

    def call(self, prepared: PreparedCall) -> ActionResult | None:
        return dispatch.call(prepared)

    def record(
        self,
        session: Session,
        payload: PerformPayload,
        prepared: PreparedCall,
        outcome: ActionResult | BaseException | None,
    ) -> None:
        dispatch.record(session, prepared, outcome)


@periodic(EXPIRE_JOB, every=timedelta(minutes=5), payload=ExpirePayload)
def expire_overdue_actions(session: Session, payload: ExpirePayload) -> None:
    """Expire actions whose deadline passed while they waited on a person (for one organisation,
    or all); scheduled every few minutes."""
    expire_overdue(session, org_id=payload.org_id)


@periodic(SWEEP_JOB, every=timedelta(minutes=5), payload=SweepPayload)
def sweep_stuck_actions(session: Session, payload: SweepPayload) -> None:
    """Set going again the actions no job will move any more (queued with their job gone,
    sending with their worker dead): a new job, which reconciles a sending one; scheduled every
    few minutes."""
    sweep = sweep_stuck(session, org_id=payload.org_id)
    if sweep.requeued or sweep.rechecked or sweep.handed_over:
        log.warning(
            "stuck actions: %d queued again, %d sending to check, %d handed to a person",
            len(sweep.requeued),
            len(sweep.rechecked),
            len(sweep.handed_over),
        )

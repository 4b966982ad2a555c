"""Background jobs of the connectors. ``qunyun.worker.builtin`` imports this module so that the
handlers are registered in the worker."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from qunyun.connectors.dispatch import EXPIRE_JOB, PERFORM_JOB, expire_overdue, perform_queued
from qunyun.worker.queue import job_handler
from qunyun.worker.scheduler import PeriodicPayload, periodic


class PerformPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    action_id: int


class ExpirePayload(PeriodicPayload):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int | None = None


@job_handler(PERFORM_JOB, payload=PerformPayload)
def perform_action(session: Session, payload: PerformPayload) -> None:
    """Perform one queued outbound action."""
    perform_queued(session, payload.action_id)


@periodic(EXPIRE_JOB, every=timedelta(minutes=5), payload=ExpirePayload)
def expire_overdue_actions(session: Session, payload: ExpirePayload) -> None:
    """Expire actions whose deadline passed while they waited on a person (for one organisation,
    or all); scheduled every few minutes."""
    expire_overdue(session, org_id=payload.org_id)

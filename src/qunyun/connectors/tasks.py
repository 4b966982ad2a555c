"""Background jobs of the connectors. ``qunyun.worker.builtin`` imports this module so that the
handlers are registered in the worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from qunyun.connectors.dispatch import EXPIRE_JOB, PERFORM_JOB, expire_overdue, perform_queued
from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.worker.queue import job_handler
from qunyun.worker.scheduler import periodic


@job_handler(PERFORM_JOB)
def perform_action(session: Session, payload: dict[str, Any]) -> None:
    """Perform one queued outbound action (payload: ``{"action_id": int}``)."""
    action_id = payload.get("action_id")
    if isinstance(action_id, bool) or not isinstance(action_id, int):
        raise InvalidInput(Msg("err.job.integer_field", job="connectors.perform", field="action_id"), field="action_id")
    perform_queued(session, action_id)


@periodic(EXPIRE_JOB, every=timedelta(minutes=5))
def expire_overdue_actions(session: Session, payload: dict[str, Any]) -> None:
    """Expire actions whose deadline passed while they waited on a person (payload: optional
    ``{"org_id": int}``); meant to be scheduled every few minutes."""
    org_id = payload.get("org_id")
    expire_overdue(session, org_id=org_id if isinstance(org_id, int) else None)

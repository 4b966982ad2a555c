"""Background jobs of staff tasks: reminders and escalation every few minutes.
``qunyun.worker.builtin`` imports this module so that the handler is registered in the worker."""

from __future__ import annotations

import logging
from datetime import timedelta

from pydantic import ConfigDict
from sqlalchemy.orm import Session

from qunyun.tasks.service import remind_and_escalate
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import PeriodicPayload, periodic

log = logging.getLogger(__name__)
REMIND_JOB = "tasks.remind_and_escalate"


class RemindPayload(PeriodicPayload):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int | None = None


@periodic(REMIND_JOB, every=timedelta(minutes=5), payload=RemindPayload)
def remind_and_escalate_tasks(session: Session, payload: RemindPayload) -> None:
    """Record due reminders and escalate overdue tasks to the lead (one organisation, or all)."""
    sweep = remind_and_escalate(session, utcnow(), org_id=payload.org_id)
    if sweep.reminded or sweep.escalated:
        log.info("tasks: %d reminded, %d escalated", len(sweep.reminded), len(sweep.escalated))

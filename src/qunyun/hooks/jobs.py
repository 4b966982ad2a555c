"""Background jobs of the webhook inbox: process a delivery; purge old payloads (hourly)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy.orm import Session

from qunyun.config import get_settings
from qunyun.hooks.schemas import PROCESS_KIND, PURGE_KIND, ProcessDelivery
from qunyun.hooks.service import process_delivery, purge_payloads
from qunyun.timeutil import utcnow
from qunyun.worker.queue import job_handler
from qunyun.worker.scheduler import PeriodicPayload, periodic

log = logging.getLogger(__name__)


@job_handler(PROCESS_KIND, payload=ProcessDelivery)
def process_delivery_job(session: Session, payload: ProcessDelivery) -> None:
    """Normalize a stored webhook delivery with its connection's connector and ingest the events."""
    # Imported here: the web app imports this module (to enqueue typed jobs), not the runner.
    from qunyun.worker.runner import current_job

    try:
        job = current_job()
        last_attempt = job.attempt >= job.max_attempts
    except RuntimeError:  # run by hand (a test, a tool), not by a worker
        last_attempt = False
    process_delivery(
        session,
        payload.delivery_id,
        now=utcnow(),
        retention_days=get_settings().webhook_payload_retention_days,
        last_attempt=last_attempt,
    )


@periodic(PURGE_KIND, every=timedelta(hours=1), payload=PeriodicPayload)
def purge_payloads_job(session: Session, payload: PeriodicPayload) -> None:
    """Hourly: enforce QUNYUN_WEBHOOK_PAYLOAD_RETENTION_DAYS (payloads carry message text)."""
    days = get_settings().webhook_payload_retention_days
    purged = purge_payloads(session, now=utcnow(), retention_days=days)
    log.info("purged the payloads of %d webhook deliveries processed more than %d days ago", purged, days)

"""Background jobs of the privacy domain."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.orm import Session

from qunyun.config import get_settings
from qunyun.models import MessageText
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import periodic

log = logging.getLogger(__name__)


def purge_message_text(session: Session, *, now: datetime, retention_days: int) -> int:
    """Delete message text older than ``retention_days`` (0: all of it); returns the rows deleted.

    Only the text goes: the event log keeps each message's type and length for the metrics.
    """
    stmt = delete(MessageText).execution_options(synchronize_session=False)
    if retention_days > 0:
        stmt = stmt.where(MessageText.ts < now - timedelta(days=retention_days))
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


@periodic("privacy.purge_message_text", every=timedelta(hours=1))
def purge_message_text_job(session: Session, payload: dict[str, Any]) -> None:
    """Hourly: enforce QUNYUN_MESSAGE_TEXT_RETENTION_DAYS (message text is personal data)."""
    days = get_settings().message_text_retention_days
    deleted = purge_message_text(session, now=utcnow(), retention_days=days)
    log.info("purged %d message texts older than %d days", deleted, days)

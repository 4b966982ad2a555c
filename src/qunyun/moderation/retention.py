"""Message content in moderation's evidence follows the message text's retention
(QUNYUN_MESSAGE_TEXT_RETENTION_DAYS): a decision's excerpt is a piece of a member's message, so
it goes when the message's text goes. The decision (rule, words, action, time) stays."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from qunyun.config import get_settings
from qunyun.models import ModerationDecision
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import periodic

log = logging.getLogger(__name__)
PURGE_JOB = "moderation.purge_excerpts"


def purge_excerpts(session: Session, *, now: datetime, retention_days: int) -> int:
    """Blank the excerpts of decisions older than ``retention_days`` (0: every one); returns
    how many."""
    D = ModerationDecision
    stmt = update(D).where(D.excerpt != "").values(excerpt="").execution_options(synchronize_session=False)
    if retention_days > 0:
        stmt = stmt.where(D.at < now - timedelta(days=retention_days))
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


@periodic(PURGE_JOB, every=timedelta(hours=1))
def purge_excerpts_job(session: Session, payload: dict[str, Any]) -> None:
    """Hourly, with the message texts: evidence excerpts past the retention window go."""
    days = get_settings().message_text_retention_days
    purged = purge_excerpts(session, now=utcnow(), retention_days=days)
    log.info("blanked %d moderation excerpts older than %d days", purged, days)

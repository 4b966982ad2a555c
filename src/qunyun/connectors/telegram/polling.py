"""Long polling for connections in ``polling`` mode (self-hosters without a public URL).

The periodic job ``telegram.poll`` (every 5 seconds) asks each active polling connection for
its updates with ``getUpdates(offset, timeout=0, allowed_updates=…)`` and ingests them; the
offset (one past the last update id) is stored in ``telegram_poll_state`` in the same
transaction, so an update is ingested once even if the job dies half way (Telegram forgets
updates older than the offset only when it is next asked with it). ``allowed_updates`` names
``chat_member`` explicitly: Telegram leaves it out by default.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.connectors.base import TransientError
from qunyun.connectors.registry import connector_of
from qunyun.connectors.telegram.client import TelegramConnector
from qunyun.connectors.telegram.updates import ALLOWED_UPDATES
from qunyun.ingestion.service import ingest
from qunyun.models import Connection, ConnectionStatus
from qunyun.models.telegram_state import TelegramPollState
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import PeriodicPayload, periodic

log = logging.getLogger(__name__)

POLL_JOB = "telegram.poll"
BATCH = 100  # getUpdates' maximum


def poll_connection(session: Session, connection: Connection, *, limit: int = BATCH) -> int:
    """Fetch and ingest one batch of updates of ``connection``; returns how many updates came."""
    connector = connector_of(connection)
    if not isinstance(connector, TelegramConnector):
        return 0
    state = session.get(TelegramPollState, connection.id, with_for_update=True)
    if state is None:
        state = TelegramPollState(connection_id=connection.id, next_offset=0, updated_at=utcnow())
        session.add(state)
    params: dict[str, Any] = {"timeout": 0, "limit": limit, "allowed_updates": list(ALLOWED_UPDATES)}
    if state.next_offset:
        params["offset"] = state.next_offset
    updates = connector.api.call("getUpdates", params, timeout=10.0)
    if not isinstance(updates, list) or not updates:
        return 0
    events: list[dict[str, Any]] = []
    last = state.next_offset - 1
    for raw in updates:
        last = max(last, int(raw["update_id"]))
        events.extend(connector.normalize(raw))
    if events:
        ingest(
            session,
            connection.org_id,
            events,
            platform="telegram",
            source="polling",
            live=True,
            connection_id=connection.id,
        )
    for raw in updates:
        connector.record_extras(session, connection, raw)  # join requests
    state.next_offset = last + 1
    state.updated_at = utcnow()
    session.flush()
    return len(updates)


@periodic(POLL_JOB, every=timedelta(seconds=5), payload=PeriodicPayload)
def poll_job(session: Session, payload: PeriodicPayload) -> None:
    """Every 5 seconds: one batch of updates per active Telegram connection in polling mode."""
    rows = session.scalars(
        select(Connection).where(Connection.platform == "telegram", Connection.status != ConnectionStatus.DISABLED)
    ).all()
    for row in rows:
        if (row.settings or {}).get("mode") != "polling":
            continue
        try:
            with session.begin_nested():
                count = poll_connection(session, row)
        except TransientError as exc:
            log.warning("telegram connection %s: polling postponed (%s)", row.id, exc)
            continue
        if count:
            log.info("telegram connection %s: %d updates polled", row.id, count)

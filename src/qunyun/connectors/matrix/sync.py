"""Bot mode: the worker syncs each Matrix bot connection (``/sync`` from its stored ``next_batch``).

``matrix.sync`` runs every few seconds and, for each active bot-mode Matrix connection, asks the
homeserver what happened since the stored ``next_batch`` (``timeout=0``: no long poll inside a
job), joins the rooms the bot was invited to, normalizes the joined rooms' timelines and ingests
them with the new ``next_batch``, all in one transaction: a crash before the commit syncs the same
batch again, and ingestion drops the events it already has.

The first sync of a connection (no ``next_batch`` yet) brings the rooms' recent timelines in as
history (no welcome, no moderation); from the second on, events are live.

A timeline the homeserver reports ``limited`` (more events than the filter's limit since the last
sync) is read back with ``/messages`` from its ``prev_batch`` until the gap is closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nio import Api
from nio.api import MessageDirection
from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.connectors.base import TransientError
from qunyun.connectors.matrix.api import MatrixError
from qunyun.connectors.matrix.client import MatrixConnector
from qunyun.connectors.registry import connector_of
from qunyun.ingestion.service import ingest
from qunyun.models import Connection, ConnectionStatus
from qunyun.models.matrix_state import MatrixSyncState
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import PeriodicPayload, periodic

log = logging.getLogger(__name__)

SYNC_JOB = "matrix.sync"
SYNC_EVERY = timedelta(seconds=5)
TIMELINE_LIMIT = 100
# Pages of /messages read back to close one room's gap, at most.
MAX_BACKFILL_PAGES = 20
EVENT_TYPES = ["m.room.member", "m.room.message", "m.room.name", "m.room.redaction", "m.room.encrypted"]
SYNC_FILTER: dict[str, Any] = {
    "presence": {"types": []},
    "account_data": {"types": []},
    "room": {
        "timeline": {"limit": TIMELINE_LIMIT, "types": EVENT_TYPES},
        "state": {"types": []},
        "ephemeral": {"types": []},
        "account_data": {"types": []},
    },
}


@dataclass(frozen=True)
class SyncResult:
    events: int  # interchange events normalized
    stored: int  # of which new
    live: bool
    joined: int  # rooms joined on invitation


def sync_connection(session: Session, connection: Connection, *, now: datetime, timeout_ms: int = 0) -> SyncResult:
    """Sync ``connection`` once and ingest what came, in the caller's transaction."""
    connector = connector_of(connection)
    if not isinstance(connector, MatrixConnector):
        raise TypeError(f"connection {connection.id} has no Matrix connector")
    state = session.get(MatrixSyncState, connection.id)
    since = state.next_batch if state is not None else None
    api = connector.api
    answer = api.call(Api.sync(api.token, since=since, timeout=timeout_ms, filter=SYNC_FILTER))
    raw: list[dict[str, Any]] = []
    rooms = answer.get("rooms") or {}
    for room_id, room in (rooms.get("join") or {}).items():
        timeline = room.get("timeline") or {}
        events = list(timeline.get("events") or [])
        if since is not None and timeline.get("limited") and timeline.get("prev_batch"):
            events = _backfill(connector, room_id, timeline["prev_batch"], since) + events
        raw.extend({**e, "room_id": room_id} for e in events if isinstance(e, dict))
    joined = 0
    for room_id in rooms.get("invite") or {}:
        try:
            api.call(Api.join(api.token, room_id))
            joined += 1
        except MatrixError as exc:  # the invitation was withdrawn meanwhile, or the room is gone
            log.info("matrix connection %s could not join an invited room: %s", connection.id, exc.errcode)
    events = connector.normalize({"events": raw})
    live = since is not None
    stored = 0
    if events:
        result = ingest(
            session,
            connection.org_id,
            events,
            platform="matrix",
            source="sync",
            live=live,
            connection_id=connection.id,
        )
        stored = result.stored
    next_batch = str(answer["next_batch"])
    if state is None:
        session.add(MatrixSyncState(connection_id=connection.id, next_batch=next_batch, synced_at=now, failures=0))
    else:
        state.next_batch, state.synced_at, state.failures, state.last_error = next_batch, now, 0, None
    session.flush()
    return SyncResult(len(events), stored, live, joined)


def _backfill(connector: MatrixConnector, room_id: str, prev_batch: str, since: str) -> list[dict[str, Any]]:
    """The events of ``room_id`` between the last sync (``since``) and the timeline's start,
    oldest first."""
    api = connector.api
    older: list[dict[str, Any]] = []
    token: str | None = prev_batch
    for _ in range(MAX_BACKFILL_PAGES):
        if token is None:
            break
        page = api.call(
            Api.room_messages(
                api.token,
                room_id,
                start=token,
                end=since,
                direction=MessageDirection.back,
                limit=TIMELINE_LIMIT,
                message_filter={"types": EVENT_TYPES},
            )
        )
        chunk = [e for e in page.get("chunk") or [] if isinstance(e, dict)]
        older.extend(chunk)
        token = page.get("end")
        if not chunk:
            break
    older.reverse()
    return older


def record_failure(session: Session, connection_id: int, reason: str, *, now: datetime) -> None:
    state = session.get(MatrixSyncState, connection_id)
    if state is None:
        return  # never synced: nothing to resume, the next run starts again
    state.failures += 1
    state.last_error = reason[:300]
    session.flush()


def bot_connections(session: Session) -> list[Connection]:
    rows = session.scalars(
        select(Connection)
        .where(Connection.platform == "matrix", Connection.status != ConnectionStatus.DISABLED.value)
        .order_by(Connection.id)
    ).all()
    return [row for row in rows if (row.settings or {}).get("mode", "bot") == "bot"]


@periodic(SYNC_JOB, every=SYNC_EVERY, payload=PeriodicPayload)
def sync_job(session: Session, payload: PeriodicPayload) -> None:
    """Every few seconds: sync each bot-mode Matrix connection (one failing does not stop the rest)."""
    for connection in bot_connections(session):
        now = utcnow()
        try:
            with session.begin_nested():
                result = sync_connection(session, connection, now=now)
        except (TransientError, MatrixError) as exc:
            reason = exc.errcode if isinstance(exc, MatrixError) else type(exc).__name__
            log.warning("matrix sync of connection %s failed: %s", connection.id, reason)
            record_failure(session, connection.id, reason, now=now)
            continue
        if result.events or result.joined:
            log.info(
                "matrix sync of connection %s: %d events, %d new, %d rooms joined",
                connection.id,
                result.events,
                result.stored,
                result.joined,
            )

"""The webhook inbox: store what a verifier accepted, count what it refused, process, replay, purge.

A request verified by its platform's verifier (``qunyun.connectors.webhooks``) becomes a
``WebhookDelivery`` with its raw payload, and a ``hooks.process`` job in the same transaction;
the job normalizes the payload with the connection's connector and ingests the events. A delivery
that cannot be normalized or ingested is ``failed`` with the reason (never its content) and stays
for inspection and replay. Message text is personal data: processed payloads are purged after
``QUNYUN_WEBHOOK_PAYLOAD_RETENTION_DAYS``.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, func, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import record_by
from qunyun.auth.scope import Scope, require_lead
from qunyun.connectors.registry import connector_of
from qunyun.connectors.webhooks import Verified
from qunyun.db.unique import try_insert
from qunyun.errors import Conflict, NotFound, QunyunError
from qunyun.hooks.schemas import PROCESS_KIND, ProcessDelivery, Receipt, RejectionCount
from qunyun.ingestion.service import ingest
from qunyun.locale import Msg
from qunyun.models import Connection, DeliveryStatus, WebhookDelivery, WebhookRejection
from qunyun.worker.queue import enqueue

log = logging.getLogger(__name__)

# Delivery ids up to this long are the dedupe key as they are; longer ones by their hash.
_KEY_ID_MAX = 190
ERROR_MAX_CHARS = 500


def utc_day(now: datetime) -> int:
    """``now``'s UTC calendar day as YYYYMMDD (rejection counters are bucketed by UTC day)."""
    day = now.astimezone(UTC)
    return day.year * 10000 + day.month * 100 + day.day


def dedupe_key(verified: Verified, body: bytes) -> str:
    """The platform's delivery id when it gives one, else the SHA-256 of the body."""
    if verified.delivery_id:
        if len(verified.delivery_id) <= _KEY_ID_MAX:
            return f"id:{verified.delivery_id}"
        return "id-sha256:" + hashlib.sha256(verified.delivery_id.encode("utf-8")).hexdigest()
    return "sha256:" + hashlib.sha256(body).hexdigest()


# -- receiving -------------------------------------------------------------------------------------


def record_rejection(session: Session, connection: Connection | None, reason: str, *, now: datetime) -> None:
    """Count one refused request of ``connection`` (None: it named no connection) for ``reason``.

    One row per connection, reason and UTC day; concurrent refusals add up (the row is updated in
    place, or inserted once: a racing insert of the same bucket falls back to the update)."""
    day = utc_day(now)
    bucket = and_(
        func.coalesce(WebhookRejection.connection_id, 0) == (connection.id if connection is not None else 0),
        WebhookRejection.reason == reason,
        WebhookRejection.day == day,
    )
    bump = (
        update(WebhookRejection)
        .where(bucket)
        .values(count=WebhookRejection.count + 1, last_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], session.execute(bump)).rowcount:
        return
    row = WebhookRejection(
        org_id=connection.org_id if connection is not None else None,
        connection_id=connection.id if connection is not None else None,
        reason=reason,
        day=day,
        count=1,
        last_at=now,
    )
    if not try_insert(session, row):  # a concurrent first rejection of the day took the bucket
        session.execute(bump)


def receive(session: Session, connection: Connection, verified: Verified, body: bytes, *, now: datetime) -> Receipt:
    """Store an accepted request in the inbox and enqueue its processing, in the caller's
    transaction; a redelivery (same dedupe key for the connection) changes nothing."""
    key = dedupe_key(verified, body)
    known = select(WebhookDelivery.id).where(
        WebhookDelivery.connection_id == connection.id, WebhookDelivery.dedupe_key == key
    )
    existing = session.scalar(known)
    if existing is not None:
        return Receipt(existing, created=False)
    delivery = WebhookDelivery(
        org_id=connection.org_id,
        connection_id=connection.id,
        platform=connection.platform,
        dedupe_key=key,
        delivery_id=verified.delivery_id[:200] if verified.delivery_id else None,
        received_at=now,
        sent_at=verified.sent_at,
        size=len(body),
        payload=verified.payload,
        status=DeliveryStatus.RECEIVED.value,
        attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(delivery)
            session.flush()
            _enqueue_processing(session, delivery, priority=verified.priority)
    except IntegrityError:
        # The same delivery arrived twice at once (a platform retrying early): the other one won.
        existing = session.scalar(known)
        if existing is None:
            raise
        return Receipt(existing, created=False)
    return Receipt(delivery.id, created=True)


def _enqueue_processing(session: Session, delivery: WebhookDelivery, *, priority: int = 0) -> None:
    # One job per processing attempt: the first is #0, a replay after n attempts is #n.
    enqueue(
        session,
        PROCESS_KIND,
        ProcessDelivery(delivery_id=delivery.id).model_dump(),
        org_id=delivery.org_id,
        key=f"{PROCESS_KIND}:{delivery.id}#{delivery.attempts}",
        priority=priority,
    )


# -- processing ------------------------------------------------------------------------------------


def failure_reason(error: BaseException) -> str:
    """Why processing failed, without any of the payload's content: the error's code, the field
    it names and its catalogue key (the values, which may quote the payload, are left out)."""
    if isinstance(error, QunyunError):
        parts = [error.code]
        if error.field:
            parts.append(error.field)
        msg = error.msg
        # The innermost reason: "err.event.at_index" wraps the one that says what is wrong.
        while msg is not None:
            inner = next((v for v in msg.values.values() if isinstance(v, Msg)), None)
            if inner is None:
                parts.append(msg.key)
                break
            msg = inner
        return " ".join(parts)[:ERROR_MAX_CHARS]
    return type(error).__name__


def process_delivery(
    session: Session, delivery_id: int, *, now: datetime, retention_days: int, last_attempt: bool = False
) -> WebhookDelivery | None:
    """Normalize and ingest delivery ``delivery_id`` (the ``hooks.process`` job), in the caller's
    transaction. Processed already: nothing happens. Bad content: the delivery is ``failed`` with
    the reason, nothing of it is ingested, and no error is raised (a retry would fail the same
    way); other errors propagate, so that the job is retried, except on its ``last_attempt``,
    when the delivery fails with the error's type."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status == DeliveryStatus.PROCESSED:
        return delivery
    delivery.attempts += 1
    if delivery.payload is None:
        _fail(delivery, "payload_purged", now)
        return delivery
    connection = session.get(Connection, delivery.connection_id)
    assert connection is not None  # deliveries cascade with their connection
    payload = delivery.payload
    try:
        connector = connector_of(connection)
        with session.begin_nested():
            events = connector.normalize(payload)
            result = ingest(
                session,
                connection.org_id,
                events,
                platform=connection.platform,
                source="webhook",
                live=True,
                connection_id=connection.id,
            )
            connector.record_extras(session, connection, payload)
    except (QunyunError, DataError, OverflowError) as exc:
        # DataError/OverflowError: a value no column holds (rolled back with the savepoint).
        _fail(delivery, failure_reason(exc), now)
        return delivery
    except Exception as exc:
        if not last_attempt:
            raise  # e.g. a lock timeout: the job is retried
        # The job's last attempt: the delivery must not stay "received" behind a dead job.
        _fail(delivery, f"retries_exhausted {failure_reason(exc)}", now)
        return delivery
    delivery.status = DeliveryStatus.PROCESSED.value
    delivery.processed_at = now
    delivery.error = None
    delivery.events = len(events)
    delivery.events_stored = result.stored
    if retention_days == 0:
        _purge(delivery, now)
    session.flush()
    log.info(
        "webhook delivery %s of connection %s processed: %d events, %d new",
        delivery.id,
        delivery.connection_id,
        len(events),
        result.stored,
    )
    return delivery


def _fail(delivery: WebhookDelivery, reason: str, now: datetime) -> None:
    delivery.status = DeliveryStatus.FAILED.value
    delivery.error = reason
    delivery.processed_at = now
    log.warning(
        "webhook delivery %s of connection %s failed: %s (size %d)",
        delivery.id,
        delivery.connection_id,
        reason,
        delivery.size,
    )


def _purge(delivery: WebhookDelivery, now: datetime) -> None:
    delivery.payload = None
    delivery.purged_at = now


def purge_payloads(session: Session, *, now: datetime, retention_days: int) -> int:
    """Drop the payloads of deliveries processed more than ``retention_days`` ago (0: all processed
    ones); the rows stay, so a late redelivery is still recognised. Returns how many were purged."""
    stmt = (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.status == DeliveryStatus.PROCESSED.value,
            WebhookDelivery.purged_at.is_(None),
            WebhookDelivery.processed_at <= now - timedelta(days=retention_days),
        )
        .values(payload=None, purged_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


# -- the console: leads only (payloads are personal data) ------------------------------------------


def get_delivery(session: Session, scope: Scope, delivery_id: int) -> WebhookDelivery:
    """Delivery ``delivery_id`` of the caller's organisation; Forbidden unless a lead, NotFound
    for a missing one or another organisation's."""
    require_lead(scope)
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.org_id != scope.org_id:
        raise NotFound(Msg("hooks.no_delivery", id=delivery_id), field="delivery_id")
    return delivery


def list_deliveries(
    session: Session,
    scope: Scope,
    *,
    status: str | None = None,
    connection_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[WebhookDelivery], int]:
    """The organisation's deliveries, newest first, optionally of one status or connection; and
    how many there are in all."""
    require_lead(scope)
    conditions = [WebhookDelivery.org_id == scope.org_id]
    if status:
        conditions.append(WebhookDelivery.status == status)
    if connection_id is not None:
        conditions.append(WebhookDelivery.connection_id == connection_id)
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(*conditions)) or 0
    rows = session.scalars(
        select(WebhookDelivery)
        .where(*conditions)
        .order_by(WebhookDelivery.received_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), int(total)


def rejection_counts(session: Session, scope: Scope, *, now: datetime, days: int = 7) -> list[RejectionCount]:
    """Refusals per connection and reason of the organisation: today and over the last ``days``
    UTC days (today included)."""
    require_lead(scope)
    today = utc_day(now)
    since = utc_day(now - timedelta(days=days - 1))
    rows = session.execute(
        select(
            WebhookRejection.connection_id,
            Connection.name,
            WebhookRejection.reason,
            func.sum(WebhookRejection.count),
            func.max(WebhookRejection.last_at),
        )
        .join(Connection, Connection.id == WebhookRejection.connection_id)
        .where(WebhookRejection.org_id == scope.org_id, WebhookRejection.day >= since)
        .group_by(WebhookRejection.connection_id, Connection.name, WebhookRejection.reason)
        .order_by(Connection.name, WebhookRejection.reason)
    ).all()
    today_counts = {
        (cid, reason): int(n)
        for cid, reason, n in session.execute(
            select(WebhookRejection.connection_id, WebhookRejection.reason, WebhookRejection.count).where(
                WebhookRejection.org_id == scope.org_id, WebhookRejection.day == today
            )
        )
    }
    return [
        RejectionCount(int(cid or 0), name, reason, today_counts.get((cid, reason), 0), int(recent or 0), last)
        for cid, name, reason, recent, last in rows
    ]


def replay_delivery(
    session: Session, scope: Scope, delivery_id: int, *, request: HTTPConnection | None = None
) -> WebhookDelivery:
    """Process a failed delivery again (a new job), audited; Conflict unless it is failed."""
    delivery = get_delivery(session, scope, delivery_id)
    if delivery.status != DeliveryStatus.FAILED:
        raise Conflict(Msg("hooks.replay_not_failed"), field="delivery_id")
    if delivery.payload is None:
        raise Conflict(Msg("hooks.replay_purged"), field="delivery_id")
    record_by(
        session,
        scope,
        action="webhook.replay",
        target_type="webhook_delivery",
        target_id=delivery.id,
        detail={"connection_id": delivery.connection_id, "attempts": delivery.attempts, "error": delivery.error},
        request=request,
    )
    delivery.status = DeliveryStatus.RECEIVED.value
    delivery.error = None
    session.flush()
    _enqueue_processing(session, delivery)
    return delivery


def connection_names(session: Session, org_id: int) -> dict[int, str]:
    """The organisation's connections by id (for filters and labels)."""
    return {
        int(cid): name
        for cid, name in session.execute(
            select(Connection.id, Connection.name).where(Connection.org_id == org_id).order_by(Connection.name)
        )
    }

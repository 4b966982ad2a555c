"""Webhooks of a simulator connection: HMAC-SHA256 over the timestamp and the body.

A request carries

- ``X-Qunyun-Timestamp``: when it was sent, in Unix seconds;
- ``X-Qunyun-Signature``: ``sha256=`` + the hex HMAC-SHA256, keyed with the connection's secret
  ``webhook_secret``, of ``"{timestamp}.{body}"`` (for a GET handshake the "body" is the value of
  the ``challenge`` query parameter, which is echoed back);
- optionally ``X-Qunyun-Delivery``: an id of the delivery, the same on every retry of it.

The body is JSON: one interchange v1 event, or ``{"events": [...]}``. A connection without a
``webhook_secret`` takes no webhooks (``unsigned``). :func:`signed_headers` signs a request.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.webhooks import (
    MAX_DELIVERY_ID,
    RejectReason,
    Reply,
    Verified,
    WebhookRejected,
    WebhookRequest,
    check_fresh,
    digest_equal,
    json_object,
    unix_time,
)

TIMESTAMP_HEADER = "x-qunyun-timestamp"
SIGNATURE_HEADER = "x-qunyun-signature"
DELIVERY_HEADER = "x-qunyun-delivery"
SECRET_NAME = "webhook_secret"
SCHEME = "sha256="


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``"{timestamp}.{body}"`` keyed with ``secret``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signed_headers(secret: str, body: bytes, *, at: datetime, delivery_id: str | None = None) -> dict[str, str]:
    """The headers that make ``body``, sent at ``at``, a valid webhook of a connection whose
    ``webhook_secret`` is ``secret`` (for a GET handshake, ``body`` is the challenge)."""
    timestamp = str(int(at.timestamp()))
    headers = {
        "X-Qunyun-Timestamp": timestamp,
        "X-Qunyun-Signature": signature(secret, timestamp, body),
    }
    if delivery_id is not None:
        headers["X-Qunyun-Delivery"] = delivery_id
    return headers


def verify(request: WebhookRequest, config: ConnectionConfig, now: datetime, max_age: int) -> Verified:
    """Verify a simulator webhook (see the module's docstring); pure: ``now`` is the caller's."""
    secret = config.secrets.get(SECRET_NAME)
    if not isinstance(secret, str) or not secret:
        raise WebhookRejected(RejectReason.UNSIGNED)
    timestamp = request.header(TIMESTAMP_HEADER)
    supplied = request.header(SIGNATURE_HEADER)
    if not timestamp or not supplied:
        raise WebhookRejected(RejectReason.UNSIGNED)
    handshake = request.method.upper() == "GET"
    signed = request.query.get("challenge", "").encode("utf-8") if handshake else request.body
    if not timestamp.isascii() or not digest_equal(signature(secret, timestamp, signed), supplied.strip()):
        raise WebhookRejected(RejectReason.BAD_SIGNATURE)
    # Signed by the holder of the secret from here on: what is wrong now is the request's shape.
    sent_at = unix_time(timestamp)
    if sent_at is None:
        raise WebhookRejected(RejectReason.MALFORMED)
    check_fresh(sent_at, now, max_age)
    if handshake:
        if not signed:
            raise WebhookRejected(RejectReason.MALFORMED)
        return Verified(sent_at=sent_at, reply=Reply(200, signed, "text/plain"))
    delivery_id = request.header(DELIVERY_HEADER)
    if delivery_id is not None:
        delivery_id = delivery_id.strip()
        if not delivery_id or len(delivery_id) > MAX_DELIVERY_ID or not delivery_id.isprintable():
            raise WebhookRejected(RejectReason.MALFORMED)
    return Verified(payload=json_object(request.body), delivery_id=delivery_id, sent_at=sent_at)

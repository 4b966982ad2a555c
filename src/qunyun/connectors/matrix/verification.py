"""Application-service transactions: ``PUT /hooks/matrix/{id}/_matrix/app/v1/transactions/{txnId}``.

The registration file's ``url`` is ``https://<qunyun>/hooks/matrix/<connection id>``; the
homeserver appends the path of each call. A transaction carries the connection's ``hs_token``,
as ``Authorization: Bearer <hs_token>`` (since Matrix 1.4) or as the legacy
``?access_token=<hs_token>``; it is compared in constant time. The transaction id is the
delivery id: the inbox stores a transaction once per connection however often the homeserver
sends it, and every copy is answered ``200 {}`` (the homeserver retries until it gets that).

Refusals: no token, or a connection without an ``hs_token`` (appservice mode) → ``unsigned``
(401); a wrong token → ``bad_signature`` (401); another path, or a body that is not a JSON
object with an ``events`` list → ``malformed`` (400).
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import unquote

from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.webhooks import (
    MAX_DELIVERY_ID,
    RejectReason,
    Reply,
    Verified,
    WebhookRejected,
    WebhookRequest,
    digest_equal,
    json_object,
)

TRANSACTION = re.compile(r"/_matrix/app/v1/transactions/([^/]+)")
PING = "/_matrix/app/v1/ping"
EMPTY = Reply(200, b"{}", "application/json")


def supplied_token(request: WebhookRequest) -> str | None:
    header = request.header("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else None
    legacy = request.query.get("access_token")
    return legacy or None


def verify(request: WebhookRequest, config: ConnectionConfig, now: datetime, max_age: int) -> Verified:
    """Verify a homeserver's call to the application service (see the module's doc)."""
    expected = config.secrets.get("hs_token")
    if (config.settings.get("mode") or "bot") != "appservice" or not isinstance(expected, str) or not expected:
        raise WebhookRejected(RejectReason.UNSIGNED)
    token = supplied_token(request)
    if token is None:
        raise WebhookRejected(RejectReason.UNSIGNED)
    if not digest_equal(expected, token):
        raise WebhookRejected(RejectReason.BAD_SIGNATURE)
    method = request.method.upper()
    if method == "POST" and request.path == PING:
        return Verified(reply=EMPTY)  # the homeserver checking that we answer: nothing to store
    match = TRANSACTION.fullmatch(request.path)
    if method != "PUT" or match is None:
        raise WebhookRejected(RejectReason.MALFORMED)
    txn = unquote(match.group(1))
    if not txn or len(txn) > MAX_DELIVERY_ID or not txn.isprintable():
        raise WebhookRejected(RejectReason.MALFORMED)
    payload = json_object(request.body)
    if not isinstance(payload.get("events", []), list):
        raise WebhookRejected(RejectReason.MALFORMED)
    return Verified(payload=payload, delivery_id=f"txn:{txn}", reply=EMPTY)

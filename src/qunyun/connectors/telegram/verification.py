"""Webhooks of a Telegram connection: the secret token header.

``setWebhook(secret_token=S)`` makes Telegram send ``X-Telegram-Bot-Api-Secret-Token: S`` with
every update it posts; the connection keeps ``S`` as its ``webhook_secret``. Telegram signs
nothing else and sends no timestamp, so there is no replay window: a redelivered update is
recognised by its ``update_id`` (the delivery id), which the inbox deduplicates.
"""

from __future__ import annotations

from datetime import datetime

from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.webhooks import (
    RejectReason,
    Verified,
    WebhookRejected,
    WebhookRequest,
    digest_equal,
    json_object,
)

SECRET_HEADER = "x-telegram-bot-api-secret-token"
SECRET_NAME = "webhook_secret"


def verify(request: WebhookRequest, config: ConnectionConfig, now: datetime, max_age: int) -> Verified:
    """Accept a POST whose secret token header equals the connection's ``webhook_secret``
    (compared in constant time); pure, ``now`` and ``max_age`` unused (Telegram sends no time)."""
    secret = config.secrets.get(SECRET_NAME)
    if not isinstance(secret, str) or not secret:
        raise WebhookRejected(RejectReason.UNSIGNED)  # a polling connection takes no webhooks
    supplied = request.header(SECRET_HEADER)
    if not supplied:
        raise WebhookRejected(RejectReason.UNSIGNED)
    if not digest_equal(secret, supplied):
        raise WebhookRejected(RejectReason.BAD_SIGNATURE)
    if request.method.upper() != "POST":
        raise WebhookRejected(RejectReason.MALFORMED)
    payload = json_object(request.body)
    update_id = payload.get("update_id")
    if isinstance(update_id, bool) or not isinstance(update_id, int) or update_id < 0:
        raise WebhookRejected(RejectReason.MALFORMED)
    return Verified(payload=payload, delivery_id=f"update:{update_id}")

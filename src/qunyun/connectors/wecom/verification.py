"""Callbacks of a WeCom connection: URL verification (GET) and encrypted events (POST).

WeCom calls ``/hooks/wecom/{connection_id}?msg_signature=…&timestamp=…&nonce=…``:

- GET with ``echostr``: the signature is over ``echostr``; the answer is the decrypted echostr,
  as plain text, nothing stored;
- POST with an XML body ``<xml><ToUserName/><Encrypt/><AgentID/></xml>``: the signature is over
  the Encrypt element; its plaintext is the event's XML, stored as a dict (``crypto.parse_xml``).
  The answer is an empty 200 (WeCom then neither retries nor expects a passive reply).

The connection's secrets ``token`` and ``aes_key`` and its setting ``corp_id`` (the receive id
the plaintext must end with) are what is checked. A retry of the same event decrypts to the same
XML: its SHA-256 is the delivery id, so a redelivery is stored once. A new contact's callback with
a WelcomeCode is processed at the welcome's priority: its code is good for 20 s.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.webhooks import (
    RejectReason,
    Reply,
    Verified,
    WebhookRejected,
    WebhookRequest,
    check_fresh,
    digest_equal,
    unix_time,
)
from qunyun.connectors.wecom.contacts import WELCOME_PRIORITY
from qunyun.connectors.wecom.crypto import CryptoError, WeComCrypto, parse_xml

MAX_BODY = 256 * 1024


def crypto_of(config: ConnectionConfig) -> WeComCrypto | None:
    """The connection's callback crypto; None when its token, key or corp id is missing."""
    token = config.secrets.get("token")
    key = config.secrets.get("aes_key")
    corp_id = config.settings.get("corp_id")
    if not (isinstance(token, str) and token and isinstance(key, str) and isinstance(corp_id, str) and corp_id):
        return None
    try:
        return WeComCrypto(token, key, corp_id)
    except CryptoError:
        return None


def verify(request: WebhookRequest, config: ConnectionConfig, now: datetime, max_age: int) -> Verified:
    """Verify a WeCom callback (see the module's docstring); pure: ``now`` is the caller's."""
    crypto = crypto_of(config)
    if crypto is None:
        raise WebhookRejected(RejectReason.UNSIGNED)
    supplied = request.query.get("msg_signature", "")
    timestamp = request.query.get("timestamp", "")
    nonce = request.query.get("nonce", "")
    if not supplied or not timestamp:
        raise WebhookRejected(RejectReason.UNSIGNED)
    handshake = request.method.upper() == "GET"
    if handshake:
        # A '+' in an unencoded query arrives as a space.
        encrypted = request.query.get("echostr", "").replace(" ", "+")
    else:
        if len(request.body) > MAX_BODY:
            raise WebhookRejected(RejectReason.MALFORMED)
        try:
            encrypted = str(parse_xml(request.body).get("Encrypt") or "")
        except (CryptoError, UnicodeDecodeError):
            encrypted = ""
    if not encrypted:
        # Nothing to check a signature over: not a WeCom request (its signature cannot be valid).
        raise WebhookRejected(RejectReason.UNSIGNED)
    if not digest_equal(crypto.sign(timestamp, nonce, encrypted), supplied.strip().lower()):
        raise WebhookRejected(RejectReason.BAD_SIGNATURE)
    sent_at = unix_time(timestamp)
    if sent_at is None:
        raise WebhookRejected(RejectReason.MALFORMED)
    check_fresh(sent_at, now, max_age)
    try:
        plain = crypto.decrypt(encrypted)
    except CryptoError as exc:
        # Signed with our token but not encrypted for this corp with our key.
        raise WebhookRejected(
            RejectReason.BAD_SIGNATURE if exc.reason == "receive_id" else RejectReason.MALFORMED
        ) from None
    if handshake:
        return Verified(sent_at=sent_at, reply=Reply(200, plain, "text/plain"))
    try:
        payload = parse_xml(plain)
    except (CryptoError, UnicodeDecodeError):
        raise WebhookRejected(RejectReason.MALFORMED) from None
    delivery_id = "x-" + hashlib.sha256(plain).hexdigest()
    # A new contact's welcome code is good for 20 s: its processing goes ahead of any backlog.
    urgent = payload.get("Event") == "change_external_contact" and bool(payload.get("WelcomeCode"))
    return Verified(
        payload=payload,
        delivery_id=delivery_id,
        sent_at=sent_at,
        reply=Reply(200, b"", "text/plain"),
        priority=WELCOME_PRIORITY if urgent else 0,
    )

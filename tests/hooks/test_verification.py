"""The simulator's verifier: a pure function of the request, the connection, ``now`` and the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.simulator.verification import signature, signed_headers, verify
from qunyun.connectors.webhooks import (
    RejectReason,
    Verified,
    WebhookRejected,
    WebhookRequest,
    register_verifier,
    verifier_for,
    verify_request,
)

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
SECRET = "hook-secret-0123456789"
CONFIG = ConnectionConfig(7, 1, "simulator", "sim", {}, {"webhook_secret": SECRET})
BODY = b'{"id": "e1", "kind": "group.created"}'


def _request(body: bytes = BODY, *, at: datetime = NOW, secret: str = SECRET, **extra: str) -> WebhookRequest:
    headers = {k.lower(): v for k, v in signed_headers(secret, body, at=at, **extra).items()}
    return WebhookRequest("POST", headers, {}, body)


def _reason(request: WebhookRequest, config: ConnectionConfig = CONFIG, max_age: int = 300) -> str:
    with pytest.raises(WebhookRejected) as caught:
        verify(request, config, NOW, max_age)
    return caught.value.reason


def test_a_signed_request_is_verified() -> None:
    verified = verify(_request(delivery_id="d-1"), CONFIG, NOW, 300)
    assert verified == Verified(
        payload={"id": "e1", "kind": "group.created"}, delivery_id="d-1", sent_at=NOW, reply=None
    )


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1772413200." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, "1772413200", BODY) == f"sha256={expected}"
    assert signed_headers(SECRET, BODY, at=NOW)["X-Qunyun-Timestamp"] == "1772413200"


def test_refusals() -> None:
    assert _reason(WebhookRequest("POST", {}, {}, BODY)) == RejectReason.UNSIGNED
    assert _reason(_request(), ConnectionConfig(7, 1, "simulator", "sim", {}, {})) == RejectReason.UNSIGNED
    assert _reason(_request(secret="another-secret-value")) == RejectReason.BAD_SIGNATURE
    tampered = _request()
    assert _reason(WebhookRequest("POST", tampered.headers, {}, BODY + b" ")) == RejectReason.BAD_SIGNATURE
    assert _reason(_request(b"not json")) == RejectReason.MALFORMED
    assert _reason(_request(at=NOW - timedelta(seconds=301))) == RejectReason.REPLAYED
    assert _reason(_request(at=NOW + timedelta(seconds=301))) == RejectReason.REPLAYED


def test_the_window_is_inclusive_and_zero_turns_it_off() -> None:
    assert verify(_request(at=NOW - timedelta(seconds=300)), CONFIG, NOW, 300).sent_at == NOW - timedelta(seconds=300)
    assert verify(_request(at=NOW - timedelta(days=400)), CONFIG, NOW, 0).payload["id"] == "e1"


def test_a_timestamp_that_is_not_unix_seconds_is_malformed_once_signed() -> None:
    headers = {"x-qunyun-timestamp": "yesterday", "x-qunyun-signature": signature(SECRET, "yesterday", BODY)}
    assert _reason(WebhookRequest("POST", headers, {}, BODY)) == RejectReason.MALFORMED


def test_each_reason_has_its_status() -> None:
    statuses = {reason: WebhookRejected(reason).status_code for reason in RejectReason.ALL}
    assert statuses == {
        "unsigned": 401,
        "bad_signature": 401,
        "replayed": 409,
        "malformed": 400,
        "disabled": 410,
        "not_found": 404,
    }
    assert str(WebhookRejected(RejectReason.REPLAYED)).startswith("The webhook's timestamp")


def test_other_platforms_register_their_verifier() -> None:
    assert verifier_for("simulator") is verify
    assert verifier_for("nowhere") is None

    def accept_all(request: WebhookRequest, config: ConnectionConfig, now: datetime, max_age: int) -> Verified:
        return Verified(payload={"ok": True})

    register_verifier("custom-test", accept_all)
    config = ConnectionConfig(8, 1, "custom-test", "c", {}, {})
    assert verify_request(WebhookRequest("POST", {}, {}, b""), config, NOW, 300).payload == {"ok": True}
    with pytest.raises(WebhookRejected) as caught:
        verify_request(WebhookRequest("POST", {}, {}, b""), ConnectionConfig(9, 1, "nowhere", "w", {}, {}), NOW, 300)
    assert caught.value.reason == RejectReason.DISABLED

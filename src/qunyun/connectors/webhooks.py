"""Inbound webhooks: what a platform's verifier is given, what it answers, and how it refuses.

Each platform verifies its own requests in a pure function (no database, no clock of its own)::

    verify(request: WebhookRequest, config: ConnectionConfig, now: datetime, max_age: int) -> Verified

found in ``qunyun.connectors.<platform>.verification`` for the built-in platforms, or registered
with :func:`register_verifier`. It checks the signature, secret header or token with
:func:`digest_equal` (constant time), refuses a request whose timestamp is more than
``max_age`` seconds from ``now`` (:func:`check_fresh`; 0 turns the window off) and returns the
payload as a dict. It raises :class:`WebhookRejected` with one of the :class:`RejectReason`\\s.

The inbox (``qunyun.hooks``) stores what a verifier accepted and processes it in a job.
"""

from __future__ import annotations

import hmac
import importlib
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qunyun.connectors.base import BUILTIN_PLATFORMS
from qunyun.connectors.registry import ConnectionConfig
from qunyun.errors import QunyunError
from qunyun.locale import Msg

# A platform's delivery id longer than this is stored shortened (and deduplicated by its hash).
MAX_DELIVERY_ID = 200


class RejectReason:
    """Why a webhook request was refused (counted per connection and reason)."""

    UNSIGNED = "unsigned"  # no signature, or the connection has no secret to check one
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"  # its timestamp is outside the replay window
    MALFORMED = "malformed"  # signed, but not what the platform sends (e.g. not JSON)
    DISABLED = "disabled"  # the connection is disabled, or its platform takes no webhooks
    NOT_FOUND = "not_found"  # no such connection on this platform

    ALL = (UNSIGNED, BAD_SIGNATURE, REPLAYED, MALFORMED, DISABLED, NOT_FOUND)


# The answer to each refusal. A replay is a conflict with what was already received, not a
# missing credential: the platform's own retries of a stale request should stop, not re-sign.
REJECT_STATUS = {
    RejectReason.UNSIGNED: 401,
    RejectReason.BAD_SIGNATURE: 401,
    RejectReason.REPLAYED: 409,
    RejectReason.MALFORMED: 400,
    RejectReason.DISABLED: 410,
    RejectReason.NOT_FOUND: 404,
}


class WebhookRejected(QunyunError):
    """A webhook request refused for ``reason`` (one of :class:`RejectReason`)."""

    def __init__(self, reason: str) -> None:
        if reason not in REJECT_STATUS:
            raise ValueError(f"unknown webhook rejection reason {reason!r}")
        super().__init__(Msg(f"hooks.rejected.{reason}"))
        self.reason = reason
        self.status_code = REJECT_STATUS[reason]
        self.code = reason


@dataclass(frozen=True)
class WebhookRequest:
    """An inbound request as a verifier sees it; ``headers`` have lower-case names."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    # What follows /hooks/{platform}/{connection_id} ("" for most platforms; an application
    # service's /_matrix/app/v1/transactions/{txnId}).
    path: str = ""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Reply:
    """What to answer instead of the inbox's own acknowledgement (a handshake such as WeCom's
    echostr GET, or a platform that expects a particular body)."""

    status: int
    body: bytes
    media_type: str = "text/plain"


@dataclass(frozen=True)
class Verified:
    """An accepted request: its payload, the platform's delivery id and send time when it gives
    them, and for a handshake the reply (a GET with a reply stores nothing)."""

    payload: dict[str, Any] = field(default_factory=dict)
    delivery_id: str | None = None
    sent_at: datetime | None = None
    reply: Reply | None = None
    # The processing job's priority: above 0 for a delivery whose follow-up cannot wait behind a
    # backlog (WeCom's new contact: its welcome code is good for 20 s).
    priority: int = 0


Verifier = Callable[[WebhookRequest, ConnectionConfig, datetime, int], Verified]

_lock = threading.Lock()
_verifiers: dict[str, Verifier] = {}


def register_verifier(platform: str, verifier: Verifier) -> None:
    """Let webhooks of ``platform`` be verified by ``verifier``."""
    with _lock:
        _verifiers[platform] = verifier


def verifier_for(platform: str) -> Verifier | None:
    """The verifier of ``platform``: registered, or ``qunyun.connectors.<platform>.verification.verify``
    for a built-in platform; None when the platform takes no webhooks (yet)."""
    verifier = _verifiers.get(platform)
    if verifier is None and platform in BUILTIN_PLATFORMS:
        try:
            module = importlib.import_module(f"qunyun.connectors.{platform}.verification")
        except ModuleNotFoundError:
            return None
        verifier = getattr(module, "verify", None)
        if verifier is None:
            return None
        register_verifier(platform, verifier)
    return verifier


def verify_request(request: WebhookRequest, config: ConnectionConfig, now: datetime, max_age: int) -> Verified:
    """Verify ``request`` for the connection ``config`` with its platform's verifier;
    :class:`WebhookRejected` (``disabled``) when the platform takes no webhooks."""
    verifier = verifier_for(config.platform)
    if verifier is None:
        raise WebhookRejected(RejectReason.DISABLED)
    return verifier(request, config, now, max_age)


def digest_equal(expected: str | bytes, supplied: str | bytes) -> bool:
    """Whether two signatures, tokens or digests are equal, in time independent of where they differ."""
    a = expected.encode("utf-8") if isinstance(expected, str) else expected
    b = supplied.encode("utf-8") if isinstance(supplied, str) else supplied
    return hmac.compare_digest(a, b)


def check_fresh(sent_at: datetime, now: datetime, max_age: int) -> None:
    """Refuse (``replayed``) a request sent more than ``max_age`` seconds before or after ``now``;
    ``max_age`` 0 accepts any time."""
    if max_age > 0 and abs((now - sent_at).total_seconds()) > max_age:
        raise WebhookRejected(RejectReason.REPLAYED)


def unix_time(value: str | None) -> datetime | None:
    """A header's Unix timestamp (whole seconds) as an aware datetime; None if it is not one."""
    if value is None or not value.strip().isdigit() or len(value.strip()) > 12:
        return None
    return datetime.fromtimestamp(int(value.strip()), UTC)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: no database stores them as JSON


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")  # 1e999: infinite, stored nowhere
    return value


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; ``malformed`` when it is not UTF-8 JSON or not an object."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser goes is no platform's payload either.
        raise WebhookRejected(RejectReason.MALFORMED) from None
    if not isinstance(data, dict):
        raise WebhookRejected(RejectReason.MALFORMED)
    return data

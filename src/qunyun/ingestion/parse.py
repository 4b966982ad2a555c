"""Validate interchange-format v1 events (PRODUCT.md) into compact records.

Two paths that accept exactly the same events: a fast one for the common kinds (``wire.py`` for
JSON lines, ``_fast`` for dicts) and the checked one, which handles everything else and
explains every rejection by field. Import speed is a product figure, so the fast paths exist;
correctness lives in the checked path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from qunyun.db.base import to_micros
from qunyun.ingestion.event import ParsedEvent
from qunyun.ingestion.wire import DECODER, from_struct
from qunyun.locale import Msg
from qunyun.models.event import KIND_BY_NAME, MAX_LINK, MAX_MESSAGE_REF, MSG_TYPE_BY_NAME, EventKind

MAX_ID = 128
_AMOUNT = re.compile(r"^(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?$")
SCENES = frozenset({"qr", "invite", "link"})
REASONS = frozenset({"left", "removed"})


class EventError(ValueError):
    """A bad event: ``field`` names the offending field (or None for the whole object), ``msg``
    says what is wrong with it; ``message`` is its English text."""

    def __init__(self, field: str | None, msg: Msg) -> None:
        super().__init__(str(msg))
        self.field = field
        self.msg = msg
        self.message = str(msg)

    def reason(self) -> Msg:
        """What is wrong, prefixed with the field: ``field 'ts': … is not ISO 8601``."""
        return Msg("err.event.field", field=self.field, reason=self.msg) if self.field else self.msg

    def describe(self) -> str:
        return str(self.reason())


def _ident(obj: Mapping[str, Any], field: str, required: bool = True, limit: int = MAX_ID) -> str | None:
    value = obj.get(field)
    if value is None:
        if required:
            raise EventError(field, Msg("err.event.required"))
        return None
    if not isinstance(value, str) or not value.strip():
        raise EventError(field, Msg("err.event.non_empty_string"))
    if len(value) > limit:
        raise EventError(field, Msg("err.event.too_long", limit=limit))
    if "\x00" in value:
        raise EventError(field, Msg("err.event.nul"))
    return value


def _text(obj: Mapping[str, Any], field: str, limit: int | None = 200) -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EventError(field, Msg("err.event.string"))
    if limit is not None and len(value) > limit:
        raise EventError(field, Msg("err.event.too_long", limit=limit))
    if "\x00" in value:
        raise EventError(field, Msg("err.event.nul"))
    return value


# Instants outside these bounds are data errors (and would overflow local-date arithmetic).
MIN_TS = to_micros(datetime(1971, 1, 1, tzinfo=UTC))
MAX_TS = to_micros(datetime(9998, 1, 1, tzinfo=UTC))
MAX_CHANNEL = 64
MAX_CAPACITY = 2**31 - 1
MAX_MEMBER_NAME = 200  # members.display_name


def parse_ts(value: Any) -> int:
    if not isinstance(value, str):
        raise EventError("ts", Msg("err.event.ts_type"))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventError("ts", Msg("err.event.ts_format", value=repr(value))) from None
    if parsed.tzinfo is None:
        raise EventError("ts", Msg("err.event.ts_offset", value=repr(value)))
    micros = to_micros(parsed)
    if not MIN_TS <= micros < MAX_TS:
        raise EventError("ts", Msg("err.event.ts_range", value=repr(value), first=1971, last=9997))
    return micros


def parse_amount(value: Any, field: str = "amount") -> int:
    """A decimal string in yuan → integer fen."""
    if not isinstance(value, str):
        raise EventError(field, Msg("err.event.amount_type"))
    match = _AMOUNT.fullmatch(value)
    if match is None:
        raise EventError(field, Msg("err.event.amount_format", value=repr(value)))
    cents = match.group(2) or ""
    return int(match.group(1)) * 100 + int(cents.ljust(2, "0") or 0)


class _NotFast(Exception):
    pass


def _fast_ident(value: Any, limit: int = MAX_ID) -> str:
    if type(value) is not str or not 0 < len(value) <= limit or value.isspace() or "\x00" in value:
        raise _NotFast
    return value


def _fast_name(obj: dict[str, Any]) -> str | None:
    name = obj.get("member_name")
    if name is not None and (type(name) is not str or len(name) > MAX_MEMBER_NAME or "\x00" in name):
        raise _NotFast
    return name


def _fast(obj: dict[str, Any]) -> ParsedEvent:
    """The common, well-formed membership and message events, checked with fewer steps.

    Anything unusual raises and goes through :func:`_checked`, which either accepts it or
    raises the precise error, so both paths accept exactly the same events.
    """
    kind = obj["kind"]
    parsed = datetime.fromisoformat(obj["ts"])
    if parsed.tzinfo is None or len(obj) > 9:
        raise _NotFast
    ts = to_micros(parsed)
    if not MIN_TS <= ts < MAX_TS:
        raise _NotFast
    external_id = _fast_ident(obj["id"])
    group = _fast_ident(obj["group"])
    member = _fast_ident(obj["member"])
    name = _fast_name(obj)
    if kind == "message.posted":
        msg_type = MSG_TYPE_BY_NAME[obj["msg_type"]]
        message = obj.get("message")
        if message is not None:
            _fast_ident(message, MAX_MESSAGE_REF)
        text = obj.get("text")
        if text is None:
            return ParsedEvent(external_id, MESSAGE, ts, group, member, msg_type, message=message, member_name=name)
        if type(text) is not str or "\x00" in text:
            raise _NotFast
        return ParsedEvent(external_id, MESSAGE, ts, group, member, msg_type, len(text), text, message, name)
    if kind == "member.joined":
        scene, channel, inviter, link = obj.get("scene"), obj.get("channel"), obj.get("inviter"), obj.get("link")
        if (
            (scene is not None and scene not in SCENES)
            or (channel is not None and _fast_ident(channel, MAX_CHANNEL) is None)
            or (inviter is not None and _fast_ident(inviter) is None)
            or (link is not None and _fast_ident(link, MAX_LINK) is None)
        ):
            raise _NotFast
        extra = {"channel": channel, "inviter": inviter, "scene": scene}
        if link is not None:
            extra["link"] = link
        return ParsedEvent(external_id, JOINED, ts, group, member, member_name=name, extra=extra)
    if kind == "member.left":
        reason = obj.get("reason")
        if reason is not None and reason not in REASONS:
            raise _NotFast
        return ParsedEvent(external_id, LEFT, ts, group, member, member_name=name, extra={"reason": reason})
    raise _NotFast


MESSAGE, JOINED, LEFT = EventKind.MESSAGE_POSTED, EventKind.MEMBER_JOINED, EventKind.MEMBER_LEFT


def parse_event(obj: Any) -> ParsedEvent:
    """Validate one decoded JSON object; raises EventError naming the field."""
    if type(obj) is dict:
        try:
            return _fast(obj)
        except Exception:  # any surprise: let the checked path judge it and explain
            pass
    return _checked(obj)


def _checked(obj: Any) -> ParsedEvent:
    if not isinstance(obj, dict):
        raise EventError(None, Msg("err.event.not_object"))
    external_id = _ident(obj, "id")
    kind_name = obj.get("kind")
    kind = KIND_BY_NAME.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        raise EventError(
            "kind", Msg("err.event.unknown_kind", kind=repr(kind_name), expected=", ".join(sorted(KIND_BY_NAME)))
        )
    ts = parse_ts(obj.get("ts"))
    assert external_id is not None
    return _PARSERS[kind](obj, external_id, kind, ts)


def _member_name(obj: dict[str, Any]) -> str | None:
    return _text(obj, "member_name", limit=MAX_MEMBER_NAME)


def _message_posted(obj: dict[str, Any], external_id: str, kind: EventKind, ts: int) -> ParsedEvent:
    msg_type_name = obj.get("msg_type")
    msg_type = MSG_TYPE_BY_NAME.get(msg_type_name) if isinstance(msg_type_name, str) else None
    if msg_type is None:
        raise EventError("msg_type", Msg("err.event.one_of", choices=", ".join(MSG_TYPE_BY_NAME)))
    text = _text(obj, "text", limit=None)
    return ParsedEvent(
        external_id,
        kind,
        ts,
        _ident(obj, "group"),
        _ident(obj, "member"),
        msg_type=msg_type,
        length=len(text) if text is not None else None,
        text=text,
        message=_ident(obj, "message", required=False, limit=MAX_MESSAGE_REF),
        member_name=_member_name(obj),
    )


def _message_deleted(obj: dict[str, Any], external_id: str, kind: EventKind, ts: int) -> ParsedEvent:
    return ParsedEvent(
        external_id,
        kind,
        ts,
        _ident(obj, "group"),
        None,
        message=_ident(obj, "message", limit=MAX_MESSAGE_REF),
    )


def _choice(obj: Mapping[str, Any], field: str, choices: frozenset[str]) -> str | None:
    """The optional ``field``, which must be one of ``choices`` when given."""
    value = obj.get(field)
    if value is not None and (not isinstance(value, str) or value not in choices):
        raise EventError(field, Msg("err.event.one_of", choices=", ".join(sorted(choices))))
    return value


def _member_joined(obj: dict[str, Any], external_id: str, kind: EventKind, ts: int) -> ParsedEvent:
    scene = _choice(obj, "scene", SCENES)
    extra = {
        "channel": _ident(obj, "channel", required=False, limit=MAX_CHANNEL),
        "inviter": _ident(obj, "inviter", required=False),
        "scene": scene,
    }
    link = _ident(obj, "link", required=False, limit=MAX_LINK)
    if link is not None:
        extra["link"] = link
    return ParsedEvent(
        external_id, kind, ts, _ident(obj, "group"), _ident(obj, "member"), member_name=_member_name(obj), extra=extra
    )


def _member_left(obj: dict[str, Any], external_id: str, kind: EventKind, ts: int) -> ParsedEvent:
    reason = _choice(obj, "reason", REASONS)
    return ParsedEvent(
        external_id,
        kind,
        ts,
        _ident(obj, "group"),
        _ident(obj, "member"),
        member_name=_member_name(obj),
        extra={"reason": reason},
    )


def _order_paid(obj: dict[str, Any], external_id: str, kind: EventKind, ts: int) -> ParsedEvent:
    return ParsedEvent(
        external_id,
        kind,
        ts,
        _ident(obj, "group", required=False),
        _ident(obj, "member"),
        extra={
            "order": _ident(obj, "order"),
            "amount_fen": parse_amount(obj.get("amount")),
            "product": _text(obj, "product"),
        },
    )


def _order_refunded(obj: dict[str, Any], external_id: str, kind: EventKind, ts: int) -> ParsedEvent:
    return ParsedEvent(
        external_id,
        kind,
        ts,
        None,
        None,
        extra={"order": _ident(obj, "order"), "amount_fen": parse_amount(obj.get("amount"))},
    )


def _group_created(obj: dict[str, Any], external_id: str, kind: EventKind, ts: int) -> ParsedEvent:
    capacity = obj.get("capacity")
    if capacity is not None and (
        not isinstance(capacity, int) or isinstance(capacity, bool) or not 1 <= capacity <= MAX_CAPACITY
    ):
        raise EventError("capacity", Msg("err.event.capacity", max=MAX_CAPACITY))
    name = _text(obj, "name")
    if not name:
        raise EventError("name", Msg("err.event.required"))
    return ParsedEvent(
        external_id,
        kind,
        ts,
        _ident(obj, "group"),
        None,
        extra={
            "name": name,
            "capacity": capacity,
            "region": _text(obj, "region", 64),
            "tier": _text(obj, "tier", 32),
            "owner": _ident(obj, "owner", required=False),
        },
    )


# One parser per kind; a kind without one is a programming error found at import, never an
# event silently taken for another kind.
_PARSERS: dict[EventKind, Callable[[dict[str, Any], str, EventKind, int], ParsedEvent]] = {
    EventKind.GROUP_CREATED: _group_created,
    EventKind.MEMBER_JOINED: _member_joined,
    EventKind.MEMBER_LEFT: _member_left,
    EventKind.MESSAGE_POSTED: _message_posted,
    EventKind.MESSAGE_DELETED: _message_deleted,
    EventKind.ORDER_PAID: _order_paid,
    EventKind.ORDER_REFUNDED: _order_refunded,
}
if set(_PARSERS) != set(EventKind) or set(KIND_BY_NAME.values()) != set(EventKind):
    raise RuntimeError(f"event kinds without a parser or a name: {set(EventKind) ^ set(_PARSERS)}")


def parse_line(line: bytes) -> ParsedEvent:
    """Decode and validate one JSON line; raises EventError naming the field."""
    try:
        fields = from_struct(DECODER.decode(line), MIN_TS, MAX_TS)
    except msgspec.MsgspecError:
        fields = None
    if fields is not None:
        return fields
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise EventError(None, Msg("err.event.bad_json", detail=exc.args[0].split(":")[0])) from None
    return _checked(obj)

"""Matrix room events → interchange-format v1 events.

The input is ``{"events": [...]}``: client-format room events that each carry ``room_id`` (an
application service transaction is exactly that; the bot's sync gives each joined room's timeline
and :mod:`~qunyun.connectors.matrix.sync` adds the room id). Membership events go through
matrix-nio's event classes (its schema checks and its reading of the previous membership);
messages, names and redactions, the bulk, are checked here field by field: nio's JSON-schema
validation took nine tenths of the time of a transaction (bench_matrix).

- ``m.room.member``: ``join`` → ``member.joined`` (a join after ``join`` is a profile change:
  nothing); ``leave`` of a joined member → ``member.left`` with ``reason`` ``left`` when the
  member sent it, ``removed`` when someone else did (a kick); ``ban`` of a joined member →
  ``member.left`` ``removed``. A declined or withdrawn invitation is no membership: nothing.
- ``m.room.message`` → ``message.posted`` (``m.text``/``m.notice``/``m.emote`` with their text;
  ``m.image``, ``m.file``, ``m.video``, ``m.audio`` as image/file/video/voice without text);
  ``m.room.encrypted`` → ``message.posted`` ``other`` (the bot holds no keys).
- ``m.room.name`` → ``group.created`` with the name (ingestion keeps the latest name).
- ``m.room.redaction`` → ``message.deleted``; the redacted event's id is in ``redacts`` at the
  top level before room version 11 and in ``content.redacts`` from version 11: both are read.

Events sent by the connection's own account, and its own membership, are left out (the bot is
no member of the community). A message redacted before it was seen is still a
``message.posted`` (``other``, without text): it was posted.
Ids longer than qunyun stores (128 characters) are left out and counted in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from nio.events import (
    Event,
    RoomMemberEvent,
)

log = logging.getLogger(__name__)

MAX_ID = 128
MAX_NAME = 200
MSG_TYPES = {
    "m.text": "text",
    "m.notice": "text",
    "m.emote": "text",
    "m.image": "image",
    "m.file": "file",
    "m.video": "video",
    "m.audio": "voice",
}
TEXT_TYPES = frozenset({"m.text", "m.notice", "m.emote"})
MAX_TEXT = 4000


def _ts(raw: Mapping[str, Any]) -> str | None:
    ms = raw.get("origin_server_ts")
    if isinstance(ms, bool) or not isinstance(ms, int):
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _short(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID else None


def _name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_NAME]


def redacted_id(raw: Mapping[str, Any]) -> str | None:
    """The id of the event a redaction removes: ``content.redacts`` (room version 11 and later)
    or the top-level ``redacts`` (earlier versions)."""
    content = raw.get("content")
    if isinstance(content, Mapping) and isinstance(content.get("redacts"), str):
        return str(content["redacts"])
    top = raw.get("redacts")
    return top if isinstance(top, str) else None


def normalize_events(raw_events: Iterable[Any], *, own_user: str | None = None) -> list[dict[str, Any]]:
    """Interchange v1 events of ``raw_events`` (see the module's doc)."""
    out: list[dict[str, Any]] = []
    skipped = 0
    for raw in raw_events:
        if not isinstance(raw, Mapping):
            skipped += 1
            continue
        event = _one(raw, own_user)
        if event is None:
            continue
        if event == {}:
            skipped += 1
            continue
        out.append(event)
    if skipped:
        log.info("matrix: %d events left out (malformed, or ids too long)", skipped)
    return out


def _one(raw: Mapping[str, Any], own_user: str | None) -> dict[str, Any] | None:
    """One event; None: nothing to say; {}: malformed (counted)."""
    kind = raw.get("type")
    if kind not in ("m.room.member", "m.room.message", "m.room.name", "m.room.redaction", "m.room.encrypted"):
        return None
    event_id, room, sender, ts = _short(raw.get("event_id")), _short(raw.get("room_id")), raw.get("sender"), _ts(raw)
    if event_id is None or room is None or ts is None or not isinstance(sender, str):
        return {}
    base: dict[str, Any] = {"id": event_id, "ts": ts, "group": room}
    if kind == "m.room.redaction":
        target = _short(redacted_id(raw))
        if target is None:
            return {}
        return {**base, "kind": "message.deleted", "message": target}
    if sender == own_user and kind != "m.room.member" and kind != "m.room.name":
        return None
    if kind == "m.room.member":
        return _membership(raw, Event.parse_event(dict(raw)), base, sender, own_user)
    content = raw.get("content")
    if not isinstance(content, Mapping):
        return {}
    if kind == "m.room.name":
        name = _name(content.get("name"))
        return {**base, "kind": "group.created", "name": name} if name and raw.get("state_key") == "" else None
    member = _short(sender)
    if member is None:
        return {}
    if kind == "m.room.encrypted":
        return {**base, "kind": "message.posted", "member": member, "msg_type": "other", "message": event_id}
    unsigned = raw.get("unsigned")
    if isinstance(unsigned, Mapping) and unsigned.get("redacted_because") is not None:
        # Redacted before we saw it: it was posted (and counts), its content is gone.
        return {**base, "kind": "message.posted", "member": member, "msg_type": "other", "message": event_id}
    msgtype = content.get("msgtype")
    if not isinstance(msgtype, str) or not isinstance(content.get("body"), str):
        return {}  # what nio's schema calls a bad event
    if "m.new_content" in content or _is_replace(content):
        return None  # an edit: the original message was counted; edits are not new messages
    event = {**base, "kind": "message.posted", "member": member, "message": event_id}
    event["msg_type"] = MSG_TYPES.get(str(msgtype), "other")
    body = content.get("body")
    if msgtype in TEXT_TYPES and isinstance(body, str) and body:
        event["text"] = body[:MAX_TEXT]
    return event


def _is_replace(content: Mapping[str, Any]) -> bool:
    relates = content.get("m.relates_to")
    return isinstance(relates, Mapping) and relates.get("rel_type") == "m.replace"


def _membership(
    raw: Mapping[str, Any], parsed: Event, base: dict[str, Any], sender: str, own_user: str | None
) -> dict[str, Any] | None:
    if not isinstance(parsed, RoomMemberEvent):
        return {}
    member = _short(parsed.state_key)
    if member is None:
        return {}
    if own_user is not None and member == own_user:
        return None  # the bot itself is no member of the community
    membership = parsed.membership
    previous = parsed.prev_membership
    if previous is None:
        unsigned = raw.get("unsigned")
        prev = unsigned.get("prev_content") if isinstance(unsigned, Mapping) else None
        previous = prev.get("membership") if isinstance(prev, Mapping) else None
    name = _name(parsed.content.get("displayname")) if isinstance(parsed.content, Mapping) else None
    if membership == "join":
        if previous == "join":
            return None  # a display name or avatar change
        event = {
            **base,
            "kind": "member.joined",
            "member": member,
            "scene": "invite" if previous == "invite" else "link",
        }
        if name:
            event["member_name"] = name
        return event
    if membership in ("leave", "ban"):
        if previous not in ("join", None):
            return None  # a declined or withdrawn invitation, an unban, a leave after a ban
        removed = membership == "ban" or sender != member
        return {**base, "kind": "member.left", "member": member, "reason": "removed" if removed else "left"}
    return None

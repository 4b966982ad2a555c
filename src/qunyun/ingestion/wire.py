"""The fast path for the common events: msgspec decodes and validates them in C.

Membership and message events are ~95 % of any real stream. Anything msgspec rejects, and every
other kind, goes through the checked path in ``parse.py``, which accepts or explains: the fast
path only decides sooner, it never decides differently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from qunyun.db.base import to_micros
from qunyun.ingestion.event import ParsedEvent
from qunyun.models.event import MAX_LINK, MAX_MESSAGE_REF, MSG_TYPE_BY_NAME, EventKind

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
MessageRef = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MESSAGE_REF)]
MemberName = Annotated[str, msgspec.Meta(max_length=200)]  # members.display_name
ChannelCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
LinkRef = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LINK)]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
MsgTypeName = Literal["text", "image", "link", "miniprogram", "file", "video", "card", "voice", "other"]


class Message(msgspec.Struct, tag_field="kind", tag="message.posted"):
    id: Id
    ts: Instant
    group: Id
    member: Id
    msg_type: MsgTypeName
    text: str | None = None
    message: MessageRef | None = None
    member_name: MemberName | None = None


class Joined(msgspec.Struct, tag_field="kind", tag="member.joined"):
    id: Id
    ts: Instant
    group: Id
    member: Id
    channel: ChannelCode | None = None
    inviter: Id | None = None
    scene: Literal["qr", "invite", "link"] | None = None
    member_name: MemberName | None = None
    link: LinkRef | None = None


class Left(msgspec.Struct, tag_field="kind", tag="member.left"):
    id: Id
    ts: Instant
    group: Id
    member: Id
    reason: Literal["left", "removed"] | None = None
    member_name: MemberName | None = None


Common = Message | Joined | Left
DECODER = msgspec.json.Decoder(Common)
MESSAGE, JOINED, LEFT = EventKind.MESSAGE_POSTED, EventKind.MEMBER_JOINED, EventKind.MEMBER_LEFT


def _odd(value: str | None) -> bool:
    """What the length limits do not catch: blank ids and NUL characters."""
    return value is not None and (value.isspace() or "\x00" in value)


def from_struct(s: Common, min_ts: int, max_ts: int) -> ParsedEvent | None:
    """The ParsedEvent, or None when the checked path must judge the event."""
    ts = to_micros(s.ts)
    if not min_ts <= ts < max_ts or _odd(s.id) or _odd(s.group) or _odd(s.member):
        return None
    name = s.member_name
    if name is not None and "\x00" in name:
        return None
    if type(s) is Message:
        text, message = s.text, s.message
        if message is not None and _odd(message):
            return None
        if text is None:
            return ParsedEvent(
                s.id, MESSAGE, ts, s.group, s.member, MSG_TYPE_BY_NAME[s.msg_type], message=message, member_name=name
            )
        if "\x00" in text:
            return None
        return ParsedEvent(
            s.id, MESSAGE, ts, s.group, s.member, MSG_TYPE_BY_NAME[s.msg_type], len(text), text, message, name
        )
    if type(s) is Joined:
        if _odd(s.channel) or _odd(s.inviter) or _odd(s.link):
            return None
        extra = {"channel": s.channel, "inviter": s.inviter, "scene": s.scene}
        if s.link is not None:
            extra["link"] = s.link
        return ParsedEvent(s.id, JOINED, ts, s.group, s.member, member_name=name, extra=extra)
    assert type(s) is Left
    return ParsedEvent(s.id, LEFT, ts, s.group, s.member, member_name=name, extra={"reason": s.reason})

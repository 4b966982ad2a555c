from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class EventKind(enum.IntEnum):
    GROUP_CREATED = 1
    MEMBER_JOINED = 2
    MEMBER_LEFT = 3
    MESSAGE_POSTED = 4
    ORDER_PAID = 5
    ORDER_REFUNDED = 6
    MESSAGE_DELETED = 7


KIND_NAMES = {
    EventKind.GROUP_CREATED: "group.created",
    EventKind.MEMBER_JOINED: "member.joined",
    EventKind.MEMBER_LEFT: "member.left",
    EventKind.MESSAGE_POSTED: "message.posted",
    EventKind.ORDER_PAID: "order.paid",
    EventKind.ORDER_REFUNDED: "order.refunded",
    EventKind.MESSAGE_DELETED: "message.deleted",
}
KIND_BY_NAME = {name: kind for kind, name in KIND_NAMES.items()}


def kind_in(*kinds: EventKind) -> str:
    """The SQL condition that ``kind`` is one of ``kinds``: ``kind IN (…)``, or ``kind = …``.

    SQL names event kinds through this, never by number. A partial index's condition and the
    queries meant to use it must be built from the same call: PostgreSQL and SQLite match
    them by their text.
    """
    if len(kinds) == 1:
        return f"kind = {int(kinds[0])}"
    return f"kind IN ({', '.join(str(int(k)) for k in kinds)})"


# Membership history: what ``ix_events_membership`` covers and the span replay reads.
MEMBERSHIP_KINDS = kind_in(EventKind.MEMBER_JOINED, EventKind.MEMBER_LEFT)
JOIN_KIND = kind_in(EventKind.MEMBER_JOINED)
# A platform's message id (interchange field ``message``); limits what ``events.message_ref`` holds.
MAX_MESSAGE_REF = 200
# The invite link a member.joined names (interchange field ``link``): a URL or the platform's id.
MAX_LINK = 200


class MsgType(enum.IntEnum):
    TEXT = 1
    IMAGE = 2
    LINK = 3
    MINIPROGRAM = 4
    FILE = 5
    VIDEO = 6
    CARD = 7
    VOICE = 8
    OTHER = 9


MSG_TYPE_BY_NAME = {t.name.lower(): t for t in MsgType}


class Event(Base):
    """The append-only log of every platform event, stored once per (organisation, event id).

    Membership history (joins and leaves with scene, channel, inviter and reason), message
    events (type, length and the platform's message id) and message deletions are rows of this
    table; derived state is rebuilt from it.

    Deliberately few indexes: every index on this table is paid on every event (a (group_id, ts)
    index alone costs ~60 % of the insert, see docs/performance.md). Per-group views read the
    rollups and spans instead.
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        # Membership history of one member, read on every join/leave to derive spans.
        Index(
            "ix_events_membership",
            "member_id",
            "ts",
            sqlite_where=text(MEMBERSHIP_KINDS),
            postgresql_where=text(MEMBERSHIP_KINDS),
        ),
        # Members acquired per channel (CAC); joins only, so it costs nothing on messages.
        Index(
            "ix_events_join_channel",
            "org_id",
            "channel_id",
            sqlite_where=text(JOIN_KIND),
            postgresql_where=text(JOIN_KIND),
        ),
        # A message by its platform id in a group (moderation, message.deleted); only rows that
        # carry one are indexed, so events without a message id pay nothing for it.
        Index(
            "ix_events_message_ref",
            "group_id",
            "message_ref",
            sqlite_where=text("message_ref IS NOT NULL"),
            postgresql_where=text("message_ref IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[int] = mapped_column(SmallInteger)
    ts: Mapped[datetime] = mapped_column(Timestamp)
    day: Mapped[int] = mapped_column(Integer)  # YYYYMMDD in the organisation's time zone
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    member_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    msg_type: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    length: Mapped[int | None] = mapped_column(Integer, nullable=True)
    scene: Mapped[str | None] = mapped_column(String(16), nullable=True)
    channel_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    inviter_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The platform's id of the message a message.posted or message.deleted names.
    message_ref: Mapped[str | None] = mapped_column(String(MAX_MESSAGE_REF), nullable=True)
    source: Mapped[str] = mapped_column(String(32), default="import")


class MessageText(Base):
    """Message text, kept apart so the retention job can purge it without touching the log."""

    __tablename__ = "message_texts"

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("events.id", ondelete="CASCADE"),
        primary_key=True,
    )
    ts: Mapped[datetime] = mapped_column(Timestamp, index=True)
    text: Mapped[str] = mapped_column(Text)

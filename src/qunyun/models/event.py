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


KIND_NAMES = {
    EventKind.GROUP_CREATED: "group.created",
    EventKind.MEMBER_JOINED: "member.joined",
    EventKind.MEMBER_LEFT: "member.left",
    EventKind.MESSAGE_POSTED: "message.posted",
    EventKind.ORDER_PAID: "order.paid",
    EventKind.ORDER_REFUNDED: "order.refunded",
}
KIND_BY_NAME = {name: kind for kind, name in KIND_NAMES.items()}


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

    Membership history (joins and leaves with scene, channel, inviter and reason) and message
    events (type and length) are rows of this table; derived state is rebuilt from it.

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
            sqlite_where=text("kind IN (2, 3)"),
            postgresql_where=text("kind IN (2, 3)"),
        ),
        # Members acquired per channel (CAC); joins only, so it costs nothing on messages.
        Index(
            "ix_events_join_channel",
            "org_id",
            "channel_id",
            sqlite_where=text("kind = 2"),
            postgresql_where=text("kind = 2"),
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

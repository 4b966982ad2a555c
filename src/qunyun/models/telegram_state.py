"""Telegram connector state (tables owned by qunyun.connectors.telegram).

``telegram_poll_state``: per polling connection, the next ``getUpdates`` offset (one past the
last update id ingested), advanced in the transaction that ingests those updates.

``join_requests``: requests to join a group through a link that creates join requests (stored
when the update is ingested), and their decision: approved or declined, by a rule or a staff
member, when (qunyun.livecodes.join_requests).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class TelegramPollState(Base):
    __tablename__ = "telegram_poll_state"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class JoinRequest(Base):
    """A request to join a group (Telegram ``chat_join_request``) and what became of it."""

    __tablename__ = "join_requests"
    __table_args__ = (
        UniqueConstraint("connection_id", "chat", "user_id", "requested_at"),
        Index("ix_join_requests_org_status", "org_id", "status"),
        Index("ix_join_requests_member", "member_id"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    chat: Mapped[str] = mapped_column(String(64))  # the chat id the request came from
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=True)
    user_id: Mapped[str] = mapped_column(String(64))  # the requester's platform id
    member_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    username: Mapped[str] = mapped_column(String(64), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    invite_link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    live_code_id: Mapped[int | None] = mapped_column(ForeignKey("live_codes.id", ondelete="SET NULL"), nullable=True)
    channel_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requested_at: Mapped[datetime] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | declined
    # rule (the code's policy or the blacklist) | staff; the rule's name (approve | blacklist).
    decided_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    rule: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    action_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # approve/decline action
    task_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the staff task, when handed over

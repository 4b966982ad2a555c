from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp

# Staff tasks are a domain of their own now (models/task.py); kept importable from here.
from qunyun.models.task import StaffTask as StaffTask


class OutboundState(enum.StrEnum):
    """planned → queued → sending → sent → confirmed; or awaiting_confirmation (a human must press
    send on the platform), delegated (became a staff task), uncertain (an attempt may have reached
    the platform and nobody can tell: a person checks), failed, expired.

    ``sending`` is committed before the platform is called, so an attempt that finds it knows an
    earlier one may have sent (docs/connectors.md)."""

    PLANNED = "planned"
    QUEUED = "queued"
    SENDING = "sending"
    UNCERTAIN = "uncertain"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    SENT = "sent"
    CONFIRMED = "confirmed"
    DELEGATED = "delegated"
    FAILED = "failed"
    EXPIRED = "expired"


class OutboundAction(Base):
    """An action on a platform (send, delete, mute, kick, create group, invite link…).

    The idempotency key is unique within an organisation: asking twice for the same action yields the same row, and
    the connector receives the key so that a retry after a crash is not a second send.
    """

    __tablename__ = "outbound_actions"
    __table_args__ = (
        Index("ix_outbound_actions_key", "org_id", "idempotency_key", unique=True),
        Index("ix_outbound_actions_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    # The connection performing it: its connector is the one called.
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    action: Mapped[str] = mapped_column(String(32))
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    member_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(24), default=OutboundState.PLANNED)
    # Platform calls made for it (sends and reconciliations), counted when ``sending`` is committed.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    external_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # What the platform returned that later steps need (an invite URL, a message id…).
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class OutboundActionTransition(Base):
    """Every state change of an outbound action (append-only history of sends)."""

    __tablename__ = "outbound_action_transitions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("outbound_actions.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(24), nullable=True)
    to_state: Mapped[str] = mapped_column(String(24))
    # The attempt (OutboundAction.attempts) the change belongs to, where there is one.
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(Timestamp)
    # The detail as a catalogue message (rendered in the reader's language); ``detail`` keeps its
    # English text and is all that rows from before messages have.
    detail: Mapped[str] = mapped_column(Text, default="")
    detail_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    detail_values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

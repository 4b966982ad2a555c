from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class GroupStatus(enum.StrEnum):
    ACTIVE = "active"
    FULL = "full"
    ARCHIVED = "archived"
    DISMISSED = "dismissed"


class Group(Base):
    """A platform group (customer group, Telegram supergroup, Matrix room)."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("org_id", "platform", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("communities.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # The platform account the group lives on (see models/connection.py).
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    playbook_id: Mapped[int | None] = mapped_column(ForeignKey("playbooks.id", ondelete="SET NULL"), nullable=True)
    tier: Mapped[str] = mapped_column(String(32), default="normal")
    region: Mapped[str] = mapped_column(String(64), default="")
    capacity: Mapped[int] = mapped_column(Integer, default=500)
    status: Mapped[str] = mapped_column(String(16), default=GroupStatus.ACTIVE)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    # Cached from membership spans at ingestion; the spans are the record.
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class ConnectionStatus(enum.StrEnum):
    """active: in use; error: the last test or call failed (``last_error`` says why), still in use;
    disabled: turned off by a lead, nothing is sent through it and its webhooks are refused."""

    ACTIVE = "active"
    ERROR = "error"
    DISABLED = "disabled"


class Connection(Base):
    """An organisation's account on a platform: a WeCom corp app, a Telegram bot, a Matrix account,
    or a simulated platform. Groups, outbound actions and later live codes, policies and plans
    belong to one; connectors are built per connection.

    ``settings`` holds what may be shown (ids, URLs, modes); ``secrets`` holds the encrypted JSON
    of what may not (tokens, keys), see ``qunyun.connections.secrets``.
    """

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secrets: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=ConnectionStatus.ACTIVE)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    tested_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)

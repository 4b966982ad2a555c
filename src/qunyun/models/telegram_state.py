"""Telegram connector state (tables owned by qunyun.connectors.telegram).

``telegram_poll_state``: per polling connection, the next ``getUpdates`` offset (one past the
last update id ingested), advanced in the transaction that ingests those updates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class TelegramPollState(Base):
    __tablename__ = "telegram_poll_state"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)

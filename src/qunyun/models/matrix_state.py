"""matrix connector state (tables owned by qunyun.connectors.matrix)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class MatrixSyncState(Base):
    """Where a bot-mode Matrix connection's /sync got to: the ``next_batch`` token to resume from.

    One row per connection, written in the transaction that ingests what that sync returned, so
    a crash between the two replays the same batch (ingestion drops the events it already has)."""

    __tablename__ = "matrix_sync_state"

    connection_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    next_batch: Mapped[str] = mapped_column(Text)
    synced_at: Mapped[datetime] = mapped_column(Timestamp)
    # Consecutive failed syncs (reset on success); the reason of the last one, without content.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class LoginFailure(Base):
    """One failed (or still running) login attempt, counted by the login throttle.

    Kept in the database so that every server process sees the same counts. Rows older than the
    throttle's window are pruned when new ones are written; a correct password deletes the rows
    of its username and source.
    """

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_username_at", "username", "failed_at"),
        Index("ix_login_failures_source_at", "source", "failed_at"),
        Index("ix_login_failures_failed_at", "failed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The username as typed, trimmed and lower-cased (also for names that do not exist).
    username: Mapped[str] = mapped_column(String(100))
    # The client address, an IPv6 /64 for v6 clients (qunyun.auth.address.throttle_source).
    source: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(Timestamp)

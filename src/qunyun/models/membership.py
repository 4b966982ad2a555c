from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class MembershipSpan(Base):
    """One continuous stay of a member in a group, derived from the join/leave events.

    Rebuilt for a member whenever one of their membership events arrives (in any order), so
    it always equals a replay of the log. ``left_at`` is null while the member is in the group.
    """

    __tablename__ = "membership_spans"
    __table_args__ = (
        Index("ix_membership_spans_member", "member_id", "group_id"),
        Index("ix_membership_spans_group", "group_id", "left_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(Integer)
    joined_at: Mapped[datetime] = mapped_column(Timestamp)
    left_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    join_event_id: Mapped[int] = mapped_column(BigInteger)
    leave_event_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class Channel(Base):
    """An acquisition channel (短信, 包裹卡, 线下活动…) and its cost model. Money is in fen (0.01 元)."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("org_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), default="other")
    # Cost per touch (e.g. one SMS) in milli-fen would be overkill: SMS at 0.05 元 = 5 fen.
    cost_per_touch_fen: Mapped[int] = mapped_column(Integer, default=0)
    reward_per_member_fen: Mapped[int] = mapped_column(Integer, default=0)
    fixed_cost_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    touches: Mapped[int] = mapped_column(BigInteger, default=0)
    # Expected share of touched people who join, in basis points (8 % = 800).
    expected_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class ChannelSpend(Base):
    """What was spent on a channel on one day: touches (SMS sent, package cards shipped, people
    met at an event) and fixed costs (a race's booth, a KOL post, a month of content), in fen.

    The channel report prices a range of days from these rows (touches dated in the range ×
    cost per touch + fixed costs dated in the range). ``channels.touches`` and
    ``channels.fixed_cost_fen`` are their running totals: every change of those goes through a
    row here (a correction is a row with negative amounts).
    """

    __tablename__ = "channel_spend"
    __table_args__ = (Index("ix_channel_spend_channel_day", "channel_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    day: Mapped[int] = mapped_column(Integer)  # YYYYMMDD in the organisation's time zone
    touches: Mapped[int] = mapped_column(BigInteger, default=0)
    fixed_cost_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    note: Mapped[str] = mapped_column(String(200), default="")
    # staff (recorded by a person), created / changed (the channel's own totals were set),
    # simulator (the simulated world's campaigns)
    source: Mapped[str] = mapped_column(String(16), default="staff")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

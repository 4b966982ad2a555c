"""Rollups maintained at ingestion so that stats never rescan the event log."""

from __future__ import annotations

from sqlalchemy import Index, Integer, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base


class MemberDay(Base):
    """What one member did in one group on one day (joined, left, messages posted).

    The distinct-member metrics (joins, left, actives — per group, per week, across groups) are
    counts over these rows.
    """

    __tablename__ = "member_days"

    # Key order (org, day, group, member): rows arrive roughly in day order, so inserts land
    # at the end of the B-tree; and the one key serves per-day, per-week and per-group-day reads.
    org_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    joined: Mapped[int] = mapped_column(SmallInteger, default=0)
    departed: Mapped[int] = mapped_column(SmallInteger, default=0)
    messages: Mapped[int] = mapped_column(Integer, default=0)


class GroupDaily(Base):
    """Per group and day: the daily metrics, and the change in end-of-day members."""

    __tablename__ = "group_daily"
    __table_args__ = (Index("ix_group_daily_org_day", "org_id", "day"),)

    group_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(Integer)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    lefts: Mapped[int] = mapped_column(Integer, default=0)
    actives: Mapped[int] = mapped_column(Integer, default=0)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    # members(end of day d) = sum of members_delta over days <= d
    members_delta: Mapped[int] = mapped_column(Integer, default=0)


class OrgDaily(Base):
    """Per organisation and day, distinct members across all groups."""

    __tablename__ = "org_daily"

    org_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    lefts: Mapped[int] = mapped_column(Integer, default=0)
    actives: Mapped[int] = mapped_column(Integer, default=0)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    members_delta: Mapped[int] = mapped_column(Integer, default=0)


class OrgDayMember(Base):
    """Whether one member joined, left or posted in any group of the organisation on one day.

    The distinct-member counts of ``org_daily`` are kept incrementally from it: an ingest that
    turns a flag on here adds one to the day's count (``ingestion/rollups.py``).
    """

    __tablename__ = "org_day_members"

    org_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    member_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    joined: Mapped[int] = mapped_column(SmallInteger, default=0)
    departed: Mapped[int] = mapped_column(SmallInteger, default=0)
    active: Mapped[int] = mapped_column(SmallInteger, default=0)

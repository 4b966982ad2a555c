from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class Member(Base):
    """A person on a platform, with the persona fields operators segment by."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("org_id", "platform", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # When the platform last told the name (the event's time): a later event's name wins.
    display_name_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    gender: Mapped[str] = mapped_column(String(8), default="")  # male | female | ""
    birth_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    occupation: Mapped[str] = mapped_column(String(100), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    interests: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The member's WeCom corp (企业), when the platform tells it: moderation's other-company rule.
    corp: Mapped[str] = mapped_column(String(64), default="", server_default="")
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    erased_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Tagging(Base):
    """A tag on a member; who or what put it there (manual, rule, import)."""

    __tablename__ = "taggings"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)
    source: Mapped[str] = mapped_column(String(16), default="manual")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

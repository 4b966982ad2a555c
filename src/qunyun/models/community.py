from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class Community(Base):
    """A community and its positioning (M1): why it exists, for whom, what it offers."""

    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # 福利群 welfare, 体验群 experience, 活动快闪群 flash, 学习群 learning, 核心群 core,
    # 地方群 local, 老用户/校友群 alumni, other
    community_type: Mapped[str] = mapped_column(String(32), default="other")
    purpose: Mapped[str] = mapped_column(Text, default="")
    target_persona: Mapped[str] = mapped_column(Text, default="")
    # subset of social, product, content, service, welfare
    value_offered: Mapped[list[str]] = mapped_column(JSON, default=list)
    channels_plan: Mapped[str] = mapped_column(Text, default="")
    rhythm: Mapped[str] = mapped_column(Text, default="")
    division_of_labour: Mapped[str] = mapped_column(Text, default="")
    values: Mapped[str] = mapped_column(Text, default="")
    rules: Mapped[str] = mapped_column(Text, default="")
    # lead-owner-admin (总群主-群主-管理员) or hq-monitor-leader-student (总部-班长-组长-学员)
    organisation_model: Mapped[str] = mapped_column(String(32), default="lead-owner-admin")
    goals: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Playbook(Base):
    """What a new group is created from (M2). Fields now; the behaviour comes with later issues."""

    __tablename__ = "playbooks"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    naming_template: Mapped[str] = mapped_column(String(200), default="")
    rules_text: Mapped[str] = mapped_column(Text, default="")
    welcome_text: Mapped[str] = mapped_column(Text, default="")
    # Onboarding (docs/onboarding.md): at most one welcome per group per this many seconds
    # (raid protection), the rules page {rules_url} points to, the name-card format (empty: no
    # reminder) and when after a join to remind, and the texts of the reminder and of the
    # new-member benefit's private message (empty: the catalogue's).
    welcome_interval_seconds: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    rules_url: Mapped[str] = mapped_column(String(500), default="", server_default="")
    name_card_format: Mapped[str] = mapped_column(String(200), default="", server_default="")
    name_card_delay_minutes: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    name_card_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    benefit_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

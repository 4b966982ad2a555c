"""Moderation (M5): policies, the engine's decisions, their reversals, members' roles in groups.

- ``moderation_policies``: a policy attached to the organisation, a community, a playbook or a
  group (``target_key``: ``organisation``, ``community:3``, ``playbook:5``, ``group:7``; one per
  target). ``settings`` is the rules' ``Policy.to_dict()`` without the word lists, which are kept
  apart (``words``: ``[[word, category, pinyin], …]``, ``allow``: ``[term, …]``) so that they can
  be edited, imported and exported on their own. ``version`` changes on every edit: each process
  rebuilds its compiled matcher when it sees a new one (``moderation/cache.py``).
- ``moderation_decisions``: append-only; one per judged message or join that fired a rule (and
  each manual blacklist entry), with the evidence (matched words and spans, an excerpt), whether
  it was a dry run, and the outbound actions it requested. Strikes, mutes and blacklist entries
  are derived from these rows and their reversals.
- ``moderation_reversals``: append-only; an appeal granted by a staff member, with the reason.
  A reversed decision counts no more (no strike, no blacklist).
- ``member_group_roles``: a member's role in a group (owner, admin, KOL) for exempt roles;
  connectors fill it, staff set it by hand.
- ``moderation_recent_messages``: the live messages of moderated groups within their policy's
  history window (flood rules); the text is read from ``message_texts`` by ``event_id``. Kept
  here rather than as an index on ``events``, which every event of every group would pay for.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class PolicyTarget(enum.StrEnum):
    """What a policy is attached to, from the least to the most specific."""

    ORGANISATION = "organisation"
    COMMUNITY = "community"
    PLAYBOOK = "playbook"
    GROUP = "group"


class BlacklistScope(enum.StrEnum):
    GROUP = "group"
    COMMUNITY = "community"
    ORGANISATION = "organisation"


class MemberRole(enum.StrEnum):
    """A member's standing in a group (群主, 管理员, KOL): what exempt roles name."""

    OWNER = "owner"
    ADMIN = "admin"
    KOL = "kol"


class DecisionSource(enum.StrEnum):
    ENGINE = "engine"  # the engine judged a live message or join
    MANUAL = "manual"  # a staff member decided (a manual blacklist entry)


class ModerationPolicy(Base):
    __tablename__ = "moderation_policies"
    __table_args__ = (UniqueConstraint("org_id", "target_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    target_type: Mapped[str] = mapped_column(String(16))
    target_key: Mapped[str] = mapped_column(String(40))
    community_id: Mapped[int | None] = mapped_column(
        ForeignKey("communities.id", ondelete="CASCADE"), nullable=True, index=True
    )
    playbook_id: Mapped[int | None] = mapped_column(
        ForeignKey("playbooks.id", ondelete="CASCADE"), nullable=True, index=True
    )
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=True, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    words: Mapped[list[Any]] = mapped_column(JSON, default=list)
    allow: Mapped[list[str]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # A member's strikes (the escalation ladder's count) are their decisions of this many days.
    strike_window_days: Mapped[int] = mapped_column(Integer, default=30)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class ModerationDecision(Base):
    __tablename__ = "moderation_decisions"
    __table_args__ = (
        Index("ix_moderation_decisions_org_at", "org_id", "at"),
        Index("ix_moderation_decisions_member_at", "member_id", "at"),
        Index("ix_moderation_decisions_group_at", "group_id", "at"),
        # One engine decision per event (a retried ingest cannot judge an event twice).
        Index(
            "ix_moderation_decisions_event",
            "event_id",
            unique=True,
            sqlite_where=text("event_id IS NOT NULL"),
            postgresql_where=text("event_id IS NOT NULL"),
        ),
        # Blacklist entries, read on every live join and every scan of a known visitor.
        Index(
            "ix_moderation_decisions_blacklist",
            "member_id",
            sqlite_where=text("action = 'blacklist'"),
            postgresql_where=text("action = 'blacklist'"),
        ),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"), nullable=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), nullable=True)
    # The judged event (internal id and the platform's ids); None for manual decisions.
    event_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    message_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderation_policies.id", ondelete="SET NULL"), nullable=True
    )
    policy_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    rule_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    # [{"word", "category", "start", "end"}, …]: spans of the original text.
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    excerpt: Mapped[str] = mapped_column(Text, default="")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default=DecisionSource.ENGINE)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    # Blacklist entries: how far they reach (group_id / community_id say which one).
    blacklist_scope: Mapped[str | None] = mapped_column(String(16), nullable=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("communities.id", ondelete="SET NULL"), nullable=True)
    # Mutes: for how long (None: until unmuted).
    mute_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The outbound actions it requested (ids of outbound_actions).
    action_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Set when the member's evidence was erased (privacy): excerpt and matches are gone.
    erased_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    at: Mapped[datetime] = mapped_column(Timestamp)


class ModerationReversal(Base):
    __tablename__ = "moderation_reversals"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    decision_id: Mapped[int] = mapped_column(
        _BIGINT, ForeignKey("moderation_decisions.id", ondelete="CASCADE"), unique=True
    )
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(Timestamp)


class MemberGroupRole(Base):
    __tablename__ = "member_group_roles"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True, index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    set_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class ModerationRecentMessage(Base):
    __tablename__ = "moderation_recent_messages"
    __table_args__ = (Index("ix_moderation_recent_messages_member", "group_id", "member_id", "ts"),)

    event_id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(Timestamp)

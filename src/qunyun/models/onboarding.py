"""Onboarding on join (M4): greetings batched per group, the new-member benefit's coupon pool.

- ``onboarding_notices``: one row per (join event, kind) — a new member waiting to be named in
  their group's next welcome (``welcome``) or name-card reminder (``name_card``), and what came of
  it: named in an outbound action (``sent``) or passed over (``skipped``, with the reason). Kept
  after it went out: it says who was greeted in which message.
- ``onboarding_throttles``: per (group, kind), when the last greeting went out and the one job
  that will send the next; a generation number retires a job that a sooner one replaced. The
  raid protection (at most one greeting per group per N seconds) lives here.
- ``coupon_pools``: a playbook's new-member benefit: its codes, and the open task that says
  the pool ran empty (one at a time).
- ``coupon_codes``: the codes, each given to one member at most (``grant_id``).
- ``benefit_grants``: one per (pool, member): the code given, or none when the pool was empty.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class NoticeKind(enum.StrEnum):
    WELCOME = "welcome"
    NAME_CARD = "name_card"


class NoticeStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for the group's next greeting of its kind
    SENT = "sent"  # named in the outbound action ``action_id``
    SKIPPED = "skipped"  # passed over: ``reason`` says why


class SkipReason(enum.StrEnum):
    LEFT = "left"  # no longer in the group when the greeting went out
    ERASED = "erased"  # the member's data was erased
    NAMED = "named"  # name-card reminder: the member's name already has the format
    UNSET = "unset"  # the playbook no longer asks for it (text or format removed)


class GrantStatus(enum.StrEnum):
    GIVEN = "given"  # a code was given (and sent privately, or handed to the owner)
    MISSED = "missed"  # the pool was empty


class OnboardingNotice(Base):
    __tablename__ = "onboarding_notices"
    __table_args__ = (
        UniqueConstraint("event_id", "kind"),
        Index("ix_onboarding_notices_pending", "group_id", "kind", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[int] = mapped_column(BigInteger)  # the join event
    joined_at: Mapped[datetime] = mapped_column(Timestamp)  # the platform's time of the join
    due_at: Mapped[datetime] = mapped_column(Timestamp)  # platform time it may go out from
    status: Mapped[str] = mapped_column(String(16), default=NoticeStatus.PENDING)
    reason: Mapped[str] = mapped_column(String(16), default="")
    action_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbound_actions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    done_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class OnboardingThrottle(Base):
    __tablename__ = "onboarding_throttles"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    # Platform time of the last greeting of this kind in the group (None: never).
    last_sent_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Platform time the scheduled job sends at (None: no job scheduled).
    next_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Bumped with each job scheduled; a job of an older generation does nothing.
    generation: Mapped[int] = mapped_column(Integer, default=0)


class CouponPool(Base):
    __tablename__ = "coupon_pools"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    playbook_id: Mapped[int] = mapped_column(ForeignKey("playbooks.id", ondelete="CASCADE"), unique=True)
    # The open task "the pool is empty: import codes" (one at a time; None: none open).
    empty_task_id: Mapped[int | None] = mapped_column(ForeignKey("staff_tasks.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class CouponCode(Base):
    __tablename__ = "coupon_codes"
    __table_args__ = (
        UniqueConstraint("pool_id", "code"),
        # The codes still to give, in import order: what each grant takes the first of.
        Index(
            "ix_coupon_codes_free",
            "pool_id",
            "id",
            postgresql_where=text("grant_id IS NULL"),
            sqlite_where=text("grant_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("coupon_pools.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(100))
    imported_at: Mapped[datetime] = mapped_column(Timestamp)
    # The grant that took it (None: still free); unique, so a code is given once.
    grant_id: Mapped[int | None] = mapped_column(
        ForeignKey("benefit_grants.id", ondelete="SET NULL"), nullable=True, unique=True
    )


class BenefitGrant(Base):
    __tablename__ = "benefit_grants"
    __table_args__ = (UniqueConstraint("pool_id", "member_id"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("coupon_pools.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"), nullable=True)
    event_id: Mapped[int] = mapped_column(BigInteger)  # the join that earned it
    status: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The private message carrying the code (or the owner's task, where the platform cannot).
    action_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_actions.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)

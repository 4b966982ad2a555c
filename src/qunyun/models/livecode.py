"""Live codes (活码): one stable URL per channel that routes each scan to a group with room.

- ``live_codes``: the code, its channel, routing policy, pause switch, fallback, entry threshold.
- ``live_code_groups``: the pool — one row per group of a code, with its scan limit and how many
  first scans were routed to it (``routed`` only ever grows, by a conditional UPDATE that never
  passes ``scan_limit``), and the invite link the connector made for it.
- ``group_qr_images``: QR images staff uploaded for a group, each with its expiry.
- ``live_code_visitors``: one row per (code, visitor cookie): where the first scan was routed, so
  a visitor who scans again gets the same group and is not counted twice.
- ``live_code_scans``: every scan (append-only): time, code, channel, outcome, group, the user
  agent's class and the IP truncated to /24 or /48 (never the full address).
- ``live_code_joins``: joins attributed to a live code (by the funnel's matching), one per join
  event: the membership's channel and live code.
- ``live_code_invitations``: a visitor of a code who asked to be invited by their platform id
  (Matrix): the bot invites them, and their join of that group within a window is attributed to
  the code (livecodes/invitations.py).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class RoutingPolicy(enum.StrEnum):
    FILL = "fill"  # the first group of the pool with room, in order
    ROUND_ROBIN = "round_robin"  # the groups with room in turn
    REGION = "region"  # groups of the visitor's region first, then groups of no region


class ScanOutcome(enum.StrEnum):
    ROUTED = "routed"  # shown a group (QR image or invite link)
    FALLBACK = "fallback"  # every group full or none servable: the fallback was served
    PAUSED = "paused"  # the code is paused: the waiting page
    QUESTION = "question"  # the entry threshold was shown; answered later on the same scan
    REFUSED = "refused"  # a wrong answer to the threshold
    BLOCKED = "blocked"  # a blacklisted visitor


class LiveCode(Base):
    __tablename__ = "live_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    # The public short code of /c/{code}: unique across organisations (the URL names no organisation).
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"), nullable=True)
    # The platform account its invite links and new groups come from (None: each group's own).
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"), nullable=True)
    policy: Mapped[str] = mapped_column(String(16), default=RoutingPolicy.FILL)
    # Scan limit of groups added without one (None: capacity minus members, at most 200 for QR images).
    default_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hook_text: Mapped[str] = mapped_column(Text, default="")  # 诱饵: what the visitor gets for joining
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # Fallback, in this order: a URL (a staff member's contact link), a staff QR image, a waiting text.
    fallback_url: Mapped[str] = mapped_column(String(500), default="")
    fallback_image: Mapped[str | None] = mapped_column(String(300), nullable=True)
    fallback_text: Mapped[str] = mapped_column(Text, default="")
    # Entry threshold (a question or a short survey), see livecodes/threshold.py; None: none.
    threshold: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Requests to join through its links (Telegram links that create join requests), see
    # livecodes/join_requests.py: "review" (staff decide) or "approve" (let everyone in); members
    # on the blacklist are declined either way.
    join_request_policy: Mapped[str] = mapped_column(String(16), default="direct", server_default="direct")
    # New groups are created from this playbook when every group is full (where the platform can).
    playbook_id: Mapped[int | None] = mapped_column(ForeignKey("playbooks.id", ondelete="SET NULL"), nullable=True)
    # The owner of a group gets a task this many minutes before its QR image expires.
    qr_alert_minutes: Mapped[int] = mapped_column(Integer, default=24 * 60)
    # Set by the first scan that found every group full; cleared when a group with room is added.
    full_since: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # The task "create the next group" opened for the owner when the pool was full (closed when
    # a group with room joins the pool).
    full_task_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class LiveCodeGroup(Base):
    """A group in a live code's pool."""

    __tablename__ = "live_code_groups"
    __table_args__ = (UniqueConstraint("live_code_id", "group_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    live_code_id: Mapped[int] = mapped_column(ForeignKey("live_codes.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    scan_limit: Mapped[int] = mapped_column(Integer)
    # First scans routed here; never above scan_limit (UPDATE … WHERE routed < scan_limit).
    routed: Mapped[int] = mapped_column(Integer, default=0)
    region: Mapped[str] = mapped_column(String(64), default="")
    # False once taken out of the pool (kept: scans and joins name it).
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The CreateInviteLink outbound action and the link it made (where the platform has links).
    invite_action_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbound_actions.id", ondelete="SET NULL"), nullable=True
    )
    invite_link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    added_at: Mapped[datetime] = mapped_column(Timestamp)


class GroupQrImage(Base):
    """A group's QR image as staff uploaded it, with its expiry (WeChat: 7 days)."""

    __tablename__ = "group_qr_images"
    __table_args__ = (Index("ix_group_qr_images_group_expiry", "group_id", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(300))  # relative to the var dir
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    uploaded_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    # The expiry task opened for it (once).
    alert_task_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Withdrawn by staff before it expired (a wrong image): never served again.
    withdrawn_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class LiveCodeVisitor(Base):
    """Where a visitor's first scan of a code went; their later scans go there too."""

    __tablename__ = "live_code_visitors"
    __table_args__ = (
        UniqueConstraint("live_code_id", "visitor"),
        Index("ix_live_code_visitors_visitor", "visitor"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    live_code_id: Mapped[int] = mapped_column(ForeignKey("live_codes.id", ondelete="CASCADE"))
    visitor: Mapped[str] = mapped_column(String(32))  # the random id of the visitor's cookie
    entry_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # live_code_groups.id; None: fallback
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_at: Mapped[datetime] = mapped_column(Timestamp)
    region: Mapped[str] = mapped_column(String(64), default="")
    # The member this visitor turned out to be (set when a join is attributed to their scan).
    member_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class LiveCodeScan(Base):
    """One scan of a live code (append-only, except that a threshold's answers are written on the
    scan that showed it)."""

    __tablename__ = "live_code_scans"
    __table_args__ = (
        Index("ix_live_code_scans_code_at", "live_code_id", "at"),
        Index("ix_live_code_scans_group_at", "group_id", "at"),
        Index("ix_live_code_scans_org_at", "org_id", "at"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    live_code_id: Mapped[int] = mapped_column(ForeignKey("live_codes.id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    visitor: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(Timestamp)
    outcome: Mapped[str] = mapped_column(String(16))
    # True for the scan that decided the visitor's group (counted against its limit, or fallback).
    first: Mapped[bool] = mapped_column(Boolean, default=False)
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    invite_link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    ua_class: Mapped[str] = mapped_column(String(16), default="other")
    ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)  # /24 or /48, never more
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class LiveCodeJoin(Base):
    """A join attributed to a live code: the membership's channel and live code."""

    __tablename__ = "live_code_joins"
    __table_args__ = (
        UniqueConstraint("org_id", "event_id"),
        Index("ix_live_code_joins_code_group", "live_code_id", "group_id"),
        Index("ix_live_code_joins_member", "member_id"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    live_code_id: Mapped[int] = mapped_column(ForeignKey("live_codes.id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_id: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[int] = mapped_column(BigInteger)  # the member.joined event
    scan_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    matched_by: Mapped[str] = mapped_column(String(16))  # link | window | manual
    joined_at: Mapped[datetime] = mapped_column(Timestamp)


class LiveCodeInvitation(Base):
    """A visitor's request to be invited into a group of a code's pool by their platform id (a
    Matrix user id), and whether they joined: their join within the window is attributed."""

    __tablename__ = "live_code_invitations"
    __table_args__ = (
        Index("ix_live_code_invitations_group_user", "group_id", "user_id"),
        Index("ix_live_code_invitations_member", "member_id"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    live_code_id: Mapped[int] = mapped_column(ForeignKey("live_codes.id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    visitor: Mapped[str] = mapped_column(String(32))  # the scan page's visitor cookie
    user_id: Mapped[str] = mapped_column(String(255))  # the platform id entered (@local:server)
    member_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # the invite_member action
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    joined_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    join_event_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

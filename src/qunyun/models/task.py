from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, synonym

from qunyun.db.base import Base, Timestamp


class TaskStatus(enum.StrEnum):
    """open → done (a person did it) or cancelled (its action expired or went away).

    The stored values are the ones the table held before tasks became a domain; being overdue or
    escalated is not a state but a fact of ``due_at`` and ``escalated_at``."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskKind(enum.StrEnum):
    """What a task asks of a person. Stored as a string: a domain may add kinds later."""

    PLATFORM_ACTION = "platform_action"  # do by hand what the platform cannot do by API
    CONFIRM_SEND = "confirm_send"  # press send on a send the platform holds
    UNCERTAIN_SEND = "uncertain_send"  # a send that may have gone out: check and confirm
    SOP_STEP = "sop_step"
    CARE = "care"
    QR_EXPIRY = "qr_expiry"
    CREATE_GROUP = "create_group"
    MODERATION = "moderation"
    OTHER = "other"


class TaskEventKind(enum.StrEnum):
    CREATED = "created"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class StaffTask(Base):
    """Work for a person: what a platform cannot do by API, sends to confirm, reminders.

    The title is a catalogue message (``title_key`` + ``title_values``) rendered in the reader's
    language; ``title`` keeps its English text (and is all that rows from before had)."""

    __tablename__ = "staff_tasks"
    __table_args__ = (
        Index("ix_staff_tasks_assignee", "assignee_id", "status"),
        Index("ix_staff_tasks_org_status_due", "org_id", "status", "due_at"),
        Index("ix_staff_tasks_outbound_action_id", "outbound_action_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    title_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    title_values: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.OPEN)
    outbound_action_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbound_actions.id", ondelete="SET NULL"), nullable=True
    )
    due_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    done_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # Reminders: the next one is due at remind_at (None: no more); reminded counts those sent.
    remind_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    reminded: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Escalated once, when overdue past the grace: to the organisation's lead (the assignee stays).
    escalated_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    escalated_to_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    # Evidence of the work: a text, a link, an image stored under the var dir (its relative path).
    evidence_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    evidence_link: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    evidence_image: Mapped[str | None] = mapped_column(String(300), nullable=True)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    # done_at is when the task left the open state; for a done task, when it was completed.
    completed_at = synonym("done_at")


class TaskNoticeKind(enum.StrEnum):
    REMINDED = "reminded"  # to the assignee, when a reminder of the task is due
    ESCALATED = "escalated"  # to the lead, when the task is escalated to them


class StaffTaskNotice(Base):
    """A reminder or an escalation addressed to one staff member, unseen until the task is shown
    to them (``seen_at``); the console counts their unseen ones next to 任务."""

    __tablename__ = "staff_task_notices"
    __table_args__ = (Index("ix_staff_task_notices_staff_seen", "staff_id", "seen_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("staff_tasks.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(Timestamp)
    seen_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class StaffTaskEvent(Base):
    """What happened to a task (created, reminded, escalated, completed, cancelled): append-only."""

    __tablename__ = "staff_task_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("staff_tasks.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(Timestamp)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

"""SOP plans and their runs (M6; docs/sop.md).

- ``sop_plans``: a daily rhythm or a campaign, its quiet hours, paused or not.
- ``sop_steps``: a plan's steps. Editing a plan retires its steps (``active`` false) and adds new
  ones, so that runs already fired keep pointing at the step they carried out.
- ``sop_attachments``: a plan attached to a playbook, a community or a group; every group it
  covers gets an application.
- ``sop_applications``: one plan running in one group from a start day (a group may run
  several); ``through_day`` says how far a daily plan's runs are materialized.
- ``sop_group_pauses``: groups whose SOP is paused.
- ``sop_runs``: one group × step × day, with its fire time; what it became is its outbound
  action (``action_id``, automatic) or its staff task (``task_id``, assisted).
- ``sop_run_retries``: each retry of a failed run (append-only): who asked, when, and the
  failed attempt's action and reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class SopPlan(Base):
    __tablename__ = "sop_plans"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # sop.types.PlanKind
    # Quiet hours as minutes of the local day [start, end); a span over midnight has end < start.
    quiet_start: Mapped[int | None] = mapped_column(Integer, nullable=True)
    quiet_end: Mapped[int | None] = mapped_column(Integer, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    revision: Mapped[int] = mapped_column(Integer, default=1)  # +1 each time its steps change
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class SopStep(Base):
    __tablename__ = "sop_steps"
    __table_args__ = (Index("ix_sop_steps_plan_active", "plan_id", "active", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("sop_plans.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    at_minute: Mapped[int] = mapped_column(Integer)  # local time of day, minutes after midnight
    category: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    script: Mapped[str] = mapped_column(Text, default="")
    materials: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    prompt: Mapped[str] = mapped_column(Text, default="")
    executor: Mapped[str] = mapped_column(String(16))  # sop.types.Executor
    evidence_required: Mapped[bool] = mapped_column(Boolean, default=False)
    phase: Mapped[str | None] = mapped_column(String(16), nullable=True)
    day: Mapped[int | None] = mapped_column(Integer, nullable=True)  # offset from the start day
    on_day: Mapped[int | None] = mapped_column(Integer, nullable=True)  # absolute date, YYYYMMDD
    extra: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class SopAttachment(Base):
    """A plan attached to a playbook, a community or a group (``target`` + ``target_id``)."""

    __tablename__ = "sop_attachments"
    __table_args__ = (
        UniqueConstraint("plan_id", "target", "target_id"),
        Index("ix_sop_attachments_target", "target", "target_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("sop_plans.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(16))  # playbook | community | group
    target_id: Mapped[int] = mapped_column(Integer)
    # A campaign's start day (YYYYMMDD); None: each group's own (see sop.service.attach).
    start_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class SopApplication(Base):
    __tablename__ = "sop_applications"
    __table_args__ = (
        UniqueConstraint("plan_id", "group_id", "start_day"),
        Index("ix_sop_applications_group", "group_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("sop_plans.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    attachment_id: Mapped[int | None] = mapped_column(
        ForeignKey("sop_attachments.id", ondelete="SET NULL"), nullable=True
    )
    start_day: Mapped[int] = mapped_column(Integer)  # YYYYMMDD in the organisation's zone
    through_day: Mapped[int | None] = mapped_column(Integer, nullable=True)  # daily: materialized up to
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class SopGroupPause(Base):
    """A group whose SOP is paused: none of its runs fire while the row exists."""

    __tablename__ = "sop_group_pauses"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    paused_at: Mapped[datetime] = mapped_column(Timestamp)
    paused_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)


class SopRun(Base):
    """One step of one plan in one group on one day. ``due_at`` is when it should go (quiet
    hours already applied); ``fire_at`` when it will be taken (later than ``due_at`` only when a
    platform cap delayed it); ``fired_at`` when it was handed on."""

    __tablename__ = "sop_runs"
    __table_args__ = (
        UniqueConstraint("application_id", "step_id", "day"),
        Index("ix_sop_runs_due", "state", "fire_at"),
        Index("ix_sop_runs_group_due", "group_id", "due_at"),
        Index("ix_sop_runs_plan_state", "plan_id", "state"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    # Only the application is a foreign key: it belongs to the organisation, the plan and the
    # group (deleting any of them deletes it, and its runs with it), and steps are retired, never
    # deleted. Five foreign-key checks per row were half the cost of materializing 2.24 M runs.
    org_id: Mapped[int] = mapped_column(Integer)
    plan_id: Mapped[int] = mapped_column(Integer)
    application_id: Mapped[int] = mapped_column(ForeignKey("sop_applications.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[int] = mapped_column(Integer)
    day: Mapped[int] = mapped_column(Integer)  # YYYYMMDD, the local day it belongs to
    due_at: Mapped[datetime] = mapped_column(Timestamp)
    fire_at: Mapped[datetime] = mapped_column(Timestamp)
    state: Mapped[str] = mapped_column(String(24))  # sop.types.RunState
    reason: Mapped[str] = mapped_column(String(64), default="")
    fired_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    action_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbound_actions.id", ondelete="SET NULL"), nullable=True, index=True
    )
    task_id: Mapped[int | None] = mapped_column(ForeignKey("staff_tasks.id", ondelete="SET NULL"), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)  # the script as rendered when it fired
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    # The current attempt: 1, then +1 each time a failed run is retried (sop.retry). The send's
    # idempotency key names it from the second on, so a retry is a new action, not the failed one.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # When a retried attempt became due (the retry, or the end of quiet hours after it): its
    # lateness is counted from then, not from ``due_at``. None for the first attempt.
    attempt_due_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class SopRunRetry(Base):
    """A failed run sent again (append-only): who asked and when, and what the failed attempt
    was — its outbound action (kept, with its own history) and why it failed."""

    __tablename__ = "sop_run_retries"
    __table_args__ = (UniqueConstraint("run_id", "attempt"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(_BIGINT, ForeignKey("sop_runs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)  # the attempt the retry started (2 for the first)
    failed_action_id: Mapped[int | None] = mapped_column(
        _BIGINT, ForeignKey("outbound_actions.id", ondelete="SET NULL"), nullable=True
    )
    # The failed attempt's reason (sop.execute.Reason; "platform" when the platform refused the
    # send) and, for a refused send, the platform's error.
    failed_reason: Mapped[str] = mapped_column(String(64))
    failed_detail: Mapped[str] = mapped_column(Text, default="")
    retried_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), nullable=True)
    retried_at: Mapped[datetime] = mapped_column(Timestamp)

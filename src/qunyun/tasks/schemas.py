"""Request and response shapes of /api/v1/tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qunyun.tasks.service import EVIDENCE_LINK_LIMIT, EVIDENCE_TEXT_LIMIT, TaskItem
from qunyun.tasks.titles import render_title, task_reason


class TaskOut(BaseModel):
    id: int
    kind: str = Field(description="platform_action, confirm_send, uncertain_send, sop_step, care, …")
    status: str = Field(description="open, done or cancelled")
    title: str = Field(description="In the language of Accept-Language (English unless it asks for Chinese)")
    group_id: int | None
    group_name: str | None
    assignee_id: int | None
    assignee_name: str | None
    outbound_action_id: int | None
    reason: str | None = Field(
        description="Why it was opened (a task about an outbound action), in the language of Accept-Language"
    )
    detail: dict[str, Any] = Field(description="What the task is about: the action, its payload, the reason")
    due_at: datetime | None
    overdue: bool
    created_at: datetime
    remind_at: datetime | None
    reminded: int
    escalated_at: datetime | None
    escalated_to_id: int | None
    escalated_to_name: str | None = Field(description="The lead it was escalated to")
    notice: str | None = Field(
        description="reminded or escalated: a reminder or an escalation to you that you have not seen yet"
    )
    completed_at: datetime | None
    completed_by_id: int | None
    evidence_text: str | None
    evidence_link: str | None
    has_evidence_image: bool
    note: str | None

    @classmethod
    def of(cls, item: TaskItem, lang: str, now: datetime, *, notice: str | None = None) -> TaskOut:
        task = item.task
        return cls(
            id=task.id,
            kind=task.kind,
            status=task.status,
            title=render_title(task, lang),
            group_id=task.group_id,
            group_name=item.group_name,
            assignee_id=task.assignee_id,
            assignee_name=item.assignee_name,
            outbound_action_id=task.outbound_action_id,
            reason=task_reason(task, lang) or None,
            detail=task.detail,
            due_at=task.due_at,
            overdue=task.status == "open" and task.due_at is not None and task.due_at < now,
            created_at=task.created_at,
            remind_at=task.remind_at,
            reminded=task.reminded,
            escalated_at=task.escalated_at,
            escalated_to_id=task.escalated_to_id,
            escalated_to_name=item.escalated_to_name,
            notice=notice,
            completed_at=task.done_at if task.status == "done" else None,
            completed_by_id=task.completed_by_id,
            evidence_text=task.evidence_text,
            evidence_link=task.evidence_link,
            has_evidence_image=bool(task.evidence_image),
            note=task.note,
        )


class CompleteIn(BaseModel):
    """Evidence of the work (all optional). As JSON the image is base64; as multipart/form-data
    it is a file field ``evidence_image``."""

    model_config = ConfigDict(extra="forbid")

    evidence_text: str | None = Field(default=None, max_length=EVIDENCE_TEXT_LIMIT)
    evidence_link: str | None = Field(default=None, max_length=EVIDENCE_LINK_LIMIT)
    evidence_image_base64: str | None = Field(default=None, description="PNG, JPEG or WebP, at most 5 MiB")
    confirm_action: bool = Field(
        default=True, description="Confirm the outbound action behind the task if it waits on a person"
    )
    note: str | None = Field(default=None, max_length=EVIDENCE_TEXT_LIMIT)


class NoticesOut(BaseModel):
    unseen: int = Field(description="Your open tasks with a reminder or an escalation to you not yet seen")


class SeenIn(BaseModel):
    """Which tasks' notices to mark as seen: the given ones, or all (no body, or no ids)."""

    model_config = ConfigDict(extra="forbid")

    task_ids: list[int] | None = Field(default=None, max_length=1000)

"""Request and response shapes of /api/v1/sop."""

from __future__ import annotations

from datetime import date, datetime, time

from pydantic import BaseModel, ConfigDict, Field

from qunyun.api.pagination import Id
from qunyun.models import SopAttachment, SopPlan
from qunyun.sop.runs import RunRow
from qunyun.sop.service import QuietHours
from qunyun.sop.types import Executor, Material, MaterialKind, Phase, PlanKind, StepSpec


class MaterialIO(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: MaterialKind
    value: str = Field(min_length=1, max_length=2000)
    title: str = Field(default="", max_length=200)


class StepIO(BaseModel):
    """One step (the SOP table's row). A daily plan's steps have a time only; a campaign's a
    ``day`` offset (D-7 is -7) or an absolute ``on`` date."""

    model_config = ConfigDict(extra="forbid")

    at: time = Field(description="Local time of day, HH:MM")
    category: str = Field(min_length=1, max_length=50, description="事项: 早安语, 内容推送, 活跃活动 …")
    title: str = Field(default="", max_length=200)
    detail: str = Field(default="", max_length=4000)
    script: str = Field(default="", max_length=4000, description="话术, with {group_name}, {date} … variables")
    materials: list[MaterialIO] = Field(default_factory=list, max_length=20)
    prompt: str = Field(default="", max_length=4000, description="The interaction prompt (互动话题)")
    executor: Executor = Executor.BOT
    evidence_required: bool = False
    phase: Phase | None = None
    day: int | None = Field(default=None, ge=-60, le=365)
    on: date | None = None

    def spec(self) -> StepSpec:
        return StepSpec(
            at=self.at.replace(second=0, microsecond=0, tzinfo=None),
            category=self.category,
            title=self.title,
            detail=self.detail,
            script=self.script,
            materials=tuple(Material(m.kind, m.value, m.title) for m in self.materials),
            prompt=self.prompt,
            executor=self.executor,
            evidence_required=self.evidence_required,
            phase=self.phase,
            day=self.day,
            on=self.on,
        )

    @classmethod
    def of(cls, spec: StepSpec) -> StepIO:
        return cls(
            at=spec.at,
            category=spec.category,
            title=spec.title,
            detail=spec.detail,
            script=spec.script,
            materials=[MaterialIO(kind=m.kind, value=m.value, title=m.title) for m in spec.materials],
            prompt=spec.prompt,
            executor=spec.executor,
            evidence_required=spec.evidence_required,
            phase=spec.phase,
            day=spec.day,
            on=spec.on,
        )


class QuietHoursIO(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time = Field(description="Local time quiet hours begin, HH:MM")
    end: time = Field(description="Local time they end (before start: over midnight)")

    def value(self) -> QuietHours:
        return QuietHours(self.start.replace(second=0, microsecond=0), self.end.replace(second=0, microsecond=0))


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: PlanKind
    steps: list[StepIO] = Field(min_length=1, max_length=500)
    quiet_hours: QuietHoursIO | None = None


class PlanUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    paused: bool | None = None
    quiet_hours: QuietHoursIO | None = Field(default=None, description="null clears them (when given)")


class StepsReplace(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # At least one: an empty list is the service's 422 (after the plan's own 404).
    steps: list[StepIO] = Field(default_factory=list, max_length=500)


class AttachIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook_id: Id | None = None
    community_id: Id | None = None
    group_id: Id | None = None
    start: date | None = Field(default=None, description="A campaign's start day (default: each group's own)")


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Required; checked after the plan (a missing plan is 404 whatever the body).
    group_id: Id | None = None
    start: date | None = Field(default=None, description="First day (default: today in the organisation's zone)")


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paused: bool = Field(default=True, description="false resumes")


class PlanOut(BaseModel):
    id: int
    name: str
    kind: PlanKind
    paused: bool
    quiet_hours: QuietHoursIO | None
    revision: int
    steps: list[StepIO] | None = Field(default=None, description="In one plan's answer; not in lists")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, plan: SopPlan, steps: list[StepSpec] | None = None) -> PlanOut:
        quiet = None
        if plan.quiet_start is not None and plan.quiet_end is not None:
            quiet = QuietHoursIO(
                start=time(plan.quiet_start // 60, plan.quiet_start % 60),
                end=time(plan.quiet_end // 60, plan.quiet_end % 60),
            )
        return cls(
            id=plan.id,
            name=plan.name,
            kind=PlanKind(plan.kind),
            paused=plan.paused,
            quiet_hours=quiet,
            revision=plan.revision,
            steps=[StepIO.of(s) for s in steps] if steps is not None else None,
            created_at=plan.created_at,
            updated_at=plan.updated_at,
        )


class AttachmentOut(BaseModel):
    id: int
    plan_id: int
    target: str = Field(description="playbook, community or group")
    target_id: int
    start: date | None

    @classmethod
    def of(cls, row: SopAttachment) -> AttachmentOut:
        start = None
        if row.start_day is not None:
            start = date(row.start_day // 10000, row.start_day // 100 % 100, row.start_day % 100)
        return cls(id=row.id, plan_id=row.plan_id, target=row.target, target_id=row.target_id, start=start)


class AppliedOut(BaseModel):
    application_id: int
    runs: int = Field(description="Runs made now")


class PauseOut(BaseModel):
    group_id: int
    paused: bool


class RunOut(BaseModel):
    id: int
    plan_id: int
    plan_name: str
    step_id: int
    category: str
    title: str
    executor: str
    group_id: int
    group: str = Field(description="The group's external id")
    group_name: str
    day: date
    due_at: datetime
    fire_at: datetime
    fired_at: datetime | None
    state: str = Field(description="planned, queued, sending, sent, awaiting_confirmation, confirmed, assigned, …")
    reason: str
    action_id: int | None
    task_id: int | None

    @classmethod
    def of(cls, row: RunRow) -> RunOut:
        return cls(
            id=row.id,
            plan_id=row.plan_id,
            plan_name=row.plan_name,
            step_id=row.step_id,
            category=row.category,
            title=row.title,
            executor=row.executor,
            group_id=row.group_id,
            group=row.group_external_id,
            group_name=row.group_name,
            day=date(row.day // 10000, row.day // 100 % 100, row.day % 100),
            due_at=row.due_at,
            fire_at=row.fire_at,
            fired_at=row.fired_at,
            state=row.state.value,
            reason=row.reason,
            action_id=row.action_id,
            task_id=row.task_id,
        )

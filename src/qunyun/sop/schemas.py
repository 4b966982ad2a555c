"""Request and response shapes of /api/v1/sop."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from qunyun.api.pagination import Id
from qunyun.models import SopAttachment, SopPlan, SopRunRetry
from qunyun.sop.calendar import Calendar, Gantt
from qunyun.sop.reports import ON_TIME_TOLERANCE, ExecutionReport, ExecutionRow, WorkloadReport
from qunyun.sop.runs import RunRow, to_date
from qunyun.sop.service import QuietHours
from qunyun.sop.types import Executor, Material, MaterialKind, Phase, PlanKind, StepSpec


def same_names(names: Iterable[str], source: object, **given: Any) -> dict[str, Any]:
    """Keyword arguments for a shape with fields ``names``: each read from ``source``'s attribute
    of the same name, but for those ``given`` (renamed or converted ones)."""
    return {name: given[name] if name in given else getattr(source, name) for name in names}


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
            **same_names(
                StepIO.model_fields,
                self,
                at=self.at.replace(second=0, microsecond=0, tzinfo=None),
                materials=tuple(Material(m.kind, m.value, m.title) for m in self.materials),
            )
        )

    @classmethod
    def of(cls, spec: StepSpec) -> StepIO:
        materials = [MaterialIO(kind=m.kind, value=m.value, title=m.title) for m in spec.materials]
        return cls(**same_names(cls.model_fields, spec, materials=materials))


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
        start = to_date(row.start_day) if row.start_day is not None else None
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
    attempt: int = Field(description="1, then 2 and on once retried")

    @classmethod
    def of(cls, row: RunRow) -> RunOut:
        given = {"group": row.group_external_id, "day": to_date(row.day), "state": row.state.value}
        return cls(**same_names(cls.model_fields, row, **given))


class RetryOut(BaseModel):
    """One retry of a run: who asked, when, and the failed attempt it replaced."""

    attempt: int = Field(description="The attempt the retry started (2 for the first retry)")
    failed_action_id: int | None = Field(description="The failed attempt's outbound action (kept, with its history)")
    failed_reason: str = Field(description="no_route, no_text, monthly_cap, platform (the platform refused it) …")
    failed_detail: str = Field(description="The platform's error, for a refused send")
    retried_by: int | None = Field(description="The staff member (null: the command line)")
    retried_at: datetime

    @classmethod
    def of(cls, row: SopRunRetry) -> RetryOut:
        return cls(**same_names(cls.model_fields, row))


class RunDetailOut(RunOut):
    retries: list[RetryOut] = Field(default_factory=list, description="The run's retries, the first first")

    @classmethod
    def with_retries(cls, row: RunRow, retries: Iterable[SopRunRetry]) -> RunDetailOut:
        base = RunOut.of(row).model_dump()
        return cls(**base, retries=[RetryOut.of(r) for r in retries])


class RetryFailedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # At least one of the two (the service's 422 naming group_id).
    group_id: Id | None = None
    plan_id: Id | None = None
    date_from: date | None = Field(default=None, alias="from", description="First day (organisation's zone)")
    date_to: date | None = Field(default=None, alias="to", description="Last day, included")


class RetryRefusedOut(BaseModel):
    run_id: int
    code: str
    message: str


class RetriedOut(BaseModel):
    retried: list[int] = Field(description="The runs queued again")
    refused: list[RetryRefusedOut] = Field(description="Failed runs left failed, and why (paused, cap reached …)")


# --- calendar, Gantt and reports (sop.calendar, sop.reports) ---------------------------------------


class CalendarRunOut(BaseModel):
    id: int
    plan_id: int
    plan_name: str
    category: str
    title: str
    executor: str
    group_id: int
    group_name: str
    at: datetime = Field(description="Due, with the organisation's offset")
    state: str
    reason: str
    task_id: int | None
    attempt: int = Field(description="1, then 2 and on once retried")


class CalendarDayOut(BaseModel):
    day: date
    in_range: bool = Field(description="False for a month view's days of the months around it")
    counts: dict[str, int] = Field(description="Runs per state")
    runs: list[CalendarRunOut]


class CalendarOut(BaseModel):
    view: str
    anchor: date
    first: date
    last: date
    previous: date = Field(description="The anchor of the previous month or week")
    next: date
    counts: dict[str, int]
    truncated: bool = Field(description="More runs than one answer holds: narrow by group, staff or plan")
    days: list[CalendarDayOut]

    @classmethod
    def of(cls, cal: Calendar) -> CalendarOut:
        return cls(
            view=cal.view,
            anchor=cal.anchor,
            first=cal.first,
            last=cal.last,
            previous=cal.previous,
            next=cal.next,
            counts={s.value: n for s, n in cal.counts.items()},
            truncated=cal.truncated,
            days=[
                CalendarDayOut(
                    day=d.day,
                    in_range=d.in_range,
                    counts={s.value: n for s, n in d.counts.items()},
                    runs=[
                        CalendarRunOut(**same_names(CalendarRunOut.model_fields, r, state=r.state.value))
                        for r in d.runs
                    ],
                )
                for d in cal.days
            ],
        )


class GanttStepOut(BaseModel):
    id: int
    phase: Phase | None
    day: int = Field(description="Offset from the start day (D-7 is -7)")
    at: time
    category: str
    title: str
    executor: str


class GanttCellOut(BaseModel):
    step_id: int
    run_id: int
    day: date
    state: str


class GanttRowOut(BaseModel):
    application_id: int
    group_id: int
    group_name: str
    start: date
    runs: list[GanttCellOut]


class PhaseOut(BaseModel):
    phase: Phase | None
    first: int
    last: int


class GanttOut(BaseModel):
    plan_id: int
    plan_name: str
    first: int | None = Field(description="The first step's day offset")
    last: int | None
    phases: list[PhaseOut]
    steps: list[GanttStepOut]
    groups: list[GanttRowOut]

    @classmethod
    def of(cls, g: Gantt) -> GanttOut:
        return cls(
            plan_id=g.plan_id,
            plan_name=g.plan_name,
            first=g.offsets[0] if g.offsets else None,
            last=g.offsets[-1] if g.offsets else None,
            phases=[PhaseOut(phase=p.phase, first=p.first, last=p.last) for p in g.phases],
            steps=[GanttStepOut(**same_names(GanttStepOut.model_fields, s)) for s in g.steps],
            groups=[
                GanttRowOut(
                    application_id=r.application_id,
                    group_id=r.group_id,
                    group_name=r.group_name,
                    start=r.start,
                    runs=[
                        GanttCellOut(step_id=step_id, run_id=c.run_id, day=c.day, state=c.state.value)
                        for step_id, c in r.cells.items()
                    ],
                )
                for r in g.rows
            ],
        )


class ExecutionRowOut(BaseModel):
    key: int = Field(description="The group's or the staff member's id (0: runs without a person)")
    name: str
    due: int
    executed: int = Field(description="Ended sent, confirmed or done")
    on_time: int
    missed: int = Field(description="Failed, expired, or its task cancelled")
    waiting: int = Field(description="Due, still with a person or under way")
    execution_rate: float | None
    on_time_rate: float | None
    average_delay_minutes: float | None

    @classmethod
    def of(cls, row: ExecutionRow) -> ExecutionRowOut:
        rates = {
            "execution_rate": None if row.execution_rate is None else round(row.execution_rate, 4),
            "on_time_rate": None if row.on_time_rate is None else round(row.on_time_rate, 4),
        }
        return cls(**same_names(cls.model_fields, row, **rates))


class ExecutionOut(BaseModel):
    by: str
    start: date
    end: date
    on_time_minutes: int = Field(description="The tolerance after the due time that still counts as on time")
    rows: list[ExecutionRowOut]
    total: ExecutionRowOut

    @classmethod
    def of(cls, report: ExecutionReport) -> ExecutionOut:
        return cls(
            by=report.by,
            start=report.start,
            end=report.end,
            on_time_minutes=int(ON_TIME_TOLERANCE.total_seconds() // 60),
            rows=[ExecutionRowOut.of(r) for r in report.rows],
            total=ExecutionRowOut.of(report.total),
        )


class WorkloadLineOut(BaseModel):
    staff_id: int
    name: str
    role: str
    groups: int
    open_tasks: int
    overdue_tasks: int
    load: str = Field(description="under, ok or over the norm; empty for roles that run no groups")
    sop: ExecutionRowOut | None


class WorkloadOut(BaseModel):
    norm: list[int] = Field(description="Groups per operator: [low, high]")
    start: date
    end: date
    rows: list[WorkloadLineOut]

    @classmethod
    def of(cls, report: WorkloadReport, start: date, end: date) -> WorkloadOut:
        return cls(
            norm=list(report.norm),
            start=start,
            end=end,
            rows=[
                WorkloadLineOut(
                    **same_names(
                        WorkloadLineOut.model_fields, r, sop=ExecutionRowOut.of(r.sop) if r.sop is not None else None
                    )
                )
                for r in report.rows
            ],
        )

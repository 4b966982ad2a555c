"""SOP plans: their steps, quiet hours, attachments and pauses (M6; docs/sop.md).

Who may do what: every staff member of the organisation reads plans (they are the house's
methods, not member data); leads and admins create and edit them, attach and apply them, and
pause them or a group's SOP (a group only if they see it). Analysts read only. Runs and their
states are in :mod:`qunyun.sop.runs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, require_group, require_write
from qunyun.errors import Conflict, Forbidden, InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import (
    Community,
    Playbook,
    Role,
    SopAttachment,
    SopGroupPause,
    SopPlan,
    SopStep,
)
from qunyun.sop.types import SCRIPT_VARIABLES, Executor, Material, MaterialKind, Phase, PlanKind, StepSpec
from qunyun.texttemplate import TemplateError, fill
from qunyun.timeutil import day_key, utcnow

NAME_LIMIT = 200
CATEGORY_LIMIT = 50
TITLE_LIMIT = 200
TEXT_LIMIT = 4000  # a script, a detail, a prompt: an outbound text is at most 4,000 characters
MAX_STEPS = 500
DAY_RANGE = (-60, 365)  # a campaign's day offsets (D-7 … D+21 in the seeds)
EDITOR_ROLES = (Role.LEAD, Role.ADMIN)


class AttachTarget:
    PLAYBOOK = "playbook"
    COMMUNITY = "community"
    GROUP = "group"


@dataclass(frozen=True)
class QuietHours:
    """Local times [start, end) in which nothing is sent; ``end`` before ``start`` spans midnight."""

    start: time
    end: time

    @property
    def minutes(self) -> tuple[int, int]:
        return self.start.hour * 60 + self.start.minute, self.end.hour * 60 + self.end.minute


# --- access ---------------------------------------------------------------------------------------


def require_editor(scope: Scope) -> None:
    """Leads and admins edit plans; an analyst (read-only) or anyone else is Forbidden."""
    require_write(scope)
    if scope.role not in EDITOR_ROLES:
        raise Forbidden(Msg("err.sop.editors_only"))


def require_plan(session: Session, scope: Scope, plan_id: int, *, write: bool = False) -> SopPlan:
    """The plan if it is the organisation's (else NotFound), and its editor's if ``write``."""
    plan = session.scalar(select(SopPlan).where(SopPlan.id == plan_id, SopPlan.org_id == scope.org_id))
    if plan is None:
        raise NotFound(Msg("err.sop.no_plan", id=plan_id), field="plan_id")
    if write:
        require_editor(scope)
    return plan


# --- plans ----------------------------------------------------------------------------------------


def create_plan(
    session: Session,
    scope: Scope,
    *,
    name: str,
    kind: PlanKind | str,
    steps: list[StepSpec],
    quiet_hours: QuietHours | None = None,
) -> SopPlan:
    """A new plan with its steps (all checked first: nothing is written when one is bad)."""
    require_editor(scope)
    plan_kind = _kind(kind)
    clean_name = _name(session, scope, name)
    _check_steps(plan_kind, steps)
    now = utcnow()
    quiet = _quiet(quiet_hours)
    plan = SopPlan(
        org_id=scope.org_id,
        name=clean_name,
        kind=plan_kind.value,
        quiet_start=quiet[0],
        quiet_end=quiet[1],
        paused=False,
        revision=1,
        created_at=now,
        updated_at=now,
    )
    session.add(plan)
    session.flush()
    _add_steps(session, plan, steps, now)
    return plan


def list_plans(session: Session, scope: Scope) -> list[SopPlan]:
    """The organisation's plans, by name."""
    return list(session.scalars(select(SopPlan).where(SopPlan.org_id == scope.org_id).order_by(SopPlan.name)))


def active_steps(session: Session, plan_id: int) -> list[SopStep]:
    """A plan's current steps in their order."""
    return list(
        session.scalars(
            select(SopStep)
            .where(SopStep.plan_id == plan_id, SopStep.active.is_(True))
            .order_by(SopStep.position, SopStep.id)
        )
    )


def plan_steps(session: Session, scope: Scope, plan_id: int) -> tuple[SopPlan, list[StepSpec]]:
    """The plan and its current steps as :class:`StepSpec` (what the SOP table exports)."""
    plan = require_plan(session, scope, plan_id)
    return plan, [step_spec(step) for step in active_steps(session, plan.id)]


def replace_steps(session: Session, scope: Scope, plan_id: int, steps: list[StepSpec]) -> SopPlan:
    """Replace a plan's steps. Runs already fired keep their steps; runs not yet fired are built
    again from the new ones (future runs only)."""
    plan = require_plan(session, scope, plan_id, write=True)
    _check_steps(PlanKind(plan.kind), steps)
    now = utcnow()
    for step in active_steps(session, plan.id):
        step.active = False
    _add_steps(session, plan, steps, now)
    plan.revision += 1
    plan.updated_at = now
    session.flush()
    _rebuild(session, plan, now)
    return plan


def set_quiet_hours(session: Session, scope: Scope, plan_id: int, quiet_hours: QuietHours | None) -> SopPlan:
    """Change (or clear) a plan's quiet hours; future runs move accordingly."""
    plan = require_plan(session, scope, plan_id, write=True)
    plan.quiet_start, plan.quiet_end = _quiet(quiet_hours)
    plan.updated_at = utcnow()
    session.flush()
    _rebuild(session, plan, plan.updated_at)
    return plan


def rename_plan(session: Session, scope: Scope, plan_id: int, name: str) -> SopPlan:
    plan = require_plan(session, scope, plan_id, write=True)
    plan.name = _name(session, scope, name, exclude=plan.id)
    plan.updated_at = utcnow()
    session.flush()
    return plan


def pause_plan(session: Session, scope: Scope, plan_id: int, paused: bool) -> SopPlan:
    """Pause (or resume) a plan in every group: its runs due while it is paused are skipped."""
    plan = require_plan(session, scope, plan_id, write=True)
    plan.paused = paused
    plan.updated_at = utcnow()
    session.flush()
    return plan


def pause_group(session: Session, scope: Scope, group_id: int, paused: bool) -> bool:
    """Pause (or resume) every plan of one group; returns whether it is now paused."""
    require_group(session, scope, group_id, write=True)
    require_editor(scope)
    row = session.get(SopGroupPause, group_id)
    if paused and row is None:
        session.add(
            SopGroupPause(group_id=group_id, org_id=scope.org_id, paused_at=utcnow(), paused_by=scope.staff_id or None)
        )
    elif not paused and row is not None:
        session.delete(row)
    session.flush()
    return paused


def group_paused(session: Session, group_id: int) -> bool:
    return session.get(SopGroupPause, group_id) is not None


# --- attachments ----------------------------------------------------------------------------------


def attach(
    session: Session,
    scope: Scope,
    plan_id: int,
    *,
    playbook_id: int | None = None,
    community_id: int | None = None,
    group_id: int | None = None,
    start: date | None = None,
) -> SopAttachment:
    """Attach a plan to a playbook, a community or a group (exactly one): every group it covers,
    now and later, runs the plan. A campaign starts on ``start`` if given, else on the day each
    group gets it (its first step, D-7 say, on that day). Attaching twice is one attachment."""
    plan = require_plan(session, scope, plan_id, write=True)
    given = [(k, v) for k, v in (("playbook", playbook_id), ("community", community_id), ("group", group_id)) if v]
    if len(given) != 1:
        raise InvalidInput(Msg("err.sop.attach_one"), field="target")
    target, target_id = given[0]
    if target == AttachTarget.GROUP:
        require_group(session, scope, target_id, write=True)
    else:
        model = Playbook if target == AttachTarget.PLAYBOOK else Community
        found = session.scalar(select(model.id).where(model.id == target_id, model.org_id == scope.org_id))
        if found is None:
            raise NotFound(Msg(f"err.sop.no_{target}", id=target_id), field=f"{target}_id")
    existing = session.scalar(
        select(SopAttachment).where(
            SopAttachment.plan_id == plan.id, SopAttachment.target == target, SopAttachment.target_id == target_id
        )
    )
    if existing is not None:
        return existing
    row = SopAttachment(
        org_id=scope.org_id,
        plan_id=plan.id,
        target=target,
        target_id=target_id,
        start_day=day_key(start) if start is not None else None,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    from qunyun.sop.runs import apply_attachment  # runs import this module

    apply_attachment(session, row, utcnow())
    return row


def detach(session: Session, scope: Scope, attachment_id: int) -> None:
    """Remove an attachment; the groups it covered keep their applications (pause them to stop)."""
    row = session.scalar(
        select(SopAttachment).where(SopAttachment.id == attachment_id, SopAttachment.org_id == scope.org_id)
    )
    if row is None:
        raise NotFound(Msg("err.sop.no_attachment", id=attachment_id), field="attachment_id")
    require_editor(scope)
    session.execute(delete(SopAttachment).where(SopAttachment.id == row.id))
    session.flush()


def attachments(session: Session, scope: Scope, plan_id: int) -> list[SopAttachment]:
    plan = require_plan(session, scope, plan_id)
    return list(
        session.scalars(select(SopAttachment).where(SopAttachment.plan_id == plan.id).order_by(SopAttachment.id))
    )


# --- steps ----------------------------------------------------------------------------------------


def step_spec(step: SopStep) -> StepSpec:
    """A stored step as the shared vocabulary describes it."""
    return StepSpec(
        at=time(step.at_minute // 60, step.at_minute % 60),
        category=step.category,
        title=step.title,
        detail=step.detail,
        script=step.script,
        materials=tuple(
            Material(kind=MaterialKind(m["kind"]), value=m["value"], title=m.get("title", "")) for m in step.materials
        ),
        prompt=step.prompt,
        executor=Executor(step.executor),
        evidence_required=step.evidence_required,
        phase=Phase(step.phase) if step.phase else None,
        day=step.day,
        on=date(step.on_day // 10000, step.on_day // 100 % 100, step.on_day % 100) if step.on_day else None,
        extra=dict(step.extra or {}),
    )


def _add_steps(session: Session, plan: SopPlan, steps: Sequence[StepSpec], now: datetime) -> None:
    for position, spec in enumerate(steps):
        session.add(
            SopStep(
                org_id=plan.org_id,
                plan_id=plan.id,
                position=position,
                active=True,
                at_minute=spec.at.hour * 60 + spec.at.minute,
                category=spec.category.strip(),
                title=spec.title.strip(),
                detail=spec.detail,
                script=spec.script,
                materials=[{"kind": m.kind.value, "value": m.value, "title": m.title} for m in spec.materials],
                prompt=spec.prompt,
                executor=Executor(spec.executor).value,
                evidence_required=spec.evidence_required,
                phase=Phase(spec.phase).value if spec.phase else None,
                day=spec.day,
                on_day=day_key(spec.on) if spec.on is not None else None,
                extra=dict(spec.extra),
                created_at=now,
            )
        )
    session.flush()


def _check_steps(kind: PlanKind, steps: Sequence[StepSpec]) -> None:
    """Every step checked; the first problem is an InvalidInput naming ``steps[i].<field>``."""
    if not steps:
        raise InvalidInput(Msg("err.sop.no_steps"), field="steps")
    if len(steps) > MAX_STEPS:
        raise InvalidInput(Msg("err.sop.too_many_steps", limit=MAX_STEPS), field="steps")
    blank = dict.fromkeys(SCRIPT_VARIABLES, "")
    for i, spec in enumerate(steps):
        where = f"steps[{i}]"
        if not isinstance(spec.at, time):
            raise InvalidInput(Msg("err.sop.bad_time"), field=f"{where}.at")
        if not spec.category.strip() or len(spec.category.strip()) > CATEGORY_LIMIT:
            raise InvalidInput(Msg("err.sop.category", limit=CATEGORY_LIMIT), field=f"{where}.category")
        if len(spec.title) > TITLE_LIMIT:
            raise InvalidInput(Msg("err.sop.too_long", limit=TITLE_LIMIT), field=f"{where}.title")
        for name in ("detail", "script", "prompt"):
            if len(getattr(spec, name)) > TEXT_LIMIT:
                raise InvalidInput(Msg("err.sop.too_long", limit=TEXT_LIMIT), field=f"{where}.{name}")
        for name in ("script", "prompt"):
            try:
                fill(getattr(spec, name), blank)
            except TemplateError as exc:
                raise InvalidInput(_template_error(exc), field=f"{where}.{name}") from None
        try:
            executor = Executor(spec.executor)
        except ValueError:
            raise InvalidInput(Msg("err.sop.executor", value=str(spec.executor)), field=f"{where}.executor") from None
        if executor == Executor.BOT and not (spec.script.strip() or spec.materials):
            raise InvalidInput(Msg("err.sop.bot_needs_script"), field=f"{where}.script")
        for m, material in enumerate(spec.materials):
            if not isinstance(material.kind, MaterialKind) or not material.value.strip():
                raise InvalidInput(Msg("err.sop.material"), field=f"{where}.materials[{m}]")
        if kind == PlanKind.DAILY:
            if spec.day is not None or spec.on is not None:
                raise InvalidInput(Msg("err.sop.daily_has_day"), field=f"{where}.day")
        else:
            if (spec.day is None) == (spec.on is None):
                raise InvalidInput(Msg("err.sop.campaign_day"), field=f"{where}.day")
            if spec.day is not None and not DAY_RANGE[0] <= spec.day <= DAY_RANGE[1]:
                raise InvalidInput(Msg("err.sop.day_range", low=DAY_RANGE[0], high=DAY_RANGE[1]), field=f"{where}.day")


def _template_error(exc: TemplateError) -> Msg:
    if exc.stray_brace:
        return Msg("err.sop.stray_brace", position=exc.position)
    return Msg("err.sop.unknown_variable", token=exc.token, allowed=", ".join(f"{{{v}}}" for v in SCRIPT_VARIABLES))


def _kind(kind: PlanKind | str) -> PlanKind:
    try:
        return PlanKind(kind)
    except ValueError:
        raise InvalidInput(Msg("err.sop.kind", value=str(kind)), field="kind") from None


def _name(session: Session, scope: Scope, name: str, exclude: int | None = None) -> str:
    clean = (name or "").strip()
    if not clean or len(clean) > NAME_LIMIT:
        raise InvalidInput(Msg("err.sop.name", limit=NAME_LIMIT), field="name")
    query = select(SopPlan.id).where(SopPlan.org_id == scope.org_id, SopPlan.name == clean)
    if exclude is not None:
        query = query.where(SopPlan.id != exclude)
    if session.scalar(query) is not None:
        raise Conflict(Msg("err.sop.name_taken", name=clean), field="name")
    return clean


def _quiet(quiet_hours: QuietHours | None) -> tuple[int | None, int | None]:
    if quiet_hours is None:
        return None, None
    start, end = quiet_hours.minutes
    if start == end:
        raise InvalidInput(Msg("err.sop.quiet_empty"), field="quiet_hours")
    return start, end


def _rebuild(session: Session, plan: SopPlan, now: datetime) -> None:
    from qunyun.sop.runs import rebuild_plan  # runs import this module

    rebuild_plan(session, plan, now)

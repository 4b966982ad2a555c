"""Plans through the service: steps kept as given, every bad step named, who may edit."""

from __future__ import annotations

from dataclasses import replace
from datetime import time

import pytest
from sqlalchemy import func, select

from qunyun.db.session import unit_of_work
from qunyun.errors import Conflict, Forbidden, InvalidInput, NotFound
from qunyun.models import SopPlan, SopStep
from qunyun.sop import service
from qunyun.sop.service import QuietHours
from qunyun.sop.types import Executor, PlanKind, StepSpec
from tests.sop.conftest import SopWorld, campaign_steps, daily_steps


def test_a_plan_gives_back_its_steps_as_given(sop_world: SopWorld) -> None:
    with unit_of_work(sop_world.db) as s:
        plan = service.create_plan(s, sop_world.scope("admin"), name="日常节奏", kind="daily", steps=daily_steps())
        plan_id = plan.id
    with sop_world.db() as s:
        plan, steps = service.plan_steps(s, sop_world.scope("owner"), plan_id)
    assert plan.kind == PlanKind.DAILY
    assert steps == daily_steps()


def test_a_campaign_keeps_phases_and_day_offsets(sop_world: SopWorld) -> None:
    with unit_of_work(sop_world.db) as s:
        plan_id = service.create_plan(s, sop_world.scope(), name="28天营", kind="campaign", steps=campaign_steps()).id
    with sop_world.db() as s:
        _, steps = service.plan_steps(s, sop_world.scope(), plan_id)
    assert steps == campaign_steps()
    assert [s.day for s in steps] == [-7, 0, 14]


@pytest.mark.parametrize(
    ("kind", "bad", "field"),
    [
        ("daily", {"script": "你好 {nickname}"}, "steps[1].script"),
        ("daily", {"script": "你好 {group_name"}, "steps[1].script"),
        ("daily", {"prompt": "回复 {answer}"}, "steps[1].prompt"),
        ("daily", {"category": " "}, "steps[1].category"),
        ("daily", {"day": 3}, "steps[1].day"),
        ("daily", {"script": "", "materials": ()}, "steps[1].script"),
        ("campaign", {"day": None}, "steps[1].day"),
        ("campaign", {"day": 400}, "steps[1].day"),
    ],
)
def test_a_bad_step_is_named_and_nothing_is_written(
    sop_world: SopWorld, kind: str, bad: dict[str, object], field: str
) -> None:
    steps = daily_steps() if kind == "daily" else campaign_steps()
    steps[1] = replace(steps[1], **bad)  # type: ignore[arg-type]
    with sop_world.db() as s:
        with pytest.raises(InvalidInput) as caught:
            service.create_plan(s, sop_world.scope(), name="坏计划", kind=kind, steps=steps)
        s.rollback()
        assert caught.value.field == field
        assert s.scalar(select(func.count()).select_from(SopPlan)) == 0
        assert s.scalar(select(func.count()).select_from(SopStep)) == 0


def test_only_leads_and_admins_edit_plans(sop_world: SopWorld) -> None:
    for who in ("owner", "operator", "analyst"):
        with sop_world.db() as s, pytest.raises(Forbidden):
            service.create_plan(s, sop_world.scope(who), name="x", kind="daily", steps=daily_steps())
    with unit_of_work(sop_world.db) as s:
        plan_id = service.create_plan(s, sop_world.scope(), name="日常", kind="daily", steps=daily_steps()).id
    with sop_world.db() as s, pytest.raises(Forbidden):
        service.replace_steps(s, sop_world.scope("owner"), plan_id, daily_steps())
    with sop_world.db() as s, pytest.raises(Forbidden):
        service.pause_plan(s, sop_world.scope("analyst"), plan_id, True)


def test_names_are_unique_and_other_organisations_see_nothing(sop_world: SopWorld) -> None:
    from qunyun.auth.scope import Scope
    from qunyun.models import Role
    from qunyun.team.service import create_organisation

    with unit_of_work(sop_world.db) as s:
        plan_id = service.create_plan(s, sop_world.scope(), name="日常", kind="daily", steps=daily_steps()).id
        other = create_organisation(s, name="别家", slug="other").id
    with sop_world.db() as s, pytest.raises(Conflict) as caught:
        service.create_plan(s, sop_world.scope(), name=" 日常 ", kind="daily", steps=daily_steps())
    assert caught.value.field == "name"
    with sop_world.db() as s, pytest.raises(NotFound):
        service.plan_steps(s, Scope(staff_id=0, org_id=other, role=Role.LEAD), plan_id)


def test_unknown_kind_and_empty_quiet_hours_are_refused(sop_world: SopWorld) -> None:
    with sop_world.db() as s, pytest.raises(InvalidInput) as caught:
        service.create_plan(s, sop_world.scope(), name="x", kind="weekly", steps=daily_steps())
    assert caught.value.field == "kind"
    with sop_world.db() as s, pytest.raises(InvalidInput) as caught:
        service.create_plan(
            s, sop_world.scope(), name="x", kind="daily", steps=daily_steps(), quiet_hours=QuietHours(time(8), time(8))
        )
    assert caught.value.field == "quiet_hours"


def test_a_staff_step_needs_no_script(sop_world: SopWorld) -> None:
    steps = [
        StepSpec(
            at=time(9), category="开群流程", title="建群后发群公告", executor=Executor.OWNER, evidence_required=True
        )
    ]
    with unit_of_work(sop_world.db) as s:
        plan = service.create_plan(s, sop_world.scope(), name="开群", kind="daily", steps=steps)
        assert plan.id

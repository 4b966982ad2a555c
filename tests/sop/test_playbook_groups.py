"""A group created from a playbook runs the SOP plans attached to the playbook from the start,
without waiting for the hourly extension pass."""

from __future__ import annotations

from qunyun.db.session import unit_of_work
from qunyun.groups.schemas import GroupCreate
from qunyun.groups.service import create_group
from qunyun.sop import service
from tests.sop.conftest import SopWorld, daily_steps, tomorrow


def test_a_group_created_from_a_playbook_gets_its_plans(sop_world: SopWorld) -> None:
    with unit_of_work(sop_world.db) as s:
        plan = service.create_plan(s, sop_world.scope(), name="日常节奏", kind="daily", steps=daily_steps())
        service.attach(s, sop_world.scope(), plan.id, playbook_id=sop_world.playbook_id, start=tomorrow())
    with unit_of_work(sop_world.db) as s:
        group = create_group(
            s,
            sop_world.scope(),
            GroupCreate(external_id="NEW-1", name="新群", playbook_id=sop_world.playbook_id),
        )
        group_id = group.id
    rows = sop_world.runs(group_id=group_id)
    assert rows and {r.plan_id for r in rows} == {plan.id}
    # A group of no playbook gets nothing.
    with unit_of_work(sop_world.db) as s:
        other = create_group(s, sop_world.scope(), GroupCreate(external_id="NEW-2", name="别的群")).id
    assert sop_world.runs(group_id=other) == []

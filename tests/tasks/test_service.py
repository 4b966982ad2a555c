"""The task service: who gets a task, titles in the reader's language, views and counts, who
sees what, and reminders and escalation at an injected time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select, update

from qunyun.auth.scope import Scope
from qunyun.errors import InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import Role, Staff, StaffGroupAssignment, StaffTask, StaffTaskEvent, TaskStatus
from qunyun.tasks import service
from qunyun.tasks.titles import action_task_title, render_title
from tests.api.conftest import World
from tests.tasks.conftest import load, open_in

# 10:00 in Asia/Shanghai, the day after tomorrow: after the tasks are opened (at the real time).
NOW = datetime.combine(datetime.now(UTC).date() + timedelta(days=2), time(2, 0), UTC)


def scope_of(world: World, who: str) -> Scope:
    with world.db() as s:
        staff = s.get(Staff, world.staff[who])
        assert staff is not None
        return Scope(staff_id=staff.id, org_id=staff.org_id, role=Role(staff.role))


def test_a_task_goes_to_the_group_owner_else_an_assigned_admin_else_the_lead(world: World) -> None:
    assert load_assignee(world, open_in(world, "g1")) == world.staff["owner"]
    # Gamma has no owner: nobody manages it yet, so the lead gets its tasks …
    assert load_assignee(world, open_in(world, "g3")) == world.staff["lead"]
    # … until an admin is assigned (an operator is not enough).
    with world.db() as s:
        for who, role in (("operator", "operator"), ("admin", "admin")):
            group = world.groups["g3"]
            s.add(StaffGroupAssignment(staff_id=world.staff[who], group_id=group, role=role, created_at=NOW))
        s.commit()
    assert load_assignee(world, open_in(world, "g3")) == world.staff["admin"]
    # A task of no group goes to the lead; an explicit assignee wins.
    assert load_assignee(world, open_in(world, None)) == world.staff["lead"]
    assert load_assignee(world, open_in(world, "g1", assignee="operator")) == world.staff["operator"]
    # An owner who left (inactive) is passed over for the admin assigned to the group.
    with world.db() as s:
        s.execute(update(Staff).where(Staff.id == world.staff["owner"]).values(is_active=False))
        s.commit()
    assert load_assignee(world, open_in(world, "g1")) == world.staff["admin"]


def load_assignee(world: World, task_id: int) -> int | None:
    with world.db() as s:
        return load(s, task_id).assignee_id


def test_open_task_refuses_another_organisations_group_staff_and_unknown_kinds(world: World) -> None:
    with world.db() as s:
        for values, field in (
            ({"group_id": world.groups["gb1"]}, "group_id"),
            ({"assignee_id": world.staff["lead_b"]}, "assignee_id"),
            ({"kind": "make_coffee"}, "kind"),
        ):
            arguments = {"org_id": world.org_a, "kind": "other", "title": "x", "detail": {}, **values}
            with pytest.raises(InvalidInput) as error:
                service.open_task(s, **arguments)
            assert error.value.field == field


def test_titles_are_messages_rendered_in_the_readers_language(world: World) -> None:
    title = action_task_title("kick", "platform_action", "wecom", group="读书会 1 群", member="张三")
    task_id = open_in(world, "g1", title=title, kind="platform_action")
    with world.db() as s:
        task = load(s, task_id)
        assert task.title == "Remove 张三 from 读书会 1 群 (by hand on WeCom)"
        assert render_title(task, "zh") == "将 张三 移出「读书会 1 群」（在企业微信上手动完成）"
        assert render_title(task, "en") == task.title
    confirm = action_task_title("send_group_message", "confirm_send", "wecom", group="A")
    assert str(confirm) == "Confirm the send on WeCom: Post in A"
    assert confirm.render("zh") == "在企业微信上确认发送：在「A」发消息"
    uncertain = action_task_title("send_welcome", "uncertain_send", "telegram", group="A", member="B")
    assert str(uncertain) == "May have been sent on Telegram: check and confirm: Welcome B in A"
    # A platform without a display name shows its code; a plain title (older rows) stays as it is.
    assert "on acme-chat" in str(action_task_title("mute", "platform_action", "acme-chat", group="A", member="B"))
    with world.db() as s:
        assert render_title(load(s, open_in(world, "g1", title="Call 李雷")), "zh") == "Call 李雷"


@pytest.mark.parametrize(
    "action",
    [
        "send_group_message",
        "send_welcome",
        "set_welcome_message",
        "delete_message",
        "mute",
        "unmute",
        "kick",
        "create_group",
        "create_invite_link",
        "revoke_invite_link",
        "set_tags",
        "sync_intercept_rules",
    ],
)
def test_every_action_kind_has_a_title_in_both_languages(action: str) -> None:
    from qunyun.connectors import ActionKind
    from qunyun.locale import catalogue

    assert action in {k.value for k in ActionKind}
    for lang in ("zh", "en"):
        assert f"task.title.{action}" in catalogue(lang)
        for kind in ("platform_action", "confirm_send", "uncertain_send"):
            rendered = action_task_title(action, kind, "wecom", group="G", member="M", name="N").render(lang)
            assert "{" not in rendered and "task." not in rendered


def test_views_and_counts_follow_the_clock(world: World) -> None:
    overdue = open_in(world, "g1", due_at=NOW - timedelta(hours=1))
    today = open_in(world, "g1", due_at=NOW + timedelta(hours=3))
    later = open_in(world, "g1", due_at=NOW + timedelta(days=3))
    undated = open_in(world, "g2")
    done = open_in(world, "g1")
    owner = scope_of(world, "owner")
    with world.db() as s:
        service.complete(s, owner, done, evidence_text="已发")
        s.commit()
        ids = {view: [i.task.id for i in service.list_tasks(s, owner, view=view, now=NOW)[0]] for view in service.VIEWS}
        assert ids == {
            "today": [today, undated],
            "overdue": [overdue],
            "done": [done],
            "open": [overdue, today, later, undated],
            "new": [],  # nothing reminded or escalated yet
        }
        assert service.view_counts(s, owner, now=NOW) == {"today": 2, "overdue": 1, "done": 1, "open": 4, "new": 0}
        lead = scope_of(world, "lead")
        counts = service.counts(s, lead, [world.staff["owner"], world.staff["lead"]], NOW)
        assert counts == {world.staff["owner"]: (4, 1)}
        with pytest.raises(InvalidInput) as error:
            service.list_tasks(s, owner, view="tomorrow")
        assert error.value.field == "view"


def test_who_sees_a_task(world: World) -> None:
    alpha = open_in(world, "g1")  # the owner's group; the admin and the operator are assigned to it
    mine = open_in(world, "g1", assignee="operator")
    gamma = open_in(world, "g3")  # no owner: the lead's
    rival = open_in(world, "gb1", org="b")
    with world.db() as s:
        visible = {
            who: {i.task.id for i in service.list_tasks(s, scope_of(world, who), view="open")[0]}
            for who in ("lead", "analyst", "owner", "admin", "operator", "lead_b", "operator_b")
        }
    assert visible["lead"] == visible["analyst"] == {alpha, mine, gamma}
    assert visible["owner"] == visible["admin"] == {alpha, mine}
    assert visible["operator"] == {mine}
    assert visible["lead_b"] == {rival} and visible["operator_b"] == set()
    with world.db() as s:
        for who, task_id in (("operator", alpha), ("owner", gamma), ("lead", rival), ("lead", 10**9)):
            with pytest.raises(NotFound):
                service.get_task(s, scope_of(world, who), task_id)


def test_reminders_then_one_escalation_to_the_lead(world: World) -> None:
    due = NOW + timedelta(hours=2)
    task_id = open_in(world, "g1", due_at=due)
    grace = timedelta(hours=1)
    with world.db() as s:
        assert load(s, task_id).remind_at == due - timedelta(hours=1)  # QUNYUN_TASK_REMIND_BEFORE_MINUTES
        assert service.remind_and_escalate(s, NOW, grace=grace).reminded == []
        sweep = service.remind_and_escalate(s, due - timedelta(minutes=30), grace=grace)
        assert sweep.reminded == [task_id] and sweep.escalated == []
        task = load(s, task_id)
        assert task.reminded == 1 and task.remind_at == due - timedelta(minutes=30) + service.REMIND_EVERY
        # Overdue, but within the grace: not escalated yet.
        assert service.remind_and_escalate(s, due + timedelta(minutes=59), grace=grace).escalated == []
        sweep = service.remind_and_escalate(s, due + timedelta(minutes=61), grace=grace)
        assert sweep.escalated == [task_id]
        assert task.escalated_to_id == world.staff["lead"] and task.assignee_id == world.staff["owner"]
        assert task.escalated_at == due + timedelta(minutes=61)
        # Once only; the reminders stop after MAX_REMINDERS.
        later = [service.remind_and_escalate(s, due + timedelta(days=d), grace=grace) for d in range(1, 6)]
        assert all(sweep.escalated == [] for sweep in later)
        assert task.reminded == service.MAX_REMINDERS and task.remind_at is None
        kinds = [e.kind for e in s.scalars(select(StaffTaskEvent).where(StaffTaskEvent.task_id == task_id))]
        assert kinds == ["created", "reminded", "escalated", "reminded", "reminded"]
        s.commit()
    # The lead now sees it among the tasks escalated to them; a done task is never reminded.
    with world.db() as s:
        service.complete(s, scope_of(world, "owner"), task_id)
        assert service.remind_and_escalate(s, due + timedelta(days=30), grace=grace).reminded == []


def test_no_lead_no_escalation(world: World) -> None:
    task_id = open_in(world, "gb1", org="b", due_at=NOW)
    with world.db() as s:
        s.execute(update(Staff).where(Staff.id == world.staff["lead_b"]).values(is_active=False))
        assert service.remind_and_escalate(s, NOW + timedelta(days=1), grace=timedelta(0)).escalated == []
        assert load(s, task_id).escalated_at is None


def test_close_for_action_closes_only_open_tasks(world: World) -> None:
    with world.db() as s:
        from qunyun.models import OutboundAction

        action = OutboundAction(
            org_id=world.org_a,
            platform="api",
            action="kick",
            payload={},
            idempotency_key="k",
            state="delegated",
            attempts=0,
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(action)
        s.flush()
        first = service.open_task(
            s, org_id=world.org_a, kind="platform_action", title=Msg("task.title.kick", group="A", member="B", name=""),
            detail={}, outbound_action_id=action.id,
        )  # fmt: skip
        second = service.open_task(
            s, org_id=world.org_a, kind="platform_action", title="again", detail={}, outbound_action_id=action.id
        )
        second.status = TaskStatus.CANCELLED.value
        assert service.close_for_action(s, action.id, TaskStatus.DONE) == 1
        assert first.status == "done" and first.done_at is not None and second.status == "cancelled"
        assert service.close_for_action(s, action.id, TaskStatus.CANCELLED) == 0
        assert s.scalar(select(StaffTask.status).where(StaffTask.id == first.id)) == TaskStatus.DONE

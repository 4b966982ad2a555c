"""What dispatch writes for people reads in their language: a task's reason and the history of
the send behind it are stored as catalogue messages, shown in Chinese by default and in English
when switched, on the task inbox and through the API; rows stored as plain text still show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import qunyun.connectors.tasks  # noqa: F401  (registers the job handlers)
from qunyun.connections.service import default_connection
from qunyun.connectors import get_profile
from qunyun.connectors.dispatch import history, prepare, request_action
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.models import Group, Member, OutboundActionTransition, StaffTask
from qunyun.worker.queue import handler_for
from tests.api.conftest import World, api_app, client, console_login, password_hash, world

__all__ = ["api_app", "client", "password_hash", "world"]


def card(html: str, task_id: int) -> str:
    match = re.search(rf'<li class="task card" id="task-{task_id}".*?</li>', html, re.S)
    assert match, f"task {task_id} not on the page"
    return match.group(0)


def on_platform(world: World, platform: str) -> tuple[int, int]:
    """A group owned by ``owner`` with a member, on organisation A's default ``platform`` connection."""
    with world.db() as s:
        connection = default_connection(s, world.org_a, platform)
        group = Group(
            org_id=world.org_a,
            platform=platform,
            connection_id=connection.id,
            external_id=f"{platform}-g",
            name="读书会 1 群",
            owner_id=world.staff["owner"],
            created_at=datetime.now(UTC),
        )
        member = Member(
            org_id=world.org_a,
            platform=platform,
            external_id=f"{platform}-m",
            display_name="张三",
            first_seen_at=datetime.now(UTC),
        )
        s.add_all([group, member])
        s.commit()
        return group.id, member.id


@pytest.fixture
def wecom_kick(world: World) -> Iterator[int]:
    """A kick on WeCom (no API for it): delegated to the group's owner; yields the task id."""
    group_id, member_id = on_platform(world, "wecom")
    with world.db() as s:
        connection = default_connection(s, world.org_a, "wecom")
        with bind(connection.id, SimulatorConnector(seed=1, profile=get_profile("wecom"))):
            action = request_action(
                s, world.org_a, "kick", group_id=group_id, member_id=member_id, payload={}, idempotency_key="kick-1"
            )
        s.commit()
        yield s.scalars(select(StaffTask.id).where(StaffTask.outbound_action_id == action.id)).one()


def test_a_delegated_task_says_why_in_the_readers_language(client: TestClient, world: World, wecom_kick: int) -> None:
    with world.db() as s:
        task = s.get_one(StaffTask, wecom_kick)
        # The English text stays in the detail for raw readers, next to the message.
        assert task.detail["reason"].startswith("WeCom cannot do this by API (missing: kick). No API removes")
        assert task.detail["reason_msg"]["$msg"] == "sends.reason.with_note"
    console_login(client, "owner")
    chinese = card(client.get("/tasks?view=open").text, wecom_kick)
    assert "企业微信无法通过接口完成此操作（缺少：kick）。没有接口能把成员移出客户群：由群主在客户端操作。" in chinese
    assert "cannot do this" not in chinese
    english = card(client.get("/tasks?view=open&lang=en").text, wecom_kick)
    assert "WeCom cannot do this by API (missing: kick). No API removes a member from a customer group" in english
    assert "发送记录" not in english and "History of the send" in english
    assert "handed to a person" in english and "已转人工" in chinese


def test_the_api_gives_the_reason_in_the_language_asked(client: TestClient, world: World, wecom_kick: int) -> None:
    url = f"/api/v1/tasks/{wecom_kick}"
    english = client.get(url, headers=world.headers("owner")).json()
    assert english["reason"].startswith("WeCom cannot do this by API")
    chinese = client.get(url, headers={**world.headers("owner"), "Accept-Language": "zh-CN"}).json()
    assert chinese["reason"].startswith("企业微信无法通过接口完成此操作")
    listed = client.get("/api/v1/tasks?view=open", headers={**world.headers("owner"), "Accept-Language": "zh"}).json()
    assert [t["reason"] for t in listed["items"] if t["id"] == wecom_kick] == [chinese["reason"]]


def test_an_uncertain_send_shows_its_history(client: TestClient, world: World) -> None:
    group_id, _ = on_platform(world, "simulator")
    platform = SimulatorConnector(seed=1)
    platform.sim.create_group("simulator-g", group_id="simulator-g")
    with world.db() as s:
        connection = default_connection(s, world.org_a, "simulator")
        with bind(connection.id, platform):
            action = request_action(
                s, world.org_a, "send_group_message", group_id=group_id, payload={"text": "早安"}, idempotency_key="k"
            )
            assert prepare(s, action.id) is not None  # the worker dies after committing "sending"
            handler = handler_for("connectors.perform")
            assert handler is not None
            handler(s, {"action_id": action.id})
        assert action.state == "uncertain"
        task_id = s.scalars(select(StaffTask.id).where(StaffTask.outbound_action_id == action.id)).one()
        assert [t.detail_key for t in history(s, action.id)] == [
            "sends.history.requested",
            None,  # queued: nothing to say
            "sends.history.attempt",
            "sends.reason.cannot_tell",
        ]
        s.commit()
    console_login(client, "owner")
    chinese = card(client.get("/tasks?view=open").text, task_id)
    assert "第 1 次尝试可能已到达模拟平台，而平台无法告知结果：请核对并确认" in chinese
    assert "发送中 → 待核对" in chinese and "排队中 → 发送中 · 第 1 次尝试" in chinese
    english = card(client.get("/tasks?view=open&lang=en").text, task_id)
    assert "sending → to check · attempt 1 may have reached Simulator, which cannot tell: check and confirm" in english


def test_rows_stored_as_plain_text_still_show(client: TestClient, world: World, wecom_kick: int) -> None:
    """History is append-only: rows from before messages keep their English text and show it."""
    with world.db() as s:
        task = s.get_one(StaffTask, wecom_kick)
        task.detail = {**task.detail, "reason": "WeCom cannot do this by API (missing: kick)", "reason_msg": None}
        for change in s.scalars(
            select(OutboundActionTransition).where(OutboundActionTransition.action_id == task.outbound_action_id)
        ):
            if change.to_state == "delegated":
                change.detail, change.detail_key, change.detail_values = "an old reason", None, None
        s.commit()
    console_login(client, "owner")
    html = card(client.get("/tasks?view=open").text, wecom_kick)
    assert "WeCom cannot do this by API (missing: kick)" in html
    assert "已转人工 · an old reason" in html
    api = client.get(f"/api/v1/tasks/{wecom_kick}", headers={**world.headers("owner"), "Accept-Language": "zh"})
    assert api.json()["reason"] == "WeCom cannot do this by API (missing: kick)"

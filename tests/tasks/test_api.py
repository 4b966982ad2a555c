"""/api/v1/tasks: lists in the caller's scope, completion with evidence that confirms the action
behind the task, upload limits that name the field, and who may see and complete what."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.connections.service import default_connection
from qunyun.connectors import get_profile
from qunyun.connectors.dispatch import request_action
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.models import Group, Member, OutboundAction, StaffTask
from tests.api.conftest import World
from tests.tasks.conftest import PNG, load, open_in

SIX_MIB = 6 * 1024 * 1024


def delegated_kick(world: World) -> tuple[int, int]:
    """A kick on WeCom, which has no API for it: the action is delegated to a task for the owner
    of the group. Returns (action id, task id)."""
    now = datetime.now(UTC)
    with world.db() as s:
        connection = default_connection(s, world.org_a, "wecom")
        group = Group(
            org_id=world.org_a,
            platform="wecom",
            external_id="wr-1",
            name="企微 1 群",
            owner_id=world.staff["owner"],
            connection_id=connection.id,
            created_at=now,
        )
        member = Member(
            org_id=world.org_a, platform="wecom", external_id="wm-1", display_name="张三", first_seen_at=now
        )
        s.add_all([group, member])
        s.flush()
        # The connection's connector has WeCom's declared capabilities, whatever another test left
        # in this process's connector cache.
        with bind(connection.id, SimulatorConnector(seed=1, profile=get_profile("wecom"))):
            action = request_action(
                s,
                world.org_a,
                "kick",
                group_id=group.id,
                member_id=member.id,
                payload={"reason": "发广告 3 次"},
                idempotency_key="moderation:kick:1",
            )
        assert action.state == "delegated"
        task = s.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action.id)).one()
        assert task.assignee_id == world.staff["owner"]
        s.commit()
        return action.id, task.id


def test_completing_a_delegated_task_through_the_api_confirms_the_action(client: TestClient, world: World) -> None:
    action_id, task_id = delegated_kick(world)
    listed = client.get("/api/v1/tasks?view=today", headers=world.headers("owner")).json()
    assert [t["id"] for t in listed["items"]] == [task_id] and listed["total"] == 1
    assert listed["items"][0]["kind"] == "platform_action" and listed["items"][0]["group_name"] == "企微 1 群"

    response = client.post(
        f"/api/v1/tasks/{task_id}/complete",
        headers=world.headers("owner"),
        files={"evidence_image": ("done.png", PNG, "image/png")},
        data={"evidence_text": "已在企业微信里移出"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "done" and body["completed_by_id"] == world.staff["owner"]
    assert body["evidence_text"] == "已在企业微信里移出" and body["has_evidence_image"] is True
    with world.db() as s:
        action = s.get(OutboundAction, action_id)
        assert action is not None and action.state == "confirmed"
    image = client.get(f"/api/v1/tasks/{task_id}/evidence", headers=world.headers("owner"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content == PNG
    # A second completion (a double tap) changes nothing.
    again = client.post(f"/api/v1/tasks/{task_id}/complete", headers=world.headers("owner"), json={})
    assert again.status_code == 200 and again.json()["completed_at"] == body["completed_at"]
    assert client.get("/api/v1/tasks?view=done", headers=world.headers("owner")).json()["total"] == 1


def test_a_task_can_be_completed_without_confirming_its_action(client: TestClient, world: World) -> None:
    action_id, task_id = delegated_kick(world)
    response = client.post(
        f"/api/v1/tasks/{task_id}/complete",
        headers=world.headers("lead"),
        json={"confirm_action": False, "evidence_link": "https://work.weixin.qq.com/x"},
    )
    assert response.status_code == 200 and response.json()["evidence_link"] == "https://work.weixin.qq.com/x"
    with world.db() as s:
        action = s.get(OutboundAction, action_id)
        assert action is not None and action.state == "delegated"


def test_evidence_limits_name_the_field(client: TestClient, world: World) -> None:
    task_id = open_in(world, "g1")
    url = f"/api/v1/tasks/{task_id}/complete"
    owner = world.headers("owner")
    too_big = client.post(url, headers=owner, files={"evidence_image": ("big.png", PNG + b"\0" * SIX_MIB, "image/png")})
    assert too_big.status_code == 413 and too_big.json()["field"] == "evidence_image"
    not_image = client.post(url, headers=owner, files={"evidence_image": ("notes.txt", b"hello", "image/png")})
    assert not_image.status_code == 422 and not_image.json()["field"] == "evidence_image"
    as_json = client.post(url, headers=owner, json={"evidence_image_base64": base64.b64encode(b"GIF89a").decode()})
    assert as_json.status_code == 422 and as_json.json()["field"] == "evidence_image"
    bad_base64 = client.post(url, headers=owner, json={"evidence_image_base64": "**"})
    assert bad_base64.status_code == 422 and bad_base64.json()["field"] == "evidence_image_base64"
    for link in ("javascript:alert(1)", "ftp://x", "https://" + "x" * 2000):
        bad_link = client.post(url, headers=owner, json={"evidence_link": link})
        assert bad_link.status_code == 422 and bad_link.json()["field"] == "evidence_link", link
    long_text = client.post(url, headers=owner, data={"evidence_text": "字" * 2001})
    assert long_text.status_code == 422 and long_text.json()["field"] == "evidence_text"
    unknown = client.post(url, headers=owner, json={"evidence": "x"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "evidence"
    # Nothing of the refused attempts was kept; a WebP through JSON is fine.
    with world.db() as s:
        task = load(s, task_id)
        assert task.status == "open" and task.evidence_image is None and task.evidence_link is None
    webp = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\0" * 16
    ok = client.post(url, headers=owner, json={"evidence_image_base64": base64.b64encode(webp).decode()})
    assert ok.status_code == 200 and ok.json()["has_evidence_image"] is True
    image = client.get(f"/api/v1/tasks/{task_id}/evidence", headers=owner)
    assert image.headers["content-type"] == "image/webp"


def test_who_may_see_and_complete_a_task(client: TestClient, world: World) -> None:
    alpha = open_in(world, "g1", due_at=datetime.now(UTC) - timedelta(hours=1))  # the owner's
    for who in ("operator", "lead_b", "operator_b"):
        assert client.get(f"/api/v1/tasks/{alpha}", headers=world.headers(who)).status_code == 404, who
        denied = client.post(f"/api/v1/tasks/{alpha}/complete", headers=world.headers(who), json={})
        assert denied.status_code == 404, who
        assert client.get(f"/api/v1/tasks/{alpha}/evidence", headers=world.headers(who)).status_code == 404
        assert alpha not in [t["id"] for t in client.get("/api/v1/tasks", headers=world.headers(who)).json()["items"]]
    # The analyst reads every task but may not complete one.
    assert client.get(f"/api/v1/tasks/{alpha}", headers=world.headers("analyst")).json()["overdue"] is True
    assert client.post(f"/api/v1/tasks/{alpha}/complete", headers=world.headers("analyst"), json={}).status_code == 403
    # A missing task and an out-of-range id look the same as another's.
    for missing in (10**9, 2**63):
        assert client.get(f"/api/v1/tasks/{missing}", headers=world.headers("lead")).status_code == 404
    # The group's admin completes it for the owner; nobody is signed in: 401.
    assert client.post(f"/api/v1/tasks/{alpha}/complete", json={}).status_code == 401
    done = client.post(f"/api/v1/tasks/{alpha}/complete", headers=world.headers("admin"), json={})
    assert done.status_code == 200 and done.json()["completed_by_id"] == world.staff["admin"]


def test_list_filters_and_bad_parameters(client: TestClient, world: World) -> None:
    mine = open_in(world, "g1", assignee="operator")
    open_in(world, "g1")
    lead = world.headers("lead")
    only = client.get(f"/api/v1/tasks?assignee={world.staff['operator']}", headers=lead).json()
    assert [t["id"] for t in only["items"]] == [mine]
    bad = client.get("/api/v1/tasks?view=tomorrow", headers=lead)
    assert bad.status_code == 422 and bad.json()["field"] == "view"
    chinese = client.get(f"/api/v1/tasks/{mine}", headers={**lead, "Accept-Language": "zh-CN"})
    assert chinese.status_code == 200

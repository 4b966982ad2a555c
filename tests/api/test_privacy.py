"""A member's personal data: exported whole and erased on request, by the lead only (PIPL).

Erasure removes what identifies the person (name, persona, platform id, tags, message texts,
live-code answers, moderation evidence, their name in actions and tasks) and keeps the facts the
figures are built from under the internal id, so past days' figures do not change."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from qunyun.cli import app as cli_app
from qunyun.models import (
    AuditLog,
    Event,
    EventKind,
    Group,
    Member,
    MembershipSpan,
    MessageText,
    MsgType,
    Order,
    OutboundAction,
    StaffTask,
    Tagging,
)
from tests.api.conftest import World, console_login, csrf_from

T1 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
TEXT = "我的手机号是 13800138000，加我微信"


@pytest.fixture
def held(world: World) -> World:
    """m1 of the API world, with a message (text kept), an order, and an action and task naming them."""
    with world.db() as s:
        member = s.get(Member, world.members["m1"])
        assert member is not None
        member.display_name, member.occupation, member.region = "张小明", "教师", "上海"
        message = Event(
            org_id=world.org_a,
            external_id="msg-1",
            kind=int(EventKind.MESSAGE_POSTED),
            ts=T1,
            day=20260305,
            group_id=world.groups["g1"],
            member_id=member.id,
            msg_type=int(MsgType.TEXT),
            length=len(TEXT),
            source="test",
        )
        s.add(message)
        s.flush()
        s.add(MessageText(event_id=message.id, ts=T1, text=TEXT))
        s.add(
            Order(
                org_id=world.org_a,
                external_id="o-1",
                member_id=member.id,
                group_id=world.groups["g1"],
                product="课程",
                amount_fen=9900,
                paid_at=T1,
                event_id=message.id,
            )
        )
        action = OutboundAction(
            org_id=world.org_a,
            platform="api",
            action="send_welcome",
            group_id=world.groups["g1"],
            member_id=member.id,
            payload={"text": "欢迎 @张小明 入群"},
            state="delegated",
            idempotency_key="welcome-m1",
            created_at=T1,
            updated_at=T1,
        )
        s.add(action)
        s.flush()
        s.add(
            StaffTask(
                org_id=world.org_a,
                group_id=world.groups["g1"],
                kind="outbound",
                title="在「Alpha 福利群」欢迎 张小明",
                title_values={"group": "Alpha 福利群", "member": "张小明"},
                detail={"text": "欢迎 @张小明 入群"},
                status="done",
                outbound_action_id=action.id,
                created_at=T1,
            )
        )
        s.commit()
    return world


def test_the_lead_exports_everything_held_about_a_member(client: TestClient, held: World) -> None:
    response = client.get(f"/api/v1/members/{held.members['m1']}/export", headers=held.headers("lead"))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["member"]["display_name"] == "张小明" and data["member"]["external_id"] == "ext-m1"
    assert [t["name"] for t in data["tags"]] == ["VIP"]
    assert [m["group"] for m in data["memberships"]] == ["Alpha 福利群"]
    message = next(e for e in data["events"] if e["id"] == "msg-1")
    assert message["kind"] == "message.posted" and message["text"] == TEXT
    assert data["orders"] == [
        {"id": "o-1", "group_id": held.groups["g1"], "product": "课程", "amount_fen": 9900, "paid_at": T1.isoformat()}
    ]
    assert data["outbound_actions"][0]["payload"] == {"text": "欢迎 @张小明 入群"}
    assert data["tasks"][0]["title"] == "在「Alpha 福利群」欢迎 张小明"


@pytest.mark.parametrize("who", ["owner", "admin", "operator", "analyst"])
def test_only_the_lead_may_export_or_erase(client: TestClient, held: World, who: str) -> None:
    member = held.members["m1"]
    assert client.get(f"/api/v1/members/{member}/export", headers=held.headers(who)).status_code in (403, 404)
    assert client.post(f"/api/v1/members/{member}/erase", headers=held.headers(who)).status_code in (403, 404)
    with held.db() as s:
        assert s.get(Member, member).erased_at is None  # type: ignore[union-attr]


def test_another_organisations_lead_cannot_reach_the_member(client: TestClient, held: World) -> None:
    member = held.members["m1"]
    assert client.get(f"/api/v1/members/{member}/export", headers=held.headers("lead_b")).status_code == 404
    assert client.post(f"/api/v1/members/{member}/erase", headers=held.headers("lead_b")).status_code == 404


def test_erasure_removes_the_person_and_keeps_the_figures(client: TestClient, held: World) -> None:
    member_id = held.members["m1"]
    with held.db() as s:
        members_before = s.get(Group, held.groups["g1"]).member_count  # type: ignore[union-attr]
    response = client.post(f"/api/v1/members/{member_id}/erase", headers=held.headers("lead"))
    assert response.status_code == 200, response.text
    erased = response.json()["erased"]
    assert erased["tags"] == 1 and erased["message_texts"] == 1
    assert erased["outbound_actions"] == 1 and erased["tasks"] == 1
    with held.db() as s:
        member = s.get(Member, member_id)
        assert member is not None and member.erased_at is not None
        assert member.display_name == "" and member.occupation == "" and member.region == ""
        assert member.external_id.startswith("erased:") and "ext-m1" not in member.external_id
        assert s.scalar(select(func.count()).select_from(Tagging).where(Tagging.member_id == member_id)) == 0
        assert s.scalar(select(func.count()).select_from(MessageText)) == 0
        # The facts stay: the message event, the membership, the order, the group's count.
        assert s.scalar(select(Event.length).where(Event.external_id == "msg-1")) == len(TEXT)
        assert s.scalar(select(func.count()).select_from(MembershipSpan).where(MembershipSpan.member_id == member_id))
        assert s.scalar(select(Order.amount_fen).where(Order.external_id == "o-1")) == 9900
        assert s.get(Group, held.groups["g1"]).member_count == members_before  # type: ignore[union-attr]
        action = s.scalars(select(OutboundAction).where(OutboundAction.member_id == member_id)).one()
        task = s.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action.id)).one()
        everything = json.dumps([action.payload, task.title, task.title_values, task.detail], ensure_ascii=False)
        assert "张小明" not in everything and "[已删除]" in everything
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "member.erase")).one()
        assert audit.target_id == str(member_id) and "张小明" not in json.dumps(audit.detail, ensure_ascii=False)
    again = client.post(f"/api/v1/members/{member_id}/erase", headers=held.headers("lead"))
    assert again.status_code == 409 and again.json()["field"] == "member_id"
    exported = client.get(f"/api/v1/members/{member_id}/export", headers=held.headers("lead")).json()
    assert exported["member"]["erased_at"] is not None and exported["member"]["display_name"] == ""
    assert TEXT not in json.dumps(exported, ensure_ascii=False)
    changed = client.patch(f"/api/v1/members/{member_id}", json={"occupation": "x"}, headers=held.headers("lead"))
    assert changed.status_code == 409


def test_the_command_line_exports_and_erases(held: World, tmp_path: Path) -> None:
    runner = CliRunner()
    member = str(held.members["m1"])
    out = tmp_path / "m1.json"
    result = runner.invoke(cli_app, ["privacy", "export", member, "--org", "acme", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8"))["member"]["display_name"] == "张小明"
    refused = runner.invoke(cli_app, ["privacy", "erase", member, "--org", "acme"])
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    done = runner.invoke(cli_app, ["privacy", "erase", member, "--org", "acme", "--yes"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["erased"]["message_texts"] == 1
    other = runner.invoke(cli_app, ["privacy", "erase", str(held.members["mb1"]), "--org", "acme", "--yes"])
    assert other.exit_code != 0 and "Traceback" not in other.output


def test_the_console_offers_export_and_erasure_to_the_lead_only(client: TestClient, held: World) -> None:
    member = held.members["m1"]
    console_login(client, "owner")
    assert "/erase" not in client.get(f"/members/{member}").text
    assert client.get(f"/members/{member}/export").status_code == 403
    client.cookies.clear()
    console_login(client, "lead")
    page = client.get(f"/members/{member}")
    assert f'action="/members/{member}/erase"' in page.text
    download = client.get(f"/members/{member}/export")
    assert download.status_code == 200 and "attachment" in download.headers["content-disposition"]
    assert json.loads(download.text)["member"]["id"] == member
    forged = client.post(f"/members/{member}/erase", data={"csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    token = csrf_from(page.text)
    unticked = client.post(f"/members/{member}/erase", data={"csrf_token": token}, follow_redirects=False)
    assert unticked.status_code == 422
    done = client.post(f"/members/{member}/erase", data={"csrf_token": token, "confirm": "1"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?done=erased")
    after = client.get(done.headers["location"]).text
    assert "张小明" not in after and f'action="/members/{member}/erase"' not in after

"""POST /api/v1/events (interchange format v1, JSON array or JSON Lines) and GET /api/v1/events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.api.conftest import World, csrf_from


def _joined(event_id: str, group: str, member: str, ts: str = "2026-03-05T10:00:00+08:00", **extra: Any) -> dict:
    return {"id": event_id, "ts": ts, "kind": "member.joined", "group": group, "member": member, **extra}


def _posted(event_id: str, group: str, member: str, ts: str = "2026-03-05T11:00:00+08:00") -> dict:
    return {
        "id": event_id,
        "ts": ts,
        "kind": "message.posted",
        "group": group,
        "member": member,
        "msg_type": "text",
        "text": "早上好",
    }


def _event_count(world: World) -> int:
    from qunyun.models import Event

    with world.db() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def test_lead_posts_a_json_array_and_reposting_is_idempotent(client: TestClient, world: World) -> None:
    batch = [_joined("e1", "ext-new", "new-member", channel="sms", scene="qr"), _posted("e2", "ext-new", "new-member")]
    response = client.post("/api/v1/events", json=batch, headers=world.headers("lead"))
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 2, "duplicates": 0}
    again = client.post("/api/v1/events", json=batch, headers=world.headers("lead"))
    assert again.json() == {"stored": 0, "duplicates": 2}

    # The new group and member exist now, on platform "api", and the member is in the group.
    groups = client.get("/api/v1/groups", params={"q": "ext-new"}, headers=world.headers("lead")).json()["items"]
    assert [(g["platform"], g["external_id"]) for g in groups] == [("api", "ext-new")]
    members = client.get(f"/api/v1/groups/{groups[0]['id']}/members", headers=world.headers("lead")).json()
    assert [m["external_id"] for m in members["items"]] == ["new-member"]

    from qunyun.models import AuditLog

    with world.db() as s:
        entries = s.scalars(select(AuditLog).where(AuditLog.action == "events.ingest")).all()
    assert [e.detail["stored"] for e in entries] == [2, 0]
    assert all("早上好" not in json.dumps(e.detail, ensure_ascii=False) for e in entries)


def test_json_lines_body(client: TestClient, world: World) -> None:
    lines = "\n".join(json.dumps(e) for e in [_joined("l1", "ext-g1", "ext-m9"), _posted("l2", "ext-g1", "ext-m9")])
    response = client.post(
        "/api/v1/events",
        content=(lines + "\n\n").encode(),
        headers={**world.headers("lead"), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 2


def test_a_bad_line_names_line_and_field_and_nothing_is_stored(client: TestClient, world: World) -> None:
    before = _event_count(world)
    good = json.dumps(_joined("b1", "ext-g1", "ext-m9"))
    bad = json.dumps({"id": "b2", "ts": "2026-03-05T10:00:00+08:00", "kind": "member.joined", "group": "ext-g1"})
    body = f"{good}\n\n{bad}\n"
    response = client.post(
        "/api/v1/events", content=body.encode(), headers={**world.headers("lead"), "Content-Type": "application/jsonl"}
    )
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["field"] == "member"
    assert "line 3" in error["message"]
    assert error["detail"]["line"] == 3
    assert _event_count(world) == before


def test_invalid_json_line(client: TestClient, world: World) -> None:
    body = json.dumps(_joined("j1", "ext-g1", "ext-m9")) + "\n{not json\n"
    response = client.post(
        "/api/v1/events", content=body.encode(), headers={**world.headers("lead"), "Content-Type": "text/plain"}
    )
    assert response.status_code == 422
    assert "line 2" in response.json()["message"]


def test_array_body_errors(client: TestClient, world: World) -> None:
    lead = world.headers("lead")
    not_array = client.post("/api/v1/events", json={"id": "x"}, headers=lead)
    assert not_array.status_code == 422 and not_array.json()["field"] == "body"
    assert client.post("/api/v1/events", json=[], headers=lead).status_code == 422
    not_object = client.post("/api/v1/events", json=[_joined("o1", "ext-g1", "m"), 5], headers=lead)
    assert not_object.status_code == 422 and "event 1" in not_object.json()["message"]
    unknown_kind = client.post(
        "/api/v1/events", json=[{"id": "k1", "ts": "2026-03-05T10:00:00+08:00", "kind": "nope"}], headers=lead
    )
    assert unknown_kind.status_code == 422
    assert unknown_kind.json()["field"] == "kind"
    wrong_type = client.post("/api/v1/events", content=b"<xml/>", headers={**lead, "Content-Type": "application/xml"})
    assert wrong_type.status_code == 415


@pytest.mark.parametrize("who", ["owner", "admin", "operator", "analyst"])
def test_only_leads_and_integrations_post_events(client: TestClient, world: World, who: str) -> None:
    # Even for their own group: a member.joined would pull any member into their scope.
    response = client.post("/api/v1/events", json=[_posted("own1", "ext-g2", "ext-m2")], headers=world.headers(who))
    assert response.status_code == 403, response.text
    assert _event_count(world) == 5


def test_owner_cannot_pull_a_member_into_their_scope(client: TestClient, world: World) -> None:
    owner = world.headers("owner")
    m4 = f"/api/v1/members/{world.members['m4']}"
    assert client.get(m4, headers=owner).status_code == 404
    pull = client.post("/api/v1/events", json=[_joined("pull", "ext-g1", "ext-m4")], headers=owner)
    assert pull.status_code == 403
    assert client.get(m4, headers=owner).status_code == 404
    assert client.patch(m4, json={"occupation": "spy"}, headers=owner).status_code == 404


def _integration(client: TestClient, world: World, name: str = "企业微信同步") -> dict[str, Any]:
    created = client.post("/api/v1/integrations", json={"name": name}, headers=world.headers("lead"))
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    assert body["token"].startswith("qya_")
    return body


def test_integration_token_posts_events_for_its_organisation_only(client: TestClient, world: World) -> None:
    integration = _integration(client, world)
    headers = {"Authorization": f"Bearer {integration['token']}"}
    response = client.post("/api/v1/events", json=[_joined("int1", "ext-g3", "ext-m4")], headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    # The events land in the integration's organisation, never another one.
    spans = client.get(f"/api/v1/members/{world.members['m4']}/memberships", headers=world.headers("lead"))
    assert [sp["group_id"] for sp in spans.json()["items"]] == [world.groups["g3"]]
    rival = client.get(f"/api/v1/groups/{world.groups['gb1']}/members", headers=world.headers("lead_b")).json()
    assert "ext-m4" not in json.dumps(rival)
    # It reads nothing and writes nothing else.
    for method, path in (
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/members"),
        ("GET", "/api/v1/events"),
        ("GET", f"/api/v1/groups/{world.groups['g3']}"),
        ("POST", "/api/v1/tags"),
        ("POST", "/api/v1/integrations"),
    ):
        denied = client.request(method, path, headers=headers, json={"name": "x"})
        assert denied.status_code == 403, (method, path, denied.text)


def test_integration_has_no_console_and_no_password(client: TestClient, world: World) -> None:
    from qunyun.models import Staff

    integration = _integration(client, world)
    with world.db() as s:
        staff = s.get(Staff, integration["id"])
        assert staff is not None and staff.role == "integration"
        username = staff.username
    page = client.get("/login")
    csrf = csrf_from(page.text)
    login = client.post(
        "/login", data={"username": username, "password": "", "csrf_token": csrf}, follow_redirects=False
    )
    assert login.status_code != 303
    token_login = client.post("/api/v1/auth/tokens", json={"username": username, "password": "!no-password"})
    assert token_login.status_code in (401, 422)
    # Its token is not a console session either.
    client.cookies.set("qunyun_session", integration["token"])
    assert client.get("/", follow_redirects=False).status_code == 303
    client.cookies.clear()
    # Nor can a lead make a password-holding staff account with the integration role.
    body = {"username": "fake-integration", "password": "a long enough secret", "role": "integration"}
    refused = client.post("/api/v1/staff", json=body, headers=world.headers("lead"))
    assert refused.status_code == 422 and refused.json()["field"] == "role"


def test_only_leads_create_and_disable_integrations(client: TestClient, world: World) -> None:
    for who in ("owner", "admin", "operator", "analyst"):
        denied = client.post("/api/v1/integrations", json={"name": "x"}, headers=world.headers(who))
        assert denied.status_code == 403
    integration = _integration(client, world)
    other_org = client.delete(f"/api/v1/integrations/{integration['id']}", headers=world.headers("lead_b"))
    assert other_org.status_code == 404
    gone = client.delete(f"/api/v1/integrations/{integration['id']}", headers=world.headers("lead"))
    assert gone.status_code == 204
    headers = {"Authorization": f"Bearer {integration['token']}"}
    after = client.post("/api/v1/events", json=[_joined("int2", "ext-g3", "ext-m4")], headers=headers)
    assert after.status_code == 401


def test_platform_query_parameter(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/events?platform=wecom", json=[_joined("p1", "wx-group", "wx-member")], headers=world.headers("lead")
    )
    assert response.status_code == 200
    groups = client.get("/api/v1/groups", params={"q": "wx-group"}, headers=world.headers("lead")).json()["items"]
    assert groups[0]["platform"] == "wecom"
    bad = client.post("/api/v1/events?platform=WeCom!", json=[_joined("p2", "g", "m")], headers=world.headers("lead"))
    assert bad.status_code == 422 and bad.json()["field"] == "platform"


def test_list_events_filters_and_cursor(client: TestClient, world: World) -> None:
    batch = [_posted(f"c{i}", "ext-g1", "ext-m1", ts=f"2026-03-06T{10 + i:02d}:00:00+08:00") for i in range(5)]
    assert client.post("/api/v1/events", json=batch, headers=world.headers("lead")).status_code == 200
    lead = world.headers("lead")

    posted = client.get("/api/v1/events", params={"kind": "message.posted", "limit": 2}, headers=lead).json()
    assert [e["external_id"] for e in posted["items"]] == ["c0", "c1"]
    assert posted["items"][0]["msg_type"] == "text"
    assert "text" not in posted["items"][0]  # message content never leaves through this API
    assert posted["items"][0]["group_external_id"] == "ext-g1"
    page2 = client.get(
        "/api/v1/events", params={"kind": "message.posted", "limit": 2, "cursor": posted["next_cursor"]}, headers=lead
    ).json()
    assert [e["external_id"] for e in page2["items"]] == ["c2", "c3"]

    since = client.get(
        "/api/v1/events",
        params={"kind": "message.posted", "since": "2026-03-06T13:00:00+08:00"},
        headers=lead,
    ).json()
    assert [e["external_id"] for e in since["items"]] == ["c3", "c4"]
    assert since["next_cursor"] is None

    by_member = client.get("/api/v1/events", params={"member": world.members["m1"]}, headers=lead).json()["items"]
    assert {e["member_id"] for e in by_member} == {world.members["m1"]}
    by_group = client.get("/api/v1/events", params={"group": world.groups["g2"]}, headers=lead).json()["items"]
    assert {e["kind"] for e in by_group} == {"member.joined", "member.left"}

    one = client.get(f"/api/v1/events/{world.events['join-g1-m1']}", headers=lead).json()
    assert one["kind"] == "member.joined" and one["scene"] == "qr" and one["channel_id"] == world.channels["sms"]


def test_list_events_bad_filters_name_the_field(client: TestClient, world: World) -> None:
    lead = world.headers("lead")
    bad_kind = client.get("/api/v1/events", params={"kind": "member.exploded"}, headers=lead)
    assert bad_kind.status_code == 422 and bad_kind.json()["field"] == "kind"
    naive = client.get("/api/v1/events", params={"since": "2026-03-06T13:00:00"}, headers=lead)
    assert naive.status_code == 422 and naive.json()["field"] == "since"
    garbage = client.get("/api/v1/events", params={"since": "yesterday"}, headers=lead)
    assert garbage.status_code == 422 and garbage.json()["field"] == "since"
    too_many = client.get("/api/v1/events", params={"limit": 100000}, headers=lead)
    assert too_many.status_code == 422 and too_many.json()["field"] == "limit"


def test_cli_add_integration_prints_a_token_that_posts_events(client: TestClient, world: World) -> None:
    from typer.testing import CliRunner

    from qunyun.cli import app

    result = CliRunner().invoke(app, ["org", "add-integration", "acme", "wecom-sync"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("qya_")
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post("/api/v1/events", json=[_joined("cli1", "ext-g3", "ext-m4")], headers=headers)
    assert response.status_code == 200, response.text
    assert client.get("/api/v1/members", headers=headers).status_code == 403


@pytest.mark.parametrize("change", ["revoked", "expired", "disabled", "demoted"])
def test_a_token_seen_before_is_checked_again_by_each_post(client: TestClient, world: World, change: str) -> None:
    # A token this server has verified goes straight to its organisation's lane; the post's own
    # transaction verifies it again, so a change since refuses the next post, with nothing stored.
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from qunyun.auth.tokens import hash_secret
    from qunyun.models import AuthToken, Staff

    headers = world.headers("lead")
    assert (
        client.post("/api/v1/events", json=[_posted("before", "ext-g1", "ext-m1")], headers=headers).status_code == 200
    )
    now = datetime.now(UTC)
    with world.db() as s:
        token = AuthToken.token_hash == hash_secret(world.token("lead"))
        if change == "revoked":
            s.execute(update(AuthToken).where(token).values(revoked_at=now))
        elif change == "expired":
            s.execute(update(AuthToken).where(token).values(expires_at=now - timedelta(seconds=1)))
        else:
            values = {"is_active": False} if change == "disabled" else {"role": "operator"}
            s.execute(update(Staff).where(Staff.id == world.staff["lead"]).values(**values))
        s.commit()
    count = _event_count(world)
    after = client.post("/api/v1/events", json=[_posted("after", "ext-g1", "ext-m1")], headers=headers)
    assert after.status_code == (403 if change == "demoted" else 401), after.text
    assert _event_count(world) == count

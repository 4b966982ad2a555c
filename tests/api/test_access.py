"""Every denial, on every resource type.

- no credential, a forged, expired or revoked one → 401 (the console redirects to /login)
- another organisation's object → 404, for every role, reads and writes alike
- an operator's (or owner's) unassigned group, and members only seen there → 404
- a read-only role writing → 403; staff management and the audit log for non-leads → 403
- CSRF token missing or wrong on a console form → 403
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import PASSWORD, World, console_login, csrf_from

EVENT_BODY = [
    {
        "id": "access-1",
        "ts": "2026-03-05T10:00:00+08:00",
        "kind": "message.posted",
        "group": "ext-g1",
        "member": "ext-m1",
        "msg_type": "text",
    }
]


def _fmt(world: World, path: str) -> str:
    ids: dict[str, Any] = {
        **world.groups,
        **world.members,
        **world.tags,
        **world.channels,
        **{f"staff_{k}": v for k, v in world.staff.items()},
        **{f"event_{k.replace('-', '_')}": v for k, v in world.events.items()},
    }
    return path.format(**ids)


def _call(client: TestClient, world: World, method: str, path: str, who: str | None, body: Any = None) -> Any:
    headers = world.headers(who) if who else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return client.request(method, _fmt(world, path), **kwargs)


# (method, path, body) for every endpoint of /api/v1.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/me", None),
    ("DELETE", "/api/v1/auth/tokens/current", None),
    ("GET", "/api/v1/groups", None),
    ("POST", "/api/v1/groups", {"external_id": "new", "name": "New"}),
    ("GET", "/api/v1/groups/{g1}", None),
    ("PATCH", "/api/v1/groups/{g1}", {"name": "Renamed"}),
    ("GET", "/api/v1/groups/{g1}/members", None),
    ("GET", "/api/v1/groups/{g1}/memberships", None),
    ("GET", "/api/v1/groups/{g1}/assignments", None),
    ("PUT", "/api/v1/groups/{g1}/assignments", {"assignments": []}),
    ("GET", "/api/v1/members", None),
    ("GET", "/api/v1/members/{m1}", None),
    ("PATCH", "/api/v1/members/{m1}", {"occupation": "teacher"}),
    ("GET", "/api/v1/members/{m1}/memberships", None),
    ("PUT", "/api/v1/members/{m1}/tags/{vip}", None),
    ("DELETE", "/api/v1/members/{m1}/tags/{vip}", None),
    ("GET", "/api/v1/members/{m1}/export", None),
    ("POST", "/api/v1/members/{m1}/erase", None),
    ("GET", "/api/v1/tags", None),
    ("POST", "/api/v1/tags", {"name": "new"}),
    ("GET", "/api/v1/tags/{vip}", None),
    ("GET", "/api/v1/channels", None),
    ("POST", "/api/v1/channels", {"code": "new", "name": "New"}),
    ("GET", "/api/v1/channels/{sms}", None),
    ("PATCH", "/api/v1/channels/{sms}", {"name": "SMS"}),
    ("GET", "/api/v1/events", None),
    ("POST", "/api/v1/events", EVENT_BODY),
    ("GET", "/api/v1/events/{event_join_g1_m1}", None),
    ("GET", "/api/v1/staff", None),
    ("POST", "/api/v1/staff", {"username": "newbie", "password": PASSWORD, "role": "operator"}),
    ("GET", "/api/v1/staff/{staff_owner}", None),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/audit/1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_no_credential_is_401(client: TestClient, world: World, method: str, path: str, body: Any) -> None:
    response = _call(client, world, method, path, None, body)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer qya_forged-token-value", "Bearer ", "Basic bGVhZDpwYXNzd29yZA==", "Token abc"],
)
def test_bad_authorization_header_is_401(client: TestClient, world: World, authorization: str) -> None:
    # A valid session cookie does not rescue a wrong Authorization header.
    console_login(client, "lead")
    response = client.get("/api/v1/groups", headers={"Authorization": authorization})
    assert response.status_code == 401


# Other organisation: lead of A (who sees all of A) asks for B's objects.
OTHER_ORG: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/groups/{gb1}", None),
    ("PATCH", "/api/v1/groups/{gb1}", {"name": "Mine now"}),
    ("GET", "/api/v1/groups/{gb1}/members", None),
    ("GET", "/api/v1/groups/{gb1}/memberships", None),
    ("GET", "/api/v1/groups/{gb1}/assignments", None),
    ("PUT", "/api/v1/groups/{gb1}/assignments", {"assignments": []}),
    ("GET", "/api/v1/members?group={gb1}", None),
    ("GET", "/api/v1/members/{mb1}", None),
    ("PATCH", "/api/v1/members/{mb1}", {"occupation": "spy"}),
    ("GET", "/api/v1/members/{mb1}/memberships", None),
    ("PUT", "/api/v1/members/{mb1}/tags/{vip}", None),
    ("DELETE", "/api/v1/members/{mb1}/tags/{vip}", None),
    ("GET", "/api/v1/members/{mb1}/export", None),
    ("POST", "/api/v1/members/{mb1}/erase", None),
    ("PUT", "/api/v1/members/{m1}/tags/{vip_b}", None),
    ("DELETE", "/api/v1/members/{m1}/tags/{vip_b}", None),
    ("GET", "/api/v1/members?tag={vip_b}", None),
    ("GET", "/api/v1/tags/{vip_b}", None),
    ("GET", "/api/v1/channels/{sms_b}", None),
    ("PATCH", "/api/v1/channels/{sms_b}", {"name": "Mine now"}),
    ("GET", "/api/v1/events/{event_join_gb1_mb1}", None),
    ("GET", "/api/v1/events?group={gb1}", None),
    ("GET", "/api/v1/events?member={mb1}", None),
    ("GET", "/api/v1/staff/{staff_lead_b}", None),
    ("PUT", "/api/v1/groups/{g1}/assignments", {"assignments": [{"staff_id": "{staff_operator_b}"}]}),
]


def _body(world: World, body: Any) -> Any:
    if isinstance(body, dict) and "assignments" in body:
        return {"assignments": [{"staff_id": int(_fmt(world, str(a["staff_id"])))} for a in body["assignments"]]}
    return body


@pytest.mark.parametrize(("method", "path", "body"), OTHER_ORG, ids=[f"{m} {p}" for m, p, _ in OTHER_ORG])
def test_other_organisation_is_404(client: TestClient, world: World, method: str, path: str, body: Any) -> None:
    response = _call(client, world, method, path, "lead", _body(world, body))
    if path.endswith("/assignments") and "{g1}" in path:
        # Assigning a staff member of another organisation: the staff id is "not found" too.
        assert response.status_code == 422
        assert response.json()["field"] == "assignments.0.staff_id"
        return
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("who", ["analyst", "operator_b"])
def test_other_organisation_is_404_for_every_role(client: TestClient, world: World, who: str) -> None:
    # A read-only analyst writing another organisation's group learns nothing: 404, not 403.
    assert (
        _call(
            client,
            world,
            "PATCH",
            "/api/v1/groups/{gb1}" if who == "analyst" else "/api/v1/groups/{g1}",
            who,
            {"name": "x"},
        ).status_code
        == 404
    )
    assert (
        _call(
            client, world, "GET", "/api/v1/members/{m1}" if who == "operator_b" else "/api/v1/members/{mb1}", who
        ).status_code
        == 404
    )


def test_audit_of_another_organisation_is_404(client: TestClient, world: World) -> None:
    from qunyun.models import AuditLog

    # lead_b logs in: an audit entry of organisation B.
    assert client.post("/api/v1/auth/tokens", json={"username": "lead_b", "password": PASSWORD}).status_code == 201
    with world.db() as s:
        entry_b = s.scalar(select(AuditLog.id).where(AuditLog.org_id == world.org_b))
    assert entry_b is not None
    assert _call(client, world, "GET", f"/api/v1/audit/{entry_b}", "lead").status_code == 404
    listed = _call(client, world, "GET", "/api/v1/audit", "lead").json()["items"]
    assert entry_b not in [e["id"] for e in listed]
    assert _call(client, world, "GET", f"/api/v1/audit/{entry_b}", "lead_b").status_code == 200


def test_lists_never_cross_organisations(client: TestClient, world: World) -> None:
    def ids(path: str, who: str = "lead") -> set[int]:
        response = _call(client, world, "GET", path, who)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert ids("/api/v1/groups") == {world.groups[g] for g in ("g1", "g2", "g3")}
    assert ids("/api/v1/members") == {world.members[m] for m in ("m1", "m2", "m3", "m4")}
    assert ids("/api/v1/tags") == {world.tags["vip"]}
    assert ids("/api/v1/channels") == {world.channels["sms"]}
    assert world.events["join-gb1-mb1"] not in ids("/api/v1/events")
    assert ids("/api/v1/staff") == {world.staff[k] for k in ("lead", "owner", "admin", "operator", "analyst")}
    assert ids("/api/v1/groups", "lead_b") == {world.groups["gb1"]}
    assert ids("/api/v1/members", "operator_b") == {world.members["mb1"]}


# Operator: assigned to g1 only. g2 (owner's) and g3 (nobody's) are outside, and so are m2, m3, m4.
OUT_OF_SCOPE: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/groups/{g2}", None),
    ("PATCH", "/api/v1/groups/{g2}", {"name": "Mine now"}),
    ("GET", "/api/v1/groups/{g3}", None),
    ("GET", "/api/v1/groups/{g2}/members", None),
    ("GET", "/api/v1/groups/{g2}/memberships", None),
    ("GET", "/api/v1/groups/{g3}/assignments", None),
    ("GET", "/api/v1/members?group={g2}", None),
    ("GET", "/api/v1/members/{m2}", None),
    ("GET", "/api/v1/members/{m4}", None),
    ("PATCH", "/api/v1/members/{m3}", {"occupation": "x"}),
    ("GET", "/api/v1/members/{m2}/memberships", None),
    ("PUT", "/api/v1/members/{m2}/tags/{vip}", None),
    ("DELETE", "/api/v1/members/{m3}/tags/{vip}", None),
    ("GET", "/api/v1/events?group={g2}", None),
    ("GET", "/api/v1/events?member={m3}", None),
    ("GET", "/api/v1/events/{event_join_g2_m2}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), OUT_OF_SCOPE, ids=[f"{m} {p}" for m, p, _ in OUT_OF_SCOPE])
def test_operator_outside_their_groups_is_404(
    client: TestClient, world: World, method: str, path: str, body: Any
) -> None:
    response = _call(client, world, method, path, "operator", body)
    assert response.status_code == 404, response.text


def test_owner_sees_owned_groups_and_their_past_members_only(client: TestClient, world: World) -> None:
    def get(path: str) -> Any:
        return _call(client, world, "GET", path, "owner")

    assert {g["id"] for g in get("/api/v1/groups").json()["items"]} == {world.groups["g1"], world.groups["g2"]}
    # m2 left g2 but had a span there: still visible to g2's owner.
    assert {m["id"] for m in get("/api/v1/members").json()["items"]} == {world.members["m1"], world.members["m2"]}
    assert get("/api/v1/groups/{g3}").status_code == 404
    assert get("/api/v1/members/{m3}").status_code == 404
    assert get("/api/v1/members/{m4}").status_code == 404


def test_operator_lists_are_scoped(client: TestClient, world: World) -> None:
    def items(path: str) -> list[dict[str, Any]]:
        response = _call(client, world, "GET", path, "operator")
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    assert [g["id"] for g in items("/api/v1/groups")] == [world.groups["g1"]]
    assert [m["id"] for m in items("/api/v1/members")] == [world.members["m1"]]
    assert {e["group_id"] for e in items("/api/v1/events")} == {world.groups["g1"]}
    me = _call(client, world, "GET", "/api/v1/me", "operator").json()
    assert me["group_ids"] == [world.groups["g1"]] and me["whole_organisation"] is False


def test_members_seen_through_one_group_show_only_that_groups_history(client: TestClient, world: World) -> None:
    from qunyun.models import Event, EventKind, MembershipSpan

    # m1 also stayed in g3 (outside the operator's scope) for a while.
    with world.db() as s:
        event = Event(
            org_id=world.org_a,
            external_id="join-g3-m1",
            kind=int(EventKind.MEMBER_JOINED),
            ts=datetime(2026, 1, 1, tzinfo=UTC),
            day=20260101,
            group_id=world.groups["g3"],
            member_id=world.members["m1"],
            source="test",
        )
        s.add(event)
        s.flush()
        s.add(
            MembershipSpan(
                org_id=world.org_a,
                group_id=world.groups["g3"],
                member_id=world.members["m1"],
                joined_at=event.ts,
                left_at=None,
                join_event_id=event.id,
            )
        )
        s.commit()
    spans = _call(client, world, "GET", "/api/v1/members/{m1}/memberships", "operator").json()["items"]
    assert [sp["group_id"] for sp in spans] == [world.groups["g1"]]
    spans = _call(client, world, "GET", "/api/v1/members/{m1}/memberships", "lead").json()["items"]
    assert {sp["group_id"] for sp in spans} == {world.groups["g1"], world.groups["g3"]}


# A read-only role (analyst) writing: 403 on every write, although it may read everything.
WRITES: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/groups", {"external_id": "new", "name": "New"}),
    ("PATCH", "/api/v1/groups/{g1}", {"name": "Renamed"}),
    ("PATCH", "/api/v1/groups/{g3}", {"status": "archived"}),
    ("PUT", "/api/v1/groups/{g1}/assignments", {"assignments": []}),
    ("PATCH", "/api/v1/members/{m1}", {"occupation": "teacher"}),
    ("PUT", "/api/v1/members/{m1}/tags/{vip}", None),
    ("DELETE", "/api/v1/members/{m1}/tags/{vip}", None),
    ("POST", "/api/v1/tags", {"name": "new"}),
    ("POST", "/api/v1/channels", {"code": "new", "name": "New"}),
    ("PATCH", "/api/v1/channels/{sms}", {"name": "SMS"}),
    ("POST", "/api/v1/channels/{sms}/spend", {"day": "2026-03-03", "touches": 10}),
    ("POST", "/api/v1/events", EVENT_BODY),
    ("POST", "/api/v1/staff", {"username": "newbie", "password": PASSWORD, "role": "operator"}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_analyst_writes_are_403(client: TestClient, world: World, method: str, path: str, body: Any) -> None:
    before = _audit_count(world)
    response = _call(client, world, method, path, "analyst", body)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"
    assert _audit_count(world) == before  # nothing written


def _audit_count(world: World) -> int:
    from sqlalchemy import func

    from qunyun.models import AuditLog

    with world.db() as s:
        return s.scalar(select(func.count()).select_from(AuditLog)) or 0


def test_analyst_reads_the_whole_organisation(client: TestClient, world: World) -> None:
    assert _call(client, world, "GET", "/api/v1/groups/{g3}", "analyst").status_code == 200
    assert _call(client, world, "GET", "/api/v1/members/{m4}", "analyst").status_code == 200
    assert _call(client, world, "GET", "/api/v1/events?group={g2}", "analyst").status_code == 200


LEAD_ONLY: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/staff", None),
    ("POST", "/api/v1/staff", {"username": "newbie", "password": PASSWORD, "role": "operator"}),
    ("GET", "/api/v1/staff/{staff_operator}", None),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/audit/1", None),
    ("PUT", "/api/v1/groups/{g1}/assignments", {"assignments": []}),
    ("POST", "/api/v1/channels", {"code": "new", "name": "New"}),
    ("PATCH", "/api/v1/channels/{sms}", {"name": "SMS"}),
    ("POST", "/api/v1/channels/{sms}/spend", {"day": "2026-03-03", "touches": 10}),
]


@pytest.mark.parametrize("who", ["owner", "admin", "operator", "analyst"])
@pytest.mark.parametrize(("method", "path", "body"), LEAD_ONLY, ids=[f"{m} {p}" for m, p, _ in LEAD_ONLY])
def test_lead_only_endpoints_are_403_for_other_roles(
    client: TestClient, world: World, who: str, method: str, path: str, body: Any
) -> None:
    response = _call(client, world, method, path, who, body)
    assert response.status_code == 403, response.text


def test_operator_may_not_change_the_owner_or_create_groups(client: TestClient, world: World) -> None:
    changed = _call(client, world, "PATCH", "/api/v1/groups/{g1}", "operator", {"owner_id": world.staff["operator"]})
    assert changed.status_code == 403
    created = _call(client, world, "POST", "/api/v1/groups", "operator", {"external_id": "x", "name": "X"})
    assert created.status_code == 403
    # …but may change what their role allows on their own group.
    ok = _call(client, world, "PATCH", "/api/v1/groups/{g1}", "operator", {"region": "hangzhou"})
    assert ok.status_code == 200


def test_event_posting_is_for_leads_only(client: TestClient, world: World) -> None:
    # Ingestion creates members and memberships: a scoped role posting events could widen its own
    # scope, so even events of its own groups are 403 (integration tokens: test_events_api.py).
    for who in ("owner", "admin", "operator", "analyst"):
        assert _call(client, world, "POST", "/api/v1/events", who, EVENT_BODY).status_code == 403
    assert _call(client, world, "POST", "/api/v1/events", "lead", EVENT_BODY).status_code == 200
    # group.created may carry an owner, which decides who sees the group: lead-only.
    takeover = [
        {
            "id": "gc1",
            "ts": "2026-03-05T10:00:00+08:00",
            "kind": "group.created",
            "group": "ext-g1",
            "name": "Alpha",
            "owner": "admin",
        }
    ]
    response = _call(client, world, "POST", "/api/v1/events", "admin", takeover)
    assert response.status_code == 403
    assert _call(client, world, "GET", "/api/v1/groups/{g1}", "lead").json()["owner_id"] == world.staff["owner"]


# -- sessions -----------------------------------------------------------------------------------


def test_forged_session_cookie(client: TestClient, world: World) -> None:
    client.cookies.set("qunyun_session", "qys_forged-session-value")
    assert client.get("/api/v1/me").status_code == 401
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/login"
    # The console drops the bad cookie.
    assert "qunyun_session" in home.headers.get("set-cookie", "")


def test_api_token_is_not_a_session_cookie_and_vice_versa(client: TestClient, world: World) -> None:
    client.cookies.set("qunyun_session", world.token("lead"))
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303
    client.cookies.clear()
    session_secret = console_login(client, "lead")
    client.cookies.clear()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {session_secret}"}).status_code == 401


def _set_token(world: World, secret: str, **values: Any) -> None:
    from qunyun.auth.tokens import hash_secret
    from qunyun.models import AuthToken

    with world.db() as s:
        token = s.scalar(select(AuthToken).where(AuthToken.token_hash == hash_secret(secret)))
        assert token is not None
        for key, value in values.items():
            setattr(token, key, value)
        s.commit()


def test_expired_session(client: TestClient, world: World) -> None:
    secret = console_login(client, "owner")
    assert client.get("/api/v1/me").status_code == 200
    _set_token(world, secret, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_revoked_session_and_token(client: TestClient, world: World) -> None:
    secret = console_login(client, "owner")
    _set_token(world, secret, revoked_at=datetime.now(UTC))
    assert client.get("/api/v1/me").status_code == 401
    client.cookies.clear()
    headers = world.headers("lead")
    _set_token(world, world.token("lead"), revoked_at=datetime.now(UTC))
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_disabled_account_is_401(client: TestClient, world: World) -> None:
    from qunyun.models import Staff

    headers = world.headers("operator")
    with world.db() as s:
        staff = s.get(Staff, world.staff["operator"])
        assert staff is not None
        staff.is_active = False
        s.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    login = client.post("/api/v1/auth/tokens", json={"username": "operator", "password": PASSWORD})
    assert login.status_code == 401


# -- CSRF on console forms ----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged", "0" * 64])
def test_login_form_without_valid_csrf_is_403(client: TestClient, world: World, token: str | None) -> None:
    client.get("/login")  # sets the nonce cookie
    data = {"username": "lead", "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/login", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert "qunyun_session" not in client.cookies


def test_login_csrf_token_is_bound_to_the_nonce_cookie(client: TestClient, world: World) -> None:
    token = csrf_from(client.get("/login").text)
    client.cookies.clear()  # another browser: no nonce cookie, or a different one
    client.cookies.set("qunyun_login", "someone-elses-nonce", path="/login")
    response = client.post("/login", data={"username": "lead", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 403


@pytest.mark.parametrize("token", [None, "forged"])
def test_logout_form_without_valid_csrf_is_403(client: TestClient, world: World, token: str | None) -> None:
    console_login(client, "lead")
    data = {"csrf_token": token} if token is not None else {}
    response = client.post("/logout", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert client.get("/api/v1/me").status_code == 200  # still logged in


def test_logout_csrf_token_of_another_session_is_403(client: TestClient, world: World) -> None:
    console_login(client, "owner")
    other_token = csrf_from(client.get("/").text)
    client.cookies.clear()
    console_login(client, "lead")
    assert client.post("/logout", data={"csrf_token": other_token}).status_code == 403


# -- no write widens the caller's scope ----------------------------------------------------------

# Every write route of the API and the console, with the bodies most likely to widen a scoped
# caller's view: taking over a group, assigning oneself, pulling a member in through an event,
# creating staff or integrations. "{self}" is the caller's staff id.
API_SCOPE_WRITES: dict[tuple[str, str], list[tuple[str, Any]]] = {
    ("POST", "/api/v1/auth/tokens"): [("/api/v1/auth/tokens", {"username": "{who}", "password": PASSWORD})],
    ("POST", "/api/v1/groups"): [
        ("/api/v1/groups", {"external_id": "ext-g3", "name": "Gamma"}),
        ("/api/v1/groups", {"external_id": "new-group", "name": "New", "owner_id": "{self}"}),
    ],
    ("PATCH", "/api/v1/groups/{group_id}"): [
        ("/api/v1/groups/{g3}", {"owner_id": "{self}"}),
        ("/api/v1/groups/{g1}", {"owner_id": "{self}"}),
        ("/api/v1/groups/{g1}", {"name": "Renamed"}),
    ],
    ("PUT", "/api/v1/groups/{group_id}/assignments"): [
        ("/api/v1/groups/{g3}/assignments", {"assignments": [{"staff_id": "{self}", "role": "admin"}]}),
        ("/api/v1/groups/{g1}/assignments", {"assignments": [{"staff_id": "{self}", "role": "admin"}]}),
    ],
    ("PATCH", "/api/v1/members/{member_id}"): [
        ("/api/v1/members/{m4}", {"occupation": "spy"}),
        ("/api/v1/members/{m1}", {"occupation": "teacher"}),
    ],
    ("PUT", "/api/v1/members/{member_id}/tags/{tag_id}"): [
        ("/api/v1/members/{m4}/tags/{vip}", None),
        ("/api/v1/members/{m1}/tags/{vip}", None),
    ],
    ("DELETE", "/api/v1/members/{member_id}/tags/{tag_id}"): [("/api/v1/members/{m1}/tags/{vip}", None)],
    ("POST", "/api/v1/tags"): [("/api/v1/tags", {"name": "new"})],
    ("POST", "/api/v1/channels"): [("/api/v1/channels", {"code": "new", "name": "New"})],
    ("PATCH", "/api/v1/channels/{channel_id}"): [("/api/v1/channels/{sms}", {"name": "SMS"})],
    ("POST", "/api/v1/channels/{channel_id}/spend"): [("/api/v1/channels/{sms}/spend", {"day": "2026-03-03"})],
    ("POST", "/api/v1/events"): [
        (
            "/api/v1/events",
            [
                {
                    "id": "w1",
                    "ts": "2026-03-05T10:00:00+08:00",
                    "kind": "member.joined",
                    "group": "ext-g1",
                    "member": "ext-m4",
                }
            ],
        ),
        (
            "/api/v1/events",
            [
                {
                    "id": "w2",
                    "ts": "2026-03-05T10:00:00+08:00",
                    "kind": "group.created",
                    "group": "ext-g3",
                    "name": "Gamma",
                    "owner": "{who}",
                }
            ],
        ),
    ],
    ("POST", "/api/v1/staff"): [("/api/v1/staff", {"username": "sock", "password": PASSWORD, "role": "lead"})],
    ("POST", "/api/v1/integrations"): [("/api/v1/integrations", {"name": "mine"})],
    ("DELETE", "/api/v1/integrations/{integration_id}"): [("/api/v1/integrations/999999", None)],
    ("POST", "/api/v1/connections"): [("/api/v1/connections", {"platform": "simulator", "name": "mine"})],
    ("PATCH", "/api/v1/connections/{connection_id}"): [("/api/v1/connections/1", {"name": "mine"})],
    ("POST", "/api/v1/connections/{connection_id}/test"): [("/api/v1/connections/1/test", None)],
    ("POST", "/api/v1/connections/{connection_id}/disable"): [("/api/v1/connections/1/disable", None)],
    ("POST", "/api/v1/connections/{connection_id}/enable"): [("/api/v1/connections/1/enable", None)],
    ("POST", "/api/v1/tasks/{task_id}/complete"): [("/api/v1/tasks/1/complete", {"evidence_text": "done"})],
    ("POST", "/api/v1/tasks/notices/seen"): [("/api/v1/tasks/notices/seen", {"task_ids": [1]})],
    # A webhook's credential is its signature: a staff token opens nothing there.
    ("POST", "/hooks/{platform}/{connection_id}"): [("/hooks/simulator/1", {"events": []})],
    ("POST", "/hooks/{platform}/{connection_id}/{subpath}"): [("/hooks/simulator/1/x", {"events": []})],
    ("PUT", "/hooks/{platform}/{connection_id}/{subpath}"): [
        ("/hooks/matrix/1/_matrix/app/v1/transactions/t1", {"events": []})
    ],
    # A member's personal data: only the lead erases it.
    ("POST", "/api/v1/members/{member_id}/erase"): [("/api/v1/members/{m1}/erase", None)],
    # Live codes: a pool of a group outside the scope, or one's group put into another's code.
    ("POST", "/api/v1/livecodes"): [
        ("/api/v1/livecodes", {"name": "mine", "group_ids": [3]}),
        ("/api/v1/livecodes", {"name": "mine", "group_ids": [1]}),
    ],
    ("PATCH", "/api/v1/livecodes/{live_code_id}"): [("/api/v1/livecodes/1", {"name": "Mine"})],
    ("PUT", "/api/v1/livecodes/{live_code_id}/fallback-image"): [
        ("/api/v1/livecodes/1/fallback-image", {"image_base64": None})
    ],
    ("POST", "/api/v1/livecodes/{live_code_id}/groups"): [("/api/v1/livecodes/1/groups", {"group_id": 3})],
    ("PATCH", "/api/v1/livecodes/{live_code_id}/groups/{group_id}"): [
        ("/api/v1/livecodes/1/groups/3", {"scan_limit": 5})
    ],
    ("DELETE", "/api/v1/livecodes/{live_code_id}/groups/{group_id}"): [("/api/v1/livecodes/1/groups/1", None)],
    ("POST", "/api/v1/livecodes/groups/{group_id}/qr-images"): [
        ("/api/v1/livecodes/groups/{g3}/qr-images", {"image_base64": "iVBORw0KGgoAAAAA"})
    ],
    ("DELETE", "/api/v1/livecodes/qr-images/{image_id}"): [("/api/v1/livecodes/qr-images/1", None)],
    # Join requests: deciding one (none of another's groups is visible: 404).
    ("POST", "/api/v1/join-requests/{request_id}/approve"): [("/api/v1/join-requests/1/approve", None)],
    ("POST", "/api/v1/join-requests/{request_id}/decline"): [("/api/v1/join-requests/1/decline", None)],
    # Moderation: a policy of a group outside the scope, a decision, a blacklist entry or a role
    # there, or an organisation-wide blacklist entry.
    ("POST", "/api/v1/moderation/policies"): [
        ("/api/v1/moderation/policies", {"name": "mine", "target_type": "group", "target_id": 3}),
        ("/api/v1/moderation/policies", {"name": "mine", "target_type": "organisation"}),
    ],
    ("PATCH", "/api/v1/moderation/policies/{policy_id}"): [("/api/v1/moderation/policies/1", {"name": "Mine"})],
    ("DELETE", "/api/v1/moderation/policies/{policy_id}"): [("/api/v1/moderation/policies/1", None)],
    ("PUT", "/api/v1/moderation/policies/{policy_id}/words"): [
        ("/api/v1/moderation/policies/1/words", {"words": ["x"]})
    ],
    ("POST", "/api/v1/moderation/policies/{policy_id}/test"): [
        ("/api/v1/moderation/policies/1/test", {"text": "加我微信"})
    ],
    ("POST", "/api/v1/moderation/decisions/{decision_id}/reverse"): [
        ("/api/v1/moderation/decisions/1/reverse", {"reason": "mine"})
    ],
    ("POST", "/api/v1/moderation/members/{member_id}/blacklist"): [
        ("/api/v1/moderation/members/{m4}/blacklist", {"scope": "organisation", "reason": "x"}),
        ("/api/v1/moderation/members/{m3}/blacklist", {"scope": "group", "group_id": 3, "reason": "x"}),
    ],
    ("POST", "/api/v1/moderation/members/{member_id}/unblacklist"): [
        ("/api/v1/moderation/members/{m1}/unblacklist", {"reason": "x"})
    ],
    ("PUT", "/api/v1/moderation/groups/{group_id}/roles/{member_id}"): [
        ("/api/v1/moderation/groups/3/roles/{m3}", {"role": "kol"}),
        ("/api/v1/moderation/groups/{g1}/roles/{m4}", {"role": "kol"}),
    ],
    ("DELETE", "/api/v1/moderation/groups/{group_id}/roles/{member_id}"): [
        ("/api/v1/moderation/groups/3/roles/{m3}", None)
    ],
    # SOP: a plan applied, attached or paused in a group outside the scope.
    ("POST", "/api/v1/sop/plans"): [
        (
            "/api/v1/sop/plans",
            {"name": "mine", "kind": "daily", "steps": [{"at": "08:00", "category": "早安语", "script": "早"}]},
        )
    ],
    ("PATCH", "/api/v1/sop/plans/{plan_id}"): [("/api/v1/sop/plans/1", {"paused": True})],
    ("PUT", "/api/v1/sop/plans/{plan_id}/steps"): [
        ("/api/v1/sop/plans/1/steps", {"steps": [{"at": "09:00", "category": "早安语", "script": "早"}]})
    ],
    ("POST", "/api/v1/sop/plans/{plan_id}/attachments"): [("/api/v1/sop/plans/1/attachments", {"group_id": 3})],
    ("POST", "/api/v1/sop/plans/{plan_id}/apply"): [("/api/v1/sop/plans/1/apply", {"group_id": 3})],
    ("PUT", "/api/v1/sop/groups/{group_id}/pause"): [("/api/v1/sop/groups/3/pause", {"paused": True})],
    # SOP retries: a run, or the failed runs, of a group outside the scope.
    ("POST", "/api/v1/sop/runs/{run_id}/retry"): [("/api/v1/sop/runs/1/retry", None)],
    ("POST", "/api/v1/sop/runs/retry"): [("/api/v1/sop/runs/retry", {"group_id": 3})],
    # Last: revokes the token used so far.
    ("DELETE", "/api/v1/auth/tokens/current"): [("/api/v1/auth/tokens/current", None)],
}
CONSOLE_SCOPE_WRITES: dict[tuple[str, str], list[tuple[str, dict[str, str]]]] = {
    ("POST", "/join-requests/{request_id}/approve"): [("/join-requests/1/approve", {})],
    ("POST", "/join-requests/{request_id}/decline"): [("/join-requests/1/decline", {})],
    ("POST", "/communities/{community_id}/edit"): [("/communities/1/edit", {"name": "Mine", "brand": "x"})],
    ("POST", "/communities/setup/start"): [("/communities/setup/start", {"name": "Mine", "brand": "x"})],
    ("POST", "/communities/{community_id}/setup/{key}"): [("/communities/1/setup/groups", {"count": "3"})],
    # The new-member benefit's coupon pool: a lead's, whoever's community it is.
    ("POST", "/communities/{community_id}/benefit"): [("/communities/1/benefit", {"codes": "CODE-1\nCODE-2"})],
    ("POST", "/login"): [("/login", {"username": "{who}", "password": PASSWORD})],
    ("POST", "/connections"): [("/connections", {"platform": "simulator", "name": "mine"})],
    ("POST", "/connections/{connection_id}/{action}"): [("/connections/1/disable", {})],
    ("POST", "/tasks/{task_id}/complete"): [("/tasks/1/complete", {"evidence_text": "done"})],
    ("POST", "/inbox/{delivery_id}/replay"): [("/inbox/1/replay", {})],
    ("POST", "/channels/{channel_id}/spend"): [("/channels/1/spend", {"day": "2026-03-03", "touches": "10"})],
    ("POST", "/livecodes/new"): [("/livecodes/new", {"name": "Mine", "group": "3"})],
    ("POST", "/livecodes/{live_code_id}/edit"): [("/livecodes/1/edit", {"name": "Mine"})],
    ("POST", "/livecodes/{live_code_id}/pause"): [("/livecodes/1/pause", {"paused": "1"})],
    ("POST", "/livecodes/{live_code_id}/groups"): [("/livecodes/1/groups", {"group_id": "3"})],
    ("POST", "/livecodes/{live_code_id}/groups/{group_id}"): [("/livecodes/1/groups/3", {"scan_limit": "5"})],
    ("POST", "/livecodes/{live_code_id}/groups/{group_id}/remove"): [("/livecodes/1/groups/3/remove", {})],
    ("POST", "/livecodes/{live_code_id}/groups/{group_id}/qr"): [("/livecodes/1/groups/3/qr", {})],
    ("POST", "/livecodes/{live_code_id}/qr-images/{image_id}/withdraw"): [("/livecodes/1/qr-images/1/withdraw", {})],
    ("POST", "/livecodes/{live_code_id}/fallback-image"): [("/livecodes/1/fallback-image", {"remove": "1"})],
    # Moderation's console: a policy of a group outside the scope, someone else's decision.
    ("POST", "/moderation/policies/new"): [
        ("/moderation/policies/new", {"name": "Mine", "target": "group:3"}),
        ("/moderation/policies/new", {"name": "Mine", "target": "organisation"}),
    ],
    ("POST", "/moderation/policies/{policy_id}/edit"): [("/moderation/policies/1/edit", {"name": "Mine"})],
    ("POST", "/moderation/policies/{policy_id}/words"): [("/moderation/policies/1/words", {"words": "x"})],
    ("POST", "/moderation/policies/{policy_id}/import"): [("/moderation/policies/1/import", {})],
    ("POST", "/moderation/policies/{policy_id}/test"): [("/moderation/policies/1/test", {"text": "加我微信"})],
    ("POST", "/moderation/policies/{policy_id}/delete"): [("/moderation/policies/1/delete", {})],
    ("POST", "/moderation/decisions/{decision_id}/reverse"): [("/moderation/decisions/1/reverse", {"reason": "x"})],
    ("POST", "/members/{member_id}/erase"): [("/members/1/erase", {"confirm": "1"})],
    ("POST", "/sop/runs/{run_id}/retry"): [("/sop/runs/1/retry", {})],
    ("POST", "/logout"): [("/logout", {})],
}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _write_routes() -> set[tuple[str, str]]:
    """(method, path) of every write route of the application: the API from its OpenAPI schema,
    the console from its routers."""
    from qunyun.api.app import create_app
    from qunyun.api.console import router as console_router
    from qunyun.console.pages import router as pages_router

    routes = {
        (method.upper(), path)
        for path, operations in create_app().openapi()["paths"].items()
        for method in operations
        if method.upper() in UNSAFE
    }

    def walk(items: Any) -> None:
        for route in items:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            for method in getattr(route, "methods", None) or ():
                if method in UNSAFE:
                    routes.add((method, route.path))

    walk(console_router.routes)
    walk(pages_router.routes)
    return routes


def test_the_scope_test_covers_every_write_route() -> None:
    assert _write_routes() == API_SCOPE_WRITES.keys() | CONSOLE_SCOPE_WRITES.keys()


def _visible(world: World, who: str) -> tuple[set[int], set[int]]:
    from qunyun.auth.scope import Scope, visible_group_ids, visible_member_ids
    from qunyun.models import Role, Staff

    with world.db() as s:
        staff = s.get(Staff, world.staff[who])
        assert staff is not None
        scope = Scope(staff_id=staff.id, org_id=staff.org_id, role=Role(staff.role))
        return set(s.scalars(visible_group_ids(scope))), set(s.scalars(visible_member_ids(scope)))


def _fill(value: Any, world: World, who: str) -> Any:
    if isinstance(value, str):
        if value == "{self}":
            return world.staff[who]
        return value.replace("{who}", who)
    if isinstance(value, list):
        return [_fill(v, world, who) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, world, who) for k, v in value.items()}
    return value


@pytest.mark.parametrize("who", ["owner", "admin", "operator", "analyst"])
def test_no_write_widens_the_callers_scope(client: TestClient, world: World, who: str) -> None:
    groups0, members0 = _visible(world, who)
    existing_groups, existing_members = set(world.groups.values()), set(world.members.values())

    def check(what: str, response: Any) -> None:
        assert response.status_code < 500, (what, response.text)
        groups, members = _visible(world, who)
        # New objects the caller made are theirs to see; nothing that existed may join the view.
        assert groups & existing_groups == groups0 & existing_groups, what
        assert members & existing_members == members0 & existing_members, what

    for (method, _), calls in API_SCOPE_WRITES.items():
        for path, body in calls:
            response = _call(client, world, method, path, who, _fill(body, world, who))
            check(f"{method} {path} {body}", response)
    for (method, _), form_calls in CONSOLE_SCOPE_WRITES.items():
        for path, form in form_calls:
            client.cookies.clear()
            home = client.get("/") if path != "/login" else client.get("/login")
            if path != "/login":
                console_login(client, who)
                home = client.get("/")
            data = {**_fill(form, world, who), "csrf_token": csrf_from(home.text)}
            response = client.post(path, data=data, follow_redirects=False)
            check(f"{method} {path}", response)

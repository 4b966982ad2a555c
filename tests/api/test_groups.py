"""/api/v1/groups: listing with filters, creation, changes, current members, history, assignments."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import World


def _get(client: TestClient, world: World, path: str, who: str = "lead", **params: Any) -> Any:
    response = client.get(path, params=params, headers=world.headers(who))
    assert response.status_code == 200, response.text
    return response.json()


def _audit(world: World, action: str) -> list[Any]:
    from qunyun.models import AuditLog

    with world.db() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def test_group_outputs_carry_platform_and_external_id(client: TestClient, world: World) -> None:
    group = _get(client, world, f"/api/v1/groups/{world.groups['g1']}")
    assert group["platform"] == "api" and group["external_id"] == "ext-g1"
    assert group["owner_id"] == world.staff["owner"] and group["member_count"] == 1


def test_list_filters_and_pagination(client: TestClient, world: World) -> None:
    def names(**params: Any) -> list[str]:
        return [g["name"] for g in _get(client, world, "/api/v1/groups", **params)["items"]]

    assert names(region="beijing") == ["Beta 学习群"]
    assert names(owner=world.staff["owner"]) == ["Alpha 福利群", "Beta 学习群"]
    assert names(q="gamma") == ["Gamma 核心群"]
    assert names(status="archived") == []
    assert names(tier="normal", region="shanghai") == ["Alpha 福利群", "Gamma 核心群"]
    page = _get(client, world, "/api/v1/groups", limit=1, offset=1)
    assert page["total"] == 3 and len(page["items"]) == 1 and page["items"][0]["name"] == "Beta 学习群"
    bad = client.get("/api/v1/groups", params={"status": "sleeping"}, headers=world.headers("lead"))
    assert bad.status_code == 422 and bad.json()["field"] == "status"


def test_filter_by_community(client: TestClient, world: World) -> None:
    from datetime import UTC, datetime

    from qunyun.models import Community, Group

    with world.db() as s:
        community = Community(org_id=world.org_a, name="福利社群", created_at=datetime.now(UTC))
        s.add(community)
        s.flush()
        group = s.get(Group, world.groups["g3"])
        assert group is not None
        group.community_id = community.id
        s.commit()
        community_id = community.id
    assert [g["id"] for g in _get(client, world, "/api/v1/groups", community=community_id)["items"]] == [
        world.groups["g3"]
    ]


def test_lead_creates_a_group(client: TestClient, world: World) -> None:
    body = {
        "external_id": "wx-100",
        "platform": "wecom",
        "name": "新群",
        "capacity": 200,
        "owner_id": world.staff["owner"],
    }
    response = client.post("/api/v1/groups", json=body, headers=world.headers("lead"))
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "active" and created["capacity"] == 200 and created["member_count"] == 0
    # The owner sees it now.
    assert client.get(f"/api/v1/groups/{created['id']}", headers=world.headers("owner")).status_code == 200
    assert [e.target_id for e in _audit(world, "group.create")] == [str(created["id"])]

    duplicate = client.post("/api/v1/groups", json=body, headers=world.headers("lead"))
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "external_id"


def test_owner_creates_groups_they_own(client: TestClient, world: World) -> None:
    response = client.post(
        "/api/v1/groups", json={"external_id": "o-1", "name": "Mine"}, headers=world.headers("owner")
    )
    assert response.status_code == 201
    assert response.json()["owner_id"] == world.staff["owner"]
    other = client.post(
        "/api/v1/groups",
        json={"external_id": "o-2", "name": "Theirs", "owner_id": world.staff["lead"]},
        headers=world.headers("owner"),
    )
    assert other.status_code == 403 and other.json()["field"] == "owner_id"


def test_bad_group_input_names_the_field(client: TestClient, world: World) -> None:
    lead = world.headers("lead")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "x"}, "external_id"),
        ({"external_id": "a", "name": ""}, "name"),
        ({"external_id": "a", "name": "x", "capacity": 0}, "capacity"),
        ({"external_id": "a", "name": "x", "status": "gone"}, "status"),
        ({"external_id": "a", "name": "x", "colour": "red"}, "colour"),
        ({"external_id": "a", "name": "x", "platform": "We Chat"}, "platform"),
        ({"external_id": "a", "name": "x", "owner_id": world.staff["lead_b"]}, "owner_id"),
        ({"external_id": "a", "name": "x", "community_id": 999_999}, "community_id"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/groups", json=body, headers=lead)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["code"] == "invalid_input"
        assert response.json()["field"] == field, (body, response.json())
    assert (
        client.post("/api/v1/groups", content=b"{oops", headers={**lead, "Content-Type": "application/json"}).json()[
            "field"
        ]
        == "body"
    )


def test_patch_group(client: TestClient, world: World) -> None:
    path = f"/api/v1/groups/{world.groups['g1']}"
    response = client.patch(path, json={"name": "Alpha 2", "status": "full"}, headers=world.headers("owner"))
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Alpha 2" and response.json()["status"] == "full"
    (entry,) = _audit(world, "group.update")
    assert entry.staff_id == world.staff["owner"]
    assert entry.detail["changes"]["name"] == ["Alpha 福利群", "Alpha 2"]
    assert entry.ip == "testclient"

    null = client.patch(path, json={"name": None}, headers=world.headers("owner"))
    assert null.status_code == 422 and null.json()["field"] == "name"
    # Owner changes are lead-only; the lead may move the group to another owner.
    assert client.patch(path, json={"owner_id": None}, headers=world.headers("owner")).status_code == 403
    moved = client.patch(path, json={"owner_id": world.staff["admin"]}, headers=world.headers("lead"))
    assert moved.status_code == 200 and moved.json()["owner_id"] == world.staff["admin"]


def test_failed_patch_writes_nothing(client: TestClient, world: World) -> None:
    path = f"/api/v1/groups/{world.groups['g1']}"
    response = client.patch(path, json={"name": "Half", "owner_id": 987654}, headers=world.headers("lead"))
    assert response.status_code == 422 and response.json()["field"] == "owner_id"
    assert _get(client, world, path)["name"] == "Alpha 福利群"
    assert _audit(world, "group.update") == []


def test_current_members_and_memberships(client: TestClient, world: World) -> None:
    g1, g2 = world.groups["g1"], world.groups["g2"]
    members = _get(client, world, f"/api/v1/groups/{g1}/members")
    assert members["total"] == 1
    assert members["items"][0]["external_id"] == "ext-m1" and members["items"][0]["platform"] == "api"
    assert _get(client, world, f"/api/v1/groups/{g2}/members")["total"] == 0  # m2 left

    spans = _get(client, world, f"/api/v1/groups/{g1}/memberships")["items"]
    assert len(spans) == 1
    assert spans[0]["member_id"] == world.members["m1"]
    assert spans[0]["scene"] == "qr" and spans[0]["channel_code"] == "sms" and spans[0]["left_at"] is None
    (left,) = _get(client, world, f"/api/v1/groups/{g2}/memberships")["items"]
    assert left["left_at"] is not None and left["leave_reason"] == "left"


def test_assignments_replace_the_set_and_change_scope(client: TestClient, world: World) -> None:
    g1, g2 = world.groups["g1"], world.groups["g2"]
    operator = world.headers("operator")
    assert client.get(f"/api/v1/groups/{g2}", headers=operator).status_code == 404

    put = client.put(
        f"/api/v1/groups/{g2}/assignments",
        json={"assignments": [{"staff_id": world.staff["operator"], "role": "operator"}]},
        headers=world.headers("lead"),
    )
    assert put.status_code == 200, put.text
    assert [(a["username"], a["role"]) for a in put.json()] == [("operator", "operator")]
    assert client.get(f"/api/v1/groups/{g2}", headers=operator).status_code == 200
    # m2 had a span in g2: visible to the operator now.
    assert client.get(f"/api/v1/members/{world.members['m2']}", headers=operator).status_code == 200

    cleared = client.put(f"/api/v1/groups/{g1}/assignments", json={"assignments": []}, headers=world.headers("lead"))
    assert cleared.status_code == 200 and cleared.json() == []
    assert client.get(f"/api/v1/groups/{g1}", headers=operator).status_code == 404
    assert [e.target_id for e in _audit(world, "group.assignments.set")] == [str(g2), str(g1)]


def test_assignment_input_errors(client: TestClient, world: World) -> None:
    path = f"/api/v1/groups/{world.groups['g1']}/assignments"
    twice = {"assignments": [{"staff_id": world.staff["operator"]}, {"staff_id": world.staff["operator"]}]}
    response = client.put(path, json=twice, headers=world.headers("lead"))
    assert response.status_code == 422 and response.json()["field"] == "assignments.1.staff_id"
    bad_role = {"assignments": [{"staff_id": world.staff["operator"], "role": "boss"}]}
    response = client.put(path, json=bad_role, headers=world.headers("lead"))
    assert response.status_code == 422 and response.json()["field"] == "assignments.0.role"
    # Nothing was written: the operator is still assigned.
    listed = client.get(path, headers=world.headers("lead")).json()
    assert {a["username"] for a in listed} == {"operator", "admin"}


# -- the services narrow by scope themselves; the console and the API list the same rows ---------


def _scope(world: World, who: str) -> Any:
    from qunyun.auth.scope import Scope
    from qunyun.models import Role, Staff

    with world.db() as s:
        staff = s.get(Staff, world.staff[who])
        assert staff is not None
        return Scope(staff_id=staff.id, org_id=staff.org_id, role=Role(staff.role))


def test_group_services_narrow_by_the_owners_scope(client: TestClient, world: World) -> None:
    from datetime import date

    from qunyun.analytics.portrait import group_portrait
    from qunyun.errors import InvalidInput, NotFound
    from qunyun.groups import service

    owner, g = _scope(world, "owner"), world.groups
    with world.db() as s:
        rows, total = service.list_groups(s, owner)
        assert [r.group.id for r in rows] == [g["g1"], g["g2"]] and total == 2
        assert service.count_groups(s, owner, service.GroupFilter(region="beijing")) == 1
        by_members = service.group_rows(s, owner, sort="members", descending=True, actives_on=date(2026, 3, 2))
        assert [(r.group.id, r.owner, r.actives) for r in by_members] == [
            (g["g1"], "Owner", None),
            (g["g2"], "Owner", None),
        ]
        assert service.has_groups(s, owner)
        assert set(service.group_names(s, owner)) == {g["g1"], g["g2"]}
        assert set(service.group_names_by_external_id(s, owner)) == {"ext-g1", "ext-g2"}
        assert [gid for gid, _ in service.group_choices(s, owner)] == [g["g1"], g["g2"]]
        assert service.group_filter_options(s, owner)["regions"] == ["beijing", "shanghai"]
        reads = (
            lambda gid: service.get_group(s, owner, gid),
            lambda gid: service.group_members(s, owner, gid),
            lambda gid: service.group_has_members(s, owner, gid),
            lambda gid: service.group_timeline(s, owner, gid, None),
            lambda gid: group_portrait(s, owner, gid, date(2026, 3, 2)),
        )
        for read in reads:
            read(g["g1"])
            for hidden in (g["g3"], g["gb1"]):  # out of their scope; another organisation's
                with pytest.raises(NotFound):
                    read(hidden)
        # m2 left g2: gone from the current list, there among those who left.
        assert service.group_members(s, owner, g["g2"]) == ([], 0)
        left, n = service.group_members(s, owner, g["g2"], status="left")
        assert n == 1 and left[0].member.id == world.members["m2"] and left[0].left_at is not None
        timeline = service.group_timeline(s, owner, g["g2"], None)
        assert [e["kind"] for e in timeline["items"]] == ["leave", "join"]
        with pytest.raises(InvalidInput) as bad:
            service.group_members(s, owner, g["g1"], status="deleted")
        assert bad.value.field == "status"


@pytest.mark.parametrize("who", ["lead", "owner", "operator", "analyst"])
def test_console_and_api_list_the_same_groups(client: TestClient, world: World, who: str) -> None:
    import re

    from tests.api.conftest import console_login

    console_login(client, who)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("", {}),
        ("?region=shanghai", {"region": "shanghai"}),
        ("?q=beta", {"q": "beta"}),
        (f"?owner={world.staff['owner']}", {"owner": world.staff["owner"]}),
        ("?tier=normal&status=active", {"tier": "normal", "status": "active"}),
    ]
    for query, params in cases:
        html = client.get(f"/groups{query}").text
        console = {int(i) for i in re.findall(r'<tr data-group-id="(\d+)">', html)}
        api = {item["id"] for item in _get(client, world, "/api/v1/groups", who, **params)["items"]}
        assert console == api, (who, query)
    # One group's current members: the console's list and GET /groups/{id}/members.
    g1 = world.groups["g1"]
    html = client.get(f"/groups/{g1}").text
    members_table = html.split('id="group-members-table"', 1)[1].split("</table>", 1)[0]
    console_members = [int(i) for i in re.findall(r'<tr data-member-id="(\d+)">', members_table)]
    api_members = [m["id"] for m in _get(client, world, f"/api/v1/groups/{g1}/members", who)["items"]]
    assert console_members == api_members == [world.members["m1"]]

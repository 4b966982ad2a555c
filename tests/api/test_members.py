"""/api/v1/members and /api/v1/tags: filters, persona changes, tagging, membership history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import World


def _ids(client: TestClient, world: World, who: str = "lead", **params: Any) -> list[int]:
    response = client.get("/api/v1/members", params=params, headers=world.headers(who))
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["items"]]


def _audit(world: World, action: str) -> list[Any]:
    from qunyun.models import AuditLog

    with world.db() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def test_member_output(client: TestClient, world: World) -> None:
    member = client.get(f"/api/v1/members/{world.members['m1']}", headers=world.headers("lead")).json()
    assert member["platform"] == "api" and member["external_id"] == "ext-m1"
    assert member["tags"] == [{"id": world.tags["vip"], "name": "VIP", "category": "value"}]
    assert member["erased"] is False


def test_list_filters(client: TestClient, world: World) -> None:
    m = world.members
    assert _ids(client, world) == [m["m1"], m["m2"], m["m3"], m["m4"]]
    assert _ids(client, world, group=world.groups["g2"]) == [m["m2"]]
    assert _ids(client, world, group=world.groups["g2"], current=True) == []
    assert _ids(client, world, tag=world.tags["vip"]) == [m["m1"]]
    assert _ids(client, world, q="member m3") == [m["m3"]]
    assert _ids(client, world, q="ext-m4") == [m["m4"]]
    assert _ids(client, world, q="%") == []  # LIKE wildcards are escaped
    page = client.get("/api/v1/members", params={"limit": 2, "offset": 2}, headers=world.headers("lead")).json()
    assert page["total"] == 4 and [x["id"] for x in page["items"]] == [m["m3"], m["m4"]]
    bad = client.get("/api/v1/members", params={"limit": 0}, headers=world.headers("lead"))
    assert bad.status_code == 422 and bad.json()["field"] == "limit"


def test_patch_persona_audits_field_names_not_values(client: TestClient, world: World) -> None:
    path = f"/api/v1/members/{world.members['m1']}"
    body = {
        "gender": "female",
        "birth_year": 1990,
        "occupation": "教师",
        "region": "杭州",
        "interests": ["烘焙", "跑步"],
    }
    response = client.patch(path, json=body, headers=world.headers("operator"))
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in body} == body
    (entry,) = _audit(world, "member.update")
    assert entry.detail == {"fields": ["birth_year", "gender", "interests", "occupation", "region"]}
    assert "教师" not in str(entry.detail)
    # birth_year may be cleared; the string fields may not be null.
    assert client.patch(path, json={"birth_year": None}, headers=world.headers("operator")).json()["birth_year"] is None


def test_bad_persona_input_names_the_field(client: TestClient, world: World) -> None:
    path = f"/api/v1/members/{world.members['m1']}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"gender": "robot"}, "gender"),
        ({"birth_year": 1800}, "birth_year"),
        ({"display_name": None}, "display_name"),
        ({"interests": ["x" * 40]}, "interests.0"),
        ({"interests": "reading"}, "interests"),
        ({"external_id": "hijack"}, "external_id"),
    ]
    for body, field in cases:
        response = client.patch(path, json=body, headers=world.headers("lead"))
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.json())


def test_erased_member_cannot_be_edited(client: TestClient, world: World) -> None:
    from qunyun.models import Member

    with world.db() as s:
        member = s.get(Member, world.members["m1"])
        assert member is not None
        member.erased_at = datetime.now(UTC)
        s.commit()
    response = client.patch(
        f"/api/v1/members/{world.members['m1']}", json={"occupation": "x"}, headers=world.headers("lead")
    )
    assert response.status_code == 409


def test_member_memberships(client: TestClient, world: World) -> None:
    spans = client.get(f"/api/v1/members/{world.members['m2']}/memberships", headers=world.headers("owner")).json()[
        "items"
    ]
    assert [(s["group_external_id"], s["leave_reason"]) for s in spans] == [("ext-g2", "left")]


def test_tags_create_list_and_conflict(client: TestClient, world: World) -> None:
    created = client.post(
        "/api/v1/tags", json={"name": " 高价值 ", "category": "RFM"}, headers=world.headers("operator")
    )
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "高价值"
    names = [t["name"] for t in client.get("/api/v1/tags", headers=world.headers("analyst")).json()["items"]]
    assert names == ["VIP", "高价值"]
    only_rfm = client.get("/api/v1/tags", params={"category": "RFM"}, headers=world.headers("lead")).json()
    assert [t["name"] for t in only_rfm["items"]] == ["高价值"]
    duplicate = client.post("/api/v1/tags", json={"name": "VIP"}, headers=world.headers("lead"))
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "name"
    blank = client.post("/api/v1/tags", json={"name": "   "}, headers=world.headers("lead"))
    assert blank.status_code == 422 and blank.json()["field"] == "name"
    assert [e.detail["name"] for e in _audit(world, "tag.create")] == ["高价值"]


def test_tag_and_untag_are_idempotent(client: TestClient, world: World) -> None:
    path = f"/api/v1/members/{world.members['m1']}/tags/{world.tags['vip']}"
    operator = world.headers("operator")
    assert client.delete(path, headers=operator).status_code == 204
    assert client.delete(path, headers=operator).status_code == 204
    assert client.get(f"/api/v1/members/{world.members['m1']}", headers=operator).json()["tags"] == []
    first = client.put(path, headers=operator)
    assert first.status_code == 200 and first.json()["created_by_id"] == world.staff["operator"]
    assert client.put(path, headers=operator).json() == first.json()
    assert len(_audit(world, "member.untag")) == 1
    assert len(_audit(world, "member.tag")) == 1
    missing = client.put(f"/api/v1/members/{world.members['m1']}/tags/999999", headers=operator)
    assert missing.status_code == 404


# -- the services narrow by scope themselves; the console and the API list the same rows ---------


def _scope(world: World, who: str) -> Any:
    from qunyun.auth.scope import Scope
    from qunyun.models import Role, Staff

    with world.db() as s:
        staff = s.get(Staff, world.staff[who])
        assert staff is not None
        return Scope(staff_id=staff.id, org_id=staff.org_id, role=Role(staff.role))


def test_member_services_narrow_by_the_owners_scope(client: TestClient, world: World) -> None:
    from qunyun.crm import service
    from qunyun.errors import InvalidInput, NotFound

    owner, m, g = _scope(world, "owner"), world.members, world.groups
    with world.db() as s:
        items, total = service.list_members(s, owner)
        assert [x.id for x in items] == [m["m1"], m["m2"]] and total == 2  # m3 and m4: never in their groups
        assert service.count_members(s, owner) == 2
        assert [x.id for x in service.member_rows(s, owner, sort="name", descending=True)] == [m["m2"], m["m1"]]
        assert service.has_members(s, owner)
        # A group or tag out of sight: NotFound for the API's strict filter, nobody for the console's.
        for strict_filter in (service.MemberFilter(group_id=g["g3"]), service.MemberFilter(tag_id=world.tags["vip_b"])):
            with pytest.raises(NotFound):
                service.list_members(s, owner, strict_filter)
        assert service.list_members(s, owner, service.MemberFilter(group_id=g["g3"], strict=False)) == ([], 0)
        for read in (service.get_member, lambda s, scope, i: service.member_orders(s, scope, i, 10)):
            with pytest.raises(NotFound):
                read(s, owner, m["m3"])
        assert service.groups_now(s, owner, [m["m1"], m["m3"]]) == {m["m1"]: 1}  # m3's g3 is out of sight
        options = service.member_filter_options(s, owner)
        assert [gid for gid, _ in options["groups"]] == [g["g1"], g["g2"]]
        with pytest.raises(InvalidInput) as bad_sort:
            service.list_members(s, owner, sort="password_hash")
        assert bad_sort.value.field == "sort"


def _console_member_ids(client: TestClient, query: str) -> set[int]:
    import re

    response = client.get(f"/members{query}")
    assert response.status_code == 200, response.text
    return {int(i) for i in re.findall(r'<tr data-member-id="(\d+)">', response.text)}


@pytest.mark.parametrize("who", ["lead", "owner", "operator", "analyst"])
def test_console_and_api_list_the_same_members(client: TestClient, world: World, who: str) -> None:
    from tests.api.conftest import console_login

    console_login(client, who)
    g = world.groups
    cases: list[tuple[str, dict[str, Any]]] = [
        ("", {}),
        (f"?group={g['g1']}", {"group": g["g1"], "current": True}),
        (f"?tag={world.tags['vip']}", {"tag": world.tags["vip"]}),
        ("?q=member", {"q": "member"}),
        ("?q=ext-m2", {"q": "ext-m2"}),
    ]
    for query, params in cases:
        assert _console_member_ids(client, query) == set(_ids(client, world, who, **params)), (who, query)

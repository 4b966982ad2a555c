"""Moderation's API: policies and word lists, testing a message, the log, appeals, blacklist
entries, roles — and who may do which (every write has its denial)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from qunyun.models import AuditLog, ModerationDecision
from qunyun.timeutil import utcnow
from tests.api.conftest import World

API = "/api/v1/moderation"
POLICY: dict[str, Any] = {
    "name": "群规",
    "target_type": "organisation",
    "settings": {"rules": [{"name": "广告", "kind": "words", "action": "delete"}]},
    "words": [{"word": "加我微信", "category": "广告"}, "代购"],
    "allow": ["代购须知"],
}


def call(client: TestClient, world: World, who: str, method: str, path: str, body: Any = None) -> Any:
    kwargs: dict[str, Any] = {"headers": world.headers(who)}
    if body is not None:
        kwargs["json"] = body
    return client.request(method, path, **kwargs)


def policy(client: TestClient, world: World, **changes: Any) -> int:
    response = call(client, world, "lead", "POST", f"{API}/policies", {**POLICY, **changes})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def decision(world: World, group: str, member: str, action: str = "warn") -> int:
    with world.db() as s:
        row = ModerationDecision(
            org_id=world.org_a,
            group_id=world.groups[group],
            member_id=world.members[member],
            rule="广告",
            rule_kind="words",
            category="ads",
            action=action,
            matches=[{"word": "加我微信", "category": "ads", "start": 0, "end": 4}],
            detail={},
            excerpt="加我微信",
            dry_run=False,
            source="engine",
            action_ids=[],
            at=utcnow(),
        )
        s.add(row)
        s.commit()
        return row.id


def audit_count(world: World) -> int:
    with world.db() as s:
        return s.scalar(select(func.count()).select_from(AuditLog)) or 0


def test_a_lead_attaches_a_policy_tests_a_message_and_edits_the_lists(client: TestClient, world: World) -> None:
    policy_id = policy(client, world)
    shown = call(client, world, "lead", "GET", f"{API}/policies/{policy_id}").json()
    assert (shown["words"], shown["allow"], shown["version"]) == (2, 1, 1)
    assert shown["word_list"][0] == {"word": "加我微信", "category": "ads"}

    tested = call(client, world, "lead", "POST", f"{API}/policies/{policy_id}/test", {"text": "快加我微信"})
    assert tested.status_code == 200, tested.text
    body = tested.json()
    assert (body["action"], body["rule"], body["category"]) == ("delete", "广告", "ads")
    assert body["matches"] == [{"word": "加我微信", "category": "ads", "start": 1, "end": 5}]
    clean = call(client, world, "lead", "POST", f"{API}/policies/{policy_id}/test", {"text": "代购须知请看群公告"})
    assert clean.json()["action"] == "allow"

    changed = call(client, world, "lead", "PUT", f"{API}/policies/{policy_id}/words", {"words": ["刷单"]})
    assert (changed.json()["words"], changed.json()["allow"], changed.json()["version"]) == (1, 1, 2)
    patched = call(client, world, "lead", "PATCH", f"{API}/policies/{policy_id}", {"enabled": False, "name": "新规"})
    assert (patched.json()["enabled"], patched.json()["name"], patched.json()["version"]) == (False, "新规", 3)
    assert [p["id"] for p in call(client, world, "lead", "GET", f"{API}/policies").json()] == [policy_id]
    assert call(client, world, "lead", "DELETE", f"{API}/policies/{policy_id}").status_code == 204
    assert call(client, world, "lead", "GET", f"{API}/policies/{policy_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"settings": {"rules": [{"kind": "telepathy"}]}}, "rules[0].kind"),
        ({"words": [{"word": ""}]}, "words[0].word"),
        ({"settings": {"words": ["x"]}}, "settings.words"),
        ({"target_type": "group"}, "target_id"),
        ({"target_type": "organisation", "target_id": 1}, "target_id"),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    client: TestClient, world: World, body: dict[str, Any], field: str
) -> None:
    before = audit_count(world)
    response = call(client, world, "lead", "POST", f"{API}/policies", {**POLICY, **body})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert audit_count(world) == before


def test_one_policy_per_target(client: TestClient, world: World) -> None:
    policy(client, world)
    again = call(client, world, "lead", "POST", f"{API}/policies", POLICY)
    assert again.status_code == 409


def test_admins_edit_their_groups_policies_only(client: TestClient, world: World) -> None:
    g1, g2 = world.groups["g1"], world.groups["g2"]
    mine = call(client, world, "admin", "POST", f"{API}/policies", {**POLICY, "target_type": "group", "target_id": g1})
    assert mine.status_code == 201, mine.text
    # Not a group they see: 404; not a group at all: the lead's.
    other = {**POLICY, "target_type": "group", "target_id": g2}
    assert call(client, world, "admin", "POST", f"{API}/policies", other).status_code == 404
    assert call(client, world, "admin", "POST", f"{API}/policies", POLICY).status_code == 403
    org_policy = policy(client, world)
    assert call(client, world, "admin", "PATCH", f"{API}/policies/{org_policy}", {"name": "x"}).status_code == 403
    # An owner reads policies but edits none.
    assert call(client, world, "owner", "GET", f"{API}/policies/{org_policy}").status_code == 200
    group_policy = {**POLICY, "target_type": "group", "target_id": g1}
    assert call(client, world, "owner", "POST", f"{API}/policies", group_policy).status_code == 403


WRITES = [
    ("POST", "/policies", POLICY),
    ("PATCH", "/policies/{policy}", {"name": "x"}),
    ("DELETE", "/policies/{policy}", None),
    ("PUT", "/policies/{policy}/words", {"words": ["x"]}),
    ("POST", "/decisions/{decision}/reverse", {"reason": "误判"}),
    ("POST", "/members/{m1}/blacklist", {"scope": "group", "group_id": "{g1}", "reason": "广告"}),
    ("POST", "/members/{m1}/unblacklist", {"reason": "误判"}),
    ("PUT", "/groups/{g1}/roles/{m1}", {"role": "kol"}),
    ("DELETE", "/groups/{g1}/roles/{m1}", None),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_analysts_write_nothing(client: TestClient, world: World, method: str, path: str, body: Any) -> None:
    ids = {**world.groups, **world.members, "policy": policy(client, world), "decision": decision(world, "g1", "m1")}
    before = audit_count(world)
    response = call(client, world, "analyst", method, f"{API}{path.format(**ids)}", _fill(body, ids))
    assert response.status_code == 403, response.text
    assert audit_count(world) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p}" for m, p, _ in WRITES])
def test_another_organisation_sees_nothing(client: TestClient, world: World, method: str, path: str, body: Any) -> None:
    ids = {**world.groups, **world.members, "policy": policy(client, world), "decision": decision(world, "g1", "m1")}
    before = audit_count(world)
    response = call(client, world, "lead_b", method, f"{API}{path.format(**ids)}", _fill(body, ids))
    if path == "/policies":  # their own organisation's policy: allowed, and theirs
        assert response.status_code == 201
        return
    assert response.status_code == 404, response.text
    assert audit_count(world) == before


def test_the_log_is_narrowed_to_the_callers_groups(client: TestClient, world: World) -> None:
    in_g1 = decision(world, "g1", "m1")
    in_g3 = decision(world, "g3", "m3", action="kick")

    def ids(who: str, query: str = "") -> list[int]:
        response = call(client, world, who, "GET", f"{API}/decisions{query}")
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["items"]]

    assert ids("lead") == [in_g3, in_g1]
    assert ids("analyst", "?action=kick") == [in_g3]
    assert ids("owner") == [in_g1]
    assert call(client, world, "owner", "GET", f"{API}/decisions/{in_g3}").status_code == 404
    assert call(client, world, "owner", "GET", f"{API}/decisions?group={world.groups['g3']}").status_code == 404
    assert call(client, world, "lead_b", "GET", f"{API}/decisions").json()["items"] == []
    assert call(client, world, "lead", "GET", f"{API}/decisions?action=zap").status_code == 422


def test_an_admin_reverses_a_decision_of_their_group_and_the_record_shows_it(client: TestClient, world: World) -> None:
    in_g1 = decision(world, "g1", "m1")
    in_g3 = decision(world, "g3", "m3")
    # Owners do not judge appeals; admins do, in their groups.
    assert call(client, world, "owner", "POST", f"{API}/decisions/{in_g1}/reverse", {"reason": "x"}).status_code == 403
    assert call(client, world, "admin", "POST", f"{API}/decisions/{in_g3}/reverse", {"reason": "x"}).status_code == 404
    reversed_ = call(client, world, "admin", "POST", f"{API}/decisions/{in_g1}/reverse", {"reason": "误判"})
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["reversal"]["reason"] == "误判"
    again = call(client, world, "lead", "POST", f"{API}/decisions/{in_g1}/reverse", {"reason": "again"})
    assert again.status_code == 409
    record = call(client, world, "lead", "GET", f"{API}/members/{world.members['m1']}").json()
    assert record["strikes"] == 0
    assert record["decisions"][0]["reversal"]["staff_id"] == world.staff["admin"]


def test_a_manual_blacklist_entry_and_its_removal(client: TestClient, world: World) -> None:
    m1 = world.members["m1"]
    body = {"scope": "organisation", "reason": "诈骗"}
    # An organisation-wide entry is the lead's; an admin may bar a member from their group.
    assert call(client, world, "admin", "POST", f"{API}/members/{m1}/blacklist", body).status_code == 403
    made = call(client, world, "lead", "POST", f"{API}/members/{m1}/blacklist", body)
    assert made.status_code == 201, made.text
    assert (made.json()["action"], made.json()["source"], made.json()["blacklist_scope"]) == (
        "blacklist",
        "manual",
        "organisation",
    )
    # m1 is in g1 now, a group of a platform nobody can act on here: the removal could not be
    # requested, and the entry says why.
    assert made.json()["action_ids"] == [] and "action_error" in made.json()["detail"]
    record = call(client, world, "lead", "GET", f"{API}/members/{m1}").json()
    assert [e["id"] for e in record["blacklist"]] == [made.json()["id"]]
    lifted = call(client, world, "lead", "POST", f"{API}/members/{m1}/unblacklist", {"reason": "已核实"})
    assert lifted.status_code == 200 and lifted.json()[0]["reversal"]["reason"] == "已核实"
    assert call(client, world, "lead", "GET", f"{API}/members/{m1}").json()["blacklist"] == []
    nothing = call(client, world, "lead", "POST", f"{API}/members/{m1}/unblacklist", {"reason": "again"})
    assert nothing.status_code == 404


def test_roles_in_a_group(client: TestClient, world: World) -> None:
    g1, m1 = world.groups["g1"], world.members["m1"]
    set_ = call(client, world, "owner", "PUT", f"{API}/groups/{g1}/roles/{m1}", {"role": "kol"})
    assert set_.status_code == 200 and set_.json()["role"] == "kol"
    assert [r["member_id"] for r in call(client, world, "owner", "GET", f"{API}/groups/{g1}/roles").json()] == [m1]
    bad = call(client, world, "owner", "PUT", f"{API}/groups/{g1}/roles/{m1}", {"role": "emperor"})
    assert bad.status_code == 422
    g3 = world.groups["g3"]
    assert call(client, world, "owner", "PUT", f"{API}/groups/{g3}/roles/{m1}", {"role": "kol"}).status_code == 404
    assert call(client, world, "owner", "DELETE", f"{API}/groups/{g1}/roles/{m1}").status_code == 204
    assert call(client, world, "owner", "GET", f"{API}/groups/{g1}/roles").json() == []

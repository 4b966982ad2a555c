"""/api/v1/sop: plans, attachments, apply, group pauses and runs through HTTP, and every denial
(other organisation 404, outside the scope 404, a role that may not edit plans 403)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from tests.api.conftest import World, api_app, client, password_hash, world

__all__ = ["api_app", "client", "password_hash", "world"]

STEPS = [
    {"at": "08:00", "category": "早安语", "script": "{group_name}早上好"},
    {"at": "12:00", "category": "活跃活动", "script": "抽奖", "executor": "operator", "evidence_required": True},
]


def tomorrow() -> str:
    return (datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)).isoformat()


def call(client: TestClient, world: World, who: str, method: str, path: str, body: Any = None) -> Any:
    return client.request(method, path, headers=world.headers(who), json=body)


def make_plan(client: TestClient, world: World, who: str = "admin", **extra: Any) -> int:
    body = {"name": "日常节奏", "kind": "daily", "steps": STEPS, **extra}
    response = call(client, world, who, "POST", "/api/v1/sop/plans", body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_a_plan_round_trips_and_runs_follow_the_callers_scope(client: TestClient, world: World) -> None:
    plan_id = make_plan(client, world, quiet_hours={"start": "22:00", "end": "07:00"})
    got = call(client, world, "owner", "GET", f"/api/v1/sop/plans/{plan_id}").json()
    assert got["quiet_hours"] == {"start": "22:00:00", "end": "07:00:00"}
    assert [(s["at"], s["category"], s["executor"]) for s in got["steps"]] == [
        ("08:00:00", "早安语", "bot"),
        ("12:00:00", "活跃活动", "operator"),
    ]
    applied = call(
        client,
        world,
        "admin",
        "POST",
        f"/api/v1/sop/plans/{plan_id}/apply",
        {"group_id": world.groups["g1"], "start": tomorrow()},
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["runs"] == 56
    lead = call(
        client,
        world,
        "lead",
        "POST",
        f"/api/v1/sop/plans/{plan_id}/apply",
        {"group_id": world.groups["g3"], "start": tomorrow()},
    )
    assert lead.json()["runs"] == 56
    page = call(client, world, "operator", "GET", "/api/v1/sop/runs?limit=10").json()
    assert page["total"] == 56 and len(page["items"]) == 10  # g1 only
    assert {r["group"] for r in page["items"]} == {"ext-g1"} and page["items"][0]["state"] == "planned"
    day = call(client, world, "lead", "GET", f"/api/v1/sop/runs?from={tomorrow()}&to={tomorrow()}").json()
    assert day["total"] == 4
    assert call(client, world, "operator", "GET", f"/api/v1/sop/runs?group_id={world.groups['g3']}").status_code == 404


def test_only_leads_and_admins_change_plans(client: TestClient, world: World) -> None:
    plan_id = make_plan(client, world)
    for who in ("owner", "operator", "analyst"):
        body = {"name": "x", "kind": "daily", "steps": STEPS}
        assert call(client, world, who, "POST", "/api/v1/sop/plans", body).status_code == 403
        assert call(client, world, who, "PATCH", f"/api/v1/sop/plans/{plan_id}", {"paused": True}).status_code == 403
        assert (
            call(client, world, who, "PUT", f"/api/v1/sop/plans/{plan_id}/steps", {"steps": STEPS}).status_code == 403
        )
        apply = {"group_id": world.groups["g1"]}
        assert call(client, world, who, "POST", f"/api/v1/sop/plans/{plan_id}/apply", apply).status_code == 403
        attach = {"group_id": world.groups["g1"]}
        assert call(client, world, who, "POST", f"/api/v1/sop/plans/{plan_id}/attachments", attach).status_code == 403
        pause = call(client, world, who, "PUT", f"/api/v1/sop/groups/{world.groups['g1']}/pause", {"paused": True})
        assert pause.status_code == 403
    # The admin does not see g3: 404, as if it did not exist.
    g3 = {"group_id": world.groups["g3"]}
    assert call(client, world, "admin", "POST", f"/api/v1/sop/plans/{plan_id}/apply", g3).status_code == 404
    assert call(client, world, "admin", "POST", f"/api/v1/sop/plans/{plan_id}/attachments", g3).status_code == 404
    assert (
        call(
            client, world, "admin", "PUT", f"/api/v1/sop/groups/{world.groups['g3']}/pause", {"paused": True}
        ).status_code
        == 404
    )
    assert call(client, world, "admin", "GET", "/api/v1/sop/plans").json()[0]["paused"] is False


def test_another_organisation_sees_nothing(client: TestClient, world: World) -> None:
    plan_id = make_plan(client, world)
    rival = "lead_b"
    assert call(client, world, rival, "GET", f"/api/v1/sop/plans/{plan_id}").status_code == 404
    assert call(client, world, rival, "PATCH", f"/api/v1/sop/plans/{plan_id}", {"paused": True}).status_code == 404
    assert call(client, world, rival, "GET", "/api/v1/sop/plans").json() == []
    apply = {"group_id": world.groups["gb1"]}
    assert call(client, world, "lead", "POST", f"/api/v1/sop/plans/{plan_id}/apply", apply).status_code == 404


def test_bad_steps_are_422_naming_the_field_and_nothing_is_written(client: TestClient, world: World) -> None:
    bad = {
        "name": "坏",
        "kind": "daily",
        "steps": [STEPS[0], {"at": "09:00", "category": "内容推送", "script": "{oops}"}],
    }
    response = call(client, world, "lead", "POST", "/api/v1/sop/plans", bad)
    assert response.status_code == 422 and response.json()["field"] == "steps[1].script"
    campaign = {"name": "营", "kind": "campaign", "steps": [STEPS[0]]}
    response = call(client, world, "lead", "POST", "/api/v1/sop/plans", campaign)
    assert response.status_code == 422 and response.json()["field"] == "steps[0].day"
    assert call(client, world, "lead", "GET", "/api/v1/sop/plans").json() == []


def test_pause_a_plan_and_a_group(client: TestClient, world: World) -> None:
    plan_id = make_plan(client, world)
    call(
        client,
        world,
        "lead",
        "POST",
        f"/api/v1/sop/plans/{plan_id}/apply",
        {"group_id": world.groups["g2"], "start": tomorrow()},
    )
    paused = call(client, world, "lead", "PUT", f"/api/v1/sop/groups/{world.groups['g2']}/pause", {"paused": True})
    assert paused.json() == {"group_id": world.groups["g2"], "paused": True}
    states = {r["state"] for r in call(client, world, "lead", "GET", "/api/v1/sop/runs").json()["items"]}
    assert states == {"paused"}
    call(client, world, "lead", "PUT", f"/api/v1/sop/groups/{world.groups['g2']}/pause", {"paused": False})
    updated = call(client, world, "lead", "PATCH", f"/api/v1/sop/plans/{plan_id}", {"paused": True, "name": "新名字"})
    assert updated.json()["paused"] is True and updated.json()["name"] == "新名字"
    states = {r["state"] for r in call(client, world, "lead", "GET", "/api/v1/sop/runs").json()["items"]}
    assert states == {"paused"}


def test_apply_needs_a_group_and_steps_cannot_be_emptied(client: TestClient, world: World) -> None:
    plan_id = make_plan(client, world)
    response = call(client, world, "lead", "POST", f"/api/v1/sop/plans/{plan_id}/apply", {})
    assert response.status_code == 422 and response.json()["field"] == "group_id"
    assert call(client, world, "lead", "POST", "/api/v1/sop/plans/999/apply", {}).status_code == 404
    response = call(client, world, "lead", "PUT", f"/api/v1/sop/plans/{plan_id}/steps", {"steps": []})
    assert response.status_code == 422 and response.json()["field"] == "steps"

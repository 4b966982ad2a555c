"""/api/v1/sop/calendar, /plans/{id}/gantt and /reports/*: the same functions as the console,
through HTTP, with every denial — another's group or person 404, another organisation 404, bad
parameters 422 naming the field."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import World, api_app, client, password_hash, world
from tests.sop.test_endpoints import call, make_plan, tomorrow

__all__ = ["api_app", "client", "password_hash", "world"]

CAMPAIGN = [
    {"at": "09:00", "category": "新品预告", "script": "预告", "phase": "before", "day": -7},
    {"at": "10:00", "category": "活跃活动", "script": "开营", "phase": "during", "day": 0},
    {"at": "19:30", "category": "内容推送", "script": "复盘", "phase": "after", "day": 14},
]


def applied(client: TestClient, world: World) -> int:
    plan_id = make_plan(client, world)
    for key in ("g1", "g2", "g3"):
        body = {"group_id": world.groups[key], "start": tomorrow()}
        assert call(client, world, "lead", "POST", f"/api/v1/sop/plans/{plan_id}/apply", body).status_code == 200
    return plan_id


def week(client: TestClient, world: World, who: str, query: str = "") -> Any:
    return call(client, world, who, "GET", f"/api/v1/sop/calendar?view=week&date={tomorrow()}{query}")


def test_the_calendar_follows_the_callers_scope(client: TestClient, world: World) -> None:
    applied(client, world)

    def groups(who: str, query: str = "") -> set[str]:
        response = week(client, world, who, query)
        assert response.status_code == 200, response.text
        return {r["group_name"] for d in response.json()["days"] for r in d["runs"]}

    everyone = {"Alpha 福利群", "Beta 学习群", "Gamma 核心群"}
    assert groups("lead") == groups("analyst") == everyone
    assert groups("owner") == {"Alpha 福利群", "Beta 学习群"}
    assert groups("operator") == {"Alpha 福利群"}
    body = week(client, world, "lead").json()
    assert body["view"] == "week" and len(body["days"]) == 7
    day = next(d for d in body["days"] if d["day"] == tomorrow())
    assert day["counts"] == {"planned": 6}
    assert day["runs"][0]["at"].endswith("+08:00") and day["runs"][0]["state"] == "planned"
    assert groups("lead", f"&staff_id={world.staff['operator']}") == {"Alpha 福利群"}
    assert groups("lead", "&state=sent") == set()
    # Denials: a group or a person outside the scope, another organisation's.
    g3 = world.groups["g3"]
    for who in ("owner", "operator", "admin"):
        assert week(client, world, who, f"&group_id={g3}").status_code == 404, who
        assert week(client, world, who, f"&staff_id={world.staff['lead']}").status_code == 404, who
    rival = "operator_b"
    assert week(client, world, rival, f"&group_id={world.groups['g1']}").status_code == 404
    assert week(client, world, rival, f"&staff_id={world.staff['owner']}").status_code == 404
    assert groups(rival) == set()
    # Bad parameters name the field.
    bad_view = call(client, world, "lead", "GET", "/api/v1/sop/calendar?view=year")
    assert bad_view.status_code == 422 and bad_view.json()["field"] == "view"
    bad_state = week(client, world, "lead", "&state=delivered")
    assert bad_state.status_code == 422 and bad_state.json()["field"] == "state"
    assert call(client, world, "lead", "GET", "/api/v1/sop/calendar?date=2026-13-01").status_code == 422
    assert client.get("/api/v1/sop/calendar").status_code == 401


def test_the_gantt_of_a_campaign(client: TestClient, world: World) -> None:
    daily = make_plan(client, world)
    body = {"name": "28天训练营", "kind": "campaign", "steps": CAMPAIGN}
    plan_id = call(client, world, "admin", "POST", "/api/v1/sop/plans", body).json()["id"]
    for key in ("g1", "g3"):
        apply = {"group_id": world.groups[key], "start": tomorrow()}
        assert call(client, world, "lead", "POST", f"/api/v1/sop/plans/{plan_id}/apply", apply).status_code == 200
    chart = call(client, world, "lead", "GET", f"/api/v1/sop/plans/{plan_id}/gantt").json()
    assert (chart["first"], chart["last"]) == (-7, 14)
    assert [p["phase"] for p in chart["phases"]] == ["before", "during", "after"]
    assert [g["group_name"] for g in chart["groups"]] == ["Alpha 福利群", "Gamma 核心群"]
    # Runs still to come only: D-7 is in the past, the others are planned.
    assert {r["state"] for r in chart["groups"][0]["runs"]} == {"planned"}
    owner = call(client, world, "owner", "GET", f"/api/v1/sop/plans/{plan_id}/gantt").json()
    assert [g["group_name"] for g in owner["groups"]] == ["Alpha 福利群"]
    g3 = world.groups["g3"]
    assert call(client, world, "owner", "GET", f"/api/v1/sop/plans/{plan_id}/gantt?group_id={g3}").status_code == 404
    assert call(client, world, "operator_b", "GET", f"/api/v1/sop/plans/{plan_id}/gantt").status_code == 404
    not_campaign = call(client, world, "lead", "GET", f"/api/v1/sop/plans/{daily}/gantt")
    assert not_campaign.status_code == 422 and not_campaign.json()["field"] == "plan_id"


def test_reports_through_the_api(client: TestClient, world: World) -> None:
    applied(client, world)
    span = f"from={tomorrow()}&to={tomorrow()}"
    report = call(client, world, "lead", "GET", f"/api/v1/sop/reports/execution?{span}").json()
    # Tomorrow's runs are not due yet: nothing counts.
    assert report["rows"] == [] and report["total"]["due"] == 0 and report["total"]["execution_rate"] is None
    assert report["on_time_minutes"] == 60
    bad = call(client, world, "lead", "GET", f"/api/v1/sop/reports/execution?{span}&by=plan")
    assert bad.status_code == 422 and bad.json()["field"] == "by"
    backwards = call(client, world, "lead", "GET", f"/api/v1/sop/reports/execution?from={tomorrow()}&to=2020-01-01")
    assert backwards.status_code == 422 and backwards.json()["field"] == "to"
    g3 = world.groups["g3"]
    assert call(client, world, "owner", "GET", f"/api/v1/sop/reports/execution?group_id={g3}").status_code == 404
    lead = call(client, world, "lead", "GET", "/api/v1/sop/reports/workload").json()
    assert lead["norm"] == [5, 10]
    rows = {r["name"]: r for r in lead["rows"]}
    assert rows["Owner"]["groups"] == 2 and rows["Owner"]["load"] == "under"
    mine = call(client, world, "owner", "GET", "/api/v1/sop/reports/workload").json()
    assert [r["name"] for r in mine["rows"]] == ["Owner"]
    assert "Owner" not in [
        r["name"] for r in call(client, world, "operator_b", "GET", "/api/v1/sop/reports/workload").json()["rows"]
    ]

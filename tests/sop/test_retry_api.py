"""Retrying failed runs over HTTP: POST /api/v1/sop/runs/{id}/retry and /runs/retry, and the
console's 重试 button in the calendar's week (a CSRF-checked form) — with every denial: another
organisation's or another's group 404, a role that may not retry 403, a run that is not failed
409. The sends that follow a retry are tested on the simulator in test_retry.py."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.models import SopRun
from tests.api.conftest import World, api_app, client, console_login, csrf_from, password_hash, world
from tests.sop.test_endpoints import call, make_plan, tomorrow

__all__ = ["api_app", "client", "password_hash", "world"]


def failed_runs(client: TestClient, world: World) -> dict[str, list[int]]:
    """A plan in g1, g2 and g3; each group's runs of tomorrow set failed as sop.fire leaves a run
    that found no route (the API world's groups have no platform to send through)."""
    plan_id = make_plan(client, world)
    for key in ("g1", "g2", "g3"):
        body = {"group_id": world.groups[key], "start": tomorrow()}
        assert call(client, world, "lead", "POST", f"/api/v1/sop/plans/{plan_id}/apply", body).status_code == 200
    out: dict[str, list[int]] = {}
    with world.db() as s:
        for key in ("g1", "g2", "g3"):
            rows = s.scalars(
                select(SopRun).where(SopRun.group_id == world.groups[key]).order_by(SopRun.due_at).limit(2)
            ).all()
            for row in rows:
                row.state, row.reason = "failed", "no_route"
            out[key] = [row.id for row in rows]
        s.commit()
    return out


def retry(client: TestClient, world: World, who: str, run_id: int, **headers: str) -> Any:
    return client.post(f"/api/v1/sop/runs/{run_id}/retry", headers={**world.headers(who), **headers})


def test_a_failed_run_is_retried_through_the_api(client: TestClient, world: World) -> None:
    ids = failed_runs(client, world)
    first = ids["g1"][0]
    done = retry(client, world, "owner", first)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["id"], body["state"], body["attempt"], body["action_id"]) == (first, "queued", 2, None)
    assert [(r["attempt"], r["failed_reason"], r["retried_by"]) for r in body["retries"]] == [
        (2, "no_route", world.staff["owner"])
    ]
    listed = call(client, world, "lead", "GET", f"/api/v1/sop/runs?group_id={world.groups['g1']}&limit=1").json()
    assert listed["items"][0]["attempt"] == 2 and listed["items"][0]["state"] == "queued"
    # Not failed any more: 409, in the language asked for.
    again = retry(client, world, "owner", first, **{"Accept-Language": "zh-CN"})
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert "排队中" in again.json()["message"] and "只有失败的执行可以重试" in again.json()["message"]
    # The operator of g1 sees its runs but does not own it; the analyst reads only.
    assert retry(client, world, "operator", ids["g1"][1]).status_code == 403
    assert retry(client, world, "analyst", ids["g1"][1]).status_code == 403
    # g3 is nobody's: outside the owner's scope, 404 like a missing run; another organisation 404.
    assert retry(client, world, "owner", ids["g3"][0]).status_code == 404
    assert retry(client, world, "lead_b", ids["g1"][1]).status_code == 404
    assert retry(client, world, "lead", 2**62).status_code == 404
    assert retry(client, world, "lead", 2**63).status_code == 404  # past the column's range
    # The admin of g1 may.
    assert retry(client, world, "admin", ids["g1"][1]).json()["attempt"] == 2


def test_a_groups_failed_runs_are_retried_at_once(client: TestClient, world: World) -> None:
    ids = failed_runs(client, world)
    path = "/api/v1/sop/runs/retry"
    missing = call(client, world, "lead", "POST", path, {})
    assert missing.status_code == 422 and missing.json()["field"] == "group_id"
    assert call(client, world, "owner", "POST", path, {"group_id": world.groups["g3"]}).status_code == 404
    assert call(client, world, "operator", "POST", path, {"group_id": world.groups["g1"]}).status_code == 403
    day = tomorrow()
    done = call(client, world, "owner", "POST", path, {"group_id": world.groups["g2"], "from": day, "to": day})
    assert done.status_code == 200, done.text
    assert done.json() == {"retried": ids["g2"], "refused": []}
    paused = call(client, world, "lead", "PUT", f"/api/v1/sop/groups/{world.groups['g3']}/pause", {"paused": True})
    assert paused.status_code == 200
    held = call(client, world, "lead", "POST", path, {"group_id": world.groups["g3"]}).json()
    assert held["retried"] == [] and [r["run_id"] for r in held["refused"]] == ids["g3"]
    assert {r["code"] for r in held["refused"]} == {"conflict"}


def test_the_calendar_weeks_retry_button(client: TestClient, world: World) -> None:
    ids = failed_runs(client, world)
    week = f"/sop?view=week&date={tomorrow()}"
    console_login(client, "operator")  # sees g1's failed runs, may not retry them
    html = client.get(week).text
    assert 'class="run st st-failed"' in html and "/retry" not in html
    client.cookies.clear()
    console_login(client, "owner")
    html = client.get(week).text
    first = ids["g1"][0]
    assert f'action="/sop/runs/{first}/retry"' in html and ">重试</button>" in html
    assert f'action="/sop/runs/{ids["g3"][0]}/retry"' not in html  # not the owner's group
    refused = client.post(f"/sop/runs/{first}/retry", data={"csrf_token": "forged"}, follow_redirects=False)
    assert refused.status_code == 403
    done = client.post(f"/sop/runs/{first}/retry", data={"csrf_token": csrf_from(html)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/sop?view=week&date={tomorrow()}"
    html = client.get(week).text
    assert f'action="/sop/runs/{first}/retry"' not in html and "第 2 次尝试" in html
    # A run that is no longer failed, or one outside the viewer's groups, is an error page.
    token = csrf_from(html)
    assert client.post(f"/sop/runs/{first}/retry", data={"csrf_token": token}).status_code == 409
    assert client.post(f"/sop/runs/{ids['g3'][0]}/retry", data={"csrf_token": token}).status_code == 404
    assert client.post("/sop/runs/abc/retry", data={"csrf_token": token}).status_code == 404

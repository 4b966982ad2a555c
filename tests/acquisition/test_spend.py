"""Channel spend is dated: touches and fixed costs are recorded on the day they were spent, and
the channel's totals (its CAC over all time) move with them."""

from __future__ import annotations

from fastapi.testclient import TestClient
from httpx import Response

from tests.api.conftest import World


def _spend(client: TestClient, world: World, who: str, channel: str = "sms", **body: object) -> Response:
    return client.post(f"/api/v1/channels/{world.channels[channel]}/spend", json=body, headers=world.headers(who))


def test_lead_records_a_days_spend_and_the_totals_follow(client: TestClient, world: World) -> None:
    response = _spend(client, world, "lead", day="2026-03-03", touches=2000, fixed_cost="12.5", note="周二短信")
    assert response.status_code == 201, response.text
    row = response.json()
    assert (row["day"], row["touches"], row["fixed_cost"], row["source"]) == ("2026-03-03", 2000, "12.50", "staff")
    channel = client.get(f"/api/v1/channels/{world.channels['sms']}", headers=world.headers("lead")).json()
    # 1,000 touches from the world plus these 2,000; the fixed cost as recorded
    assert channel["touches"] == 3000 and channel["fixed_cost"] == "12.50"
    # (3000 × 0.05 + 1 × 1.50 + 12.50) / 1 member
    assert channel["cac"] == "164.00"
    listed = client.get(f"/api/v1/channels/{world.channels['sms']}/spend", headers=world.headers("analyst")).json()
    assert [(r["day"], r["touches"]) for r in listed["items"]] == [("2026-03-03", 2000)]


def test_only_a_lead_records_spend(client: TestClient, world: World) -> None:
    for who in ("analyst", "owner", "operator"):
        response = _spend(client, world, who, day="2026-03-03", touches=10)
        assert response.status_code == 403, (who, response.text)
    # another organisation's channel does not exist for this lead
    response = _spend(client, world, "lead", channel="sms_b", day="2026-03-03", touches=10)
    assert response.status_code == 404


def test_bad_spend_names_the_field(client: TestClient, world: World) -> None:
    for body, field in (
        ({"day": "2026-02-30", "touches": 1}, "day"),
        ({"day": "2026-03-03", "touches": -1}, "touches"),
        ({"day": "2026-03-03", "fixed_cost": "1.234"}, "fixed_cost"),
        ({"touches": 1}, "day"),
    ):
        response = _spend(client, world, "lead", **body)
        assert response.status_code == 422, response.text
        assert field in response.text


def test_setting_the_totals_records_the_difference_today(client: TestClient, world: World) -> None:
    created = client.post(
        "/api/v1/channels",
        json={"code": "race", "name": "线下赛事", "kind": "offline", "fixed_cost": "10000"},
        headers=world.headers("lead"),
    ).json()
    changed = client.patch(
        f"/api/v1/channels/{created['id']}", json={"fixed_cost": "8000", "touches": 125}, headers=world.headers("lead")
    )
    assert changed.status_code == 200 and changed.json()["fixed_cost"] == "8000.00"
    rows = client.get(f"/api/v1/channels/{created['id']}/spend", headers=world.headers("lead")).json()["items"]
    assert sorted((r["source"], r["touches"], r["fixed_cost"]) for r in rows) == [
        ("changed", 125, "-2000.00"),
        ("created", 0, "10000.00"),
    ]

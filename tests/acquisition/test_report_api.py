"""The channel report over HTTP: every role reads it, each within its scope, and bad input is a
422 naming the parameter. The API tests' world: m1 joined g1 (owner's, operator assigned)
through sms on 2026-03-02; m2 joined g2 (owner's) and m3 joined g3 (nobody's) with no channel."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import World

DAY = "from=2026-03-02&to=2026-03-02"


def _get(client: TestClient, world: World, who: str, path: str) -> Any:
    return client.get(path, headers=world.headers(who))


def test_the_lead_reads_the_organisation(client: TestClient, world: World) -> None:
    body = _get(client, world, "lead", f"/api/v1/channels/report?{DAY}").json()
    (sms,) = body["channels"]
    assert (sms["channel"], sms["joins"], sms["touches"], sms["cost"], sms["cac"]) == ("sms", 1, 0, "1.50", "1.50")
    assert body["unattributed_joins"] == 2 and body["whole_org"] is True


@pytest.mark.parametrize(("who", "joins"), [("owner", 1), ("operator", 1), ("admin", 1), ("analyst", 1)])
def test_every_role_reads_it_within_its_groups(client: TestClient, world: World, who: str, joins: int) -> None:
    body = _get(client, world, who, f"/api/v1/channels/report?{DAY}").json()
    (sms,) = body["channels"]
    assert sms["joins"] == joins
    if who == "analyst":
        assert body["whole_org"] is True and sms["cost"] == "1.50"
    else:
        assert body["whole_org"] is False and sms["cost"] is None and sms["touches"] is None
        # m3 joined g3, which they do not see; m2 joined g2: the owner's, not the operator's.
        assert body["unattributed_joins"] == (1 if who == "owner" else 0)


def test_one_channel_with_its_funnel(client: TestClient, world: World) -> None:
    body = _get(client, world, "lead", f"/api/v1/channels/{world.channels['sms']}/report?{DAY}").json()
    assert body["channel"]["joins_by_day"] == {"2026-03-02": 1}
    assert [(s["stage"], s["count"]) for s in body["funnel"]] == [
        ("reached", 0),
        ("scanned", 0),
        ("joined", 1),
        ("active", 0),
        ("converted", 0),
    ]


def test_another_organisations_channel_is_not_found(client: TestClient, world: World) -> None:
    response = _get(client, world, "lead", f"/api/v1/channels/{world.channels['sms_b']}/report?{DAY}")
    assert response.status_code == 404
    # and its report shows only its own channels
    body = _get(client, world, "lead_b", f"/api/v1/channels/report?{DAY}").json()
    assert [c["channel_id"] for c in body["channels"]] == [world.channels["sms_b"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-03-08&to=2026-03-02", "to"),
        ("from=2026-02-30&to=2026-03-02", "from"),
        ("from=2026-03-02&to=yesterday", "to"),
        ("from=9000-01-01", "to"),  # after today, the default end
    ],
)
def test_bad_ranges_name_the_parameter(client: TestClient, world: World, query: str, field: str) -> None:
    response = _get(client, world, "lead", f"/api/v1/channels/report?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_no_credential_no_report(client: TestClient, world: World) -> None:
    assert client.get(f"/api/v1/channels/report?{DAY}").status_code == 401


def test_the_range_defaults_to_the_last_28_days(client: TestClient, world: World) -> None:
    from datetime import date, datetime, timedelta
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    body = _get(client, world, "lead", "/api/v1/channels/report").json()
    assert (body["date_from"], body["date_to"]) == ((today - timedelta(days=27)).isoformat(), today.isoformat())
    body = _get(client, world, "lead", "/api/v1/channels/report?to=2026-03-08").json()
    assert body["date_from"] == "2026-02-09" and body["channels"][0]["joins"] == 1
    assert date.fromisoformat(body["date_to"]) == date(2026, 3, 8)

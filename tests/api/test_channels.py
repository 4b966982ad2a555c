"""/api/v1/channels: cost models in yuan, members acquired and CAC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import World


def _create(client: TestClient, world: World, **body: Any) -> Any:
    response = client.post("/api/v1/channels", json=body, headers=world.headers("lead"))
    assert response.status_code == 201, response.text
    return response.json()


def test_world_channel_figures(client: TestClient, world: World) -> None:
    channel = client.get(f"/api/v1/channels/{world.channels['sms']}", headers=world.headers("operator")).json()
    assert channel["cost_per_touch"] == "0.05" and channel["reward_per_member"] == "1.50"
    assert channel["fixed_cost"] == "0.00"
    assert channel["members_acquired"] == 1  # m1 joined g1 through it
    # (1000 touches × 0.05 + 1 member × 1.50) / 1 member
    assert channel["cac"] == "51.50"
    # 0.05 / 8 % + 1.50 = 2.125 → 2.13 (PRODUCT.md M3: "2.1元/人")
    assert channel["expected_cac"] == "2.13"


def test_members_acquired_counts_distinct_members(client: TestClient, world: World) -> None:
    from qunyun.models import Event, EventKind

    with world.db() as s:
        for key, member in (("again-m1", "m1"), ("m3-sms", "m3")):
            s.add(
                Event(
                    org_id=world.org_a,
                    external_id=key,
                    kind=int(EventKind.MEMBER_JOINED),
                    ts=datetime(2026, 3, 3, tzinfo=UTC),
                    day=20260303,
                    group_id=world.groups["g3"],
                    member_id=world.members[member],
                    channel_id=world.channels["sms"],
                    source="test",
                )
            )
        s.commit()
    channel = client.get(f"/api/v1/channels/{world.channels['sms']}", headers=world.headers("lead")).json()
    assert channel["members_acquired"] == 2
    assert channel["cac"] == "26.50"  # (50 + 2 × 1.50) / 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # PRODUCT.md M3 examples
        ({"cost_per_touch": "0.1", "reward_per_member": "1.5", "expected_rate_bp": 1000}, "2.50"),
        ({"fixed_cost": "10000", "touches": 100, "expected_rate_bp": 10000}, "100.00"),
        ({"cost_per_touch": 0.05, "reward_per_member": 1.5}, None),  # no expected rate
        ({"fixed_cost": "500", "expected_rate_bp": 500}, None),  # fixed cost, no touches planned
    ],
)
def test_expected_cac(client: TestClient, world: World, body: dict[str, Any], expected: str | None) -> None:
    channel = _create(client, world, code="c1", name="Channel", **body)
    assert channel["expected_cac"] == expected
    assert channel["cac"] is None and channel["members_acquired"] == 0


def test_money_is_stored_in_fen(client: TestClient, world: World) -> None:
    from qunyun.models import Channel

    created = _create(
        client,
        world,
        code="card",
        name="包裹卡",
        kind="package_card",
        cost_per_touch="0.10",
        reward_per_member="1.5",
        fixed_cost="1234.56",
        touches=5000,
    )
    with world.db() as s:
        row = s.scalar(select(Channel).where(Channel.id == created["id"]))
        assert row is not None
        assert (row.cost_per_touch_fen, row.reward_per_member_fen, row.fixed_cost_fen) == (10, 150, 123456)
    assert created["fixed_cost"] == "1234.56"


def test_bad_channel_input_names_the_field(client: TestClient, world: World) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"code": "x", "name": "X", "cost_per_touch": "0.001"}, "cost_per_touch"),
        ({"code": "x", "name": "X", "reward_per_member": "-1"}, "reward_per_member"),
        ({"code": "x", "name": "X", "fixed_cost": "ten"}, "fixed_cost"),
        ({"code": "x", "name": "X", "expected_rate_bp": 10001}, "expected_rate_bp"),
        ({"code": "has space", "name": "X"}, "code"),
        ({"code": "x"}, "name"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/channels", json=body, headers=world.headers("lead"))
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.json())
    duplicate = client.post("/api/v1/channels", json={"code": "sms", "name": "again"}, headers=world.headers("lead"))
    assert duplicate.status_code == 409 and duplicate.json()["field"] == "code"


def test_patch_channel(client: TestClient, world: World) -> None:
    from qunyun.models import AuditLog

    path = f"/api/v1/channels/{world.channels['sms']}"
    response = client.patch(path, json={"reward_per_member": "2", "touches": 2000}, headers=world.headers("lead"))
    assert response.status_code == 200, response.text
    assert response.json()["reward_per_member"] == "2.00" and response.json()["cac"] == "102.00"
    null = client.patch(path, json={"touches": None}, headers=world.headers("lead"))
    assert null.status_code == 422 and null.json()["field"] == "touches"
    with world.db() as s:
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "channel.update"))
        assert entry is not None
        assert entry.detail["changes"]["reward_per_member_fen"] == [150, 200]


def test_list_channels(client: TestClient, world: World) -> None:
    _create(client, world, code="xhs", name="小红书", kind="social")
    page = client.get("/api/v1/channels", params={"kind": "social"}, headers=world.headers("analyst")).json()
    assert [c["code"] for c in page["items"]] == ["xhs"] and page["total"] == 1

"""/api/v1/livecodes: who may create, see and change a live code; QR images; bad input names the field."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.api.conftest import World
from tests.livecodes.helpers import PNG

B64 = base64.b64encode(PNG).decode()


def _create(client: TestClient, world: World, who: str = "lead", **body: object) -> dict:
    payload = {"name": "短信活码", "group_ids": [world.groups["g1"], world.groups["g2"]], **body}
    response = client.post("/api/v1/livecodes", json=payload, headers=world.headers(who))
    assert response.status_code == 201, response.text
    return response.json()


def test_a_lead_creates_a_code_and_reads_it_back(client: TestClient, world: World) -> None:
    made = _create(client, world, channel_id=world.channels["sms"], default_limit=150, hook_text="入群领 5 元券")
    assert made["url"] == f"/c/{made['code']}" and len(made["code"]) == 8
    assert made["channel"] == "sms"
    assert [(g["group"], g["scan_limit"], g["routed"]) for g in made["pool"]] == [
        ("ext-g1", 150, 0),
        ("ext-g2", 150, 0),
    ]
    got = client.get(f"/api/v1/livecodes/{made['id']}", headers=world.headers("analyst")).json()
    assert got["hook_text"] == "入群领 5 元券" and got["scans"] == 0


def test_the_default_limit_is_the_room_at_most_200_for_qr_images(client: TestClient, world: World) -> None:
    made = _create(client, world)
    # The world's groups hold 500 and g1 has one member; they have no invite links (platform "api").
    assert [g["scan_limit"] for g in made["pool"]] == [200, 200]


def test_bad_input_is_a_422_naming_the_field(client: TestClient, world: World) -> None:
    lead = world.headers("lead")
    cases = [
        ({"name": "x", "policy": "random"}, "policy"),
        ({"name": "x", "fallback_url": "javascript:alert(1)"}, "fallback_url"),
        ({"name": "x", "channel_id": world.channels["sms_b"]}, "channel_id"),
        (
            {"name": "x", "threshold": {"questions": [{"text": "几岁？", "choices": ["1"], "accept": ["2"]}]}},
            "threshold.questions[0].accept",
        ),
        ({"name": "x", "default_limit": 0}, "default_limit"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/livecodes", json=body, headers=lead)
        assert response.status_code == 422, (body, response.text)
        assert field in response.text, (body, response.text)


def test_owners_see_codes_of_their_groups_and_no_one_sees_another_organisations(
    client: TestClient, world: World
) -> None:
    mine = _create(client, world)  # g1, g2: the owner's
    other = client.post(
        "/api/v1/livecodes", json={"name": "核心群", "group_ids": [world.groups["g3"]]}, headers=world.headers("lead")
    ).json()
    owner = world.headers("owner")
    listed = client.get("/api/v1/livecodes", headers=owner).json()
    assert [c["id"] for c in listed["items"]] == [mine["id"]]
    assert client.get(f"/api/v1/livecodes/{other['id']}", headers=owner).status_code == 404
    assert client.get(f"/api/v1/livecodes/{mine['id']}", headers=world.headers("lead_b")).status_code == 404
    assert client.get("/api/v1/livecodes", headers=world.headers("lead_b")).json()["total"] == 0


def test_who_may_change_a_code(client: TestClient, world: World) -> None:
    mine = _create(client, world)
    url = f"/api/v1/livecodes/{mine['id']}"
    assert client.patch(url, json={"paused": True}, headers=world.headers("analyst")).status_code == 403
    # The operator sees the code through g1 but g2 is not theirs: they may not change the pool's code.
    assert client.patch(url, json={"paused": True}, headers=world.headers("operator")).status_code == 403
    assert client.patch(url, json={"paused": True}, headers=world.headers("operator_b")).status_code == 404
    changed = client.patch(url, json={"paused": True}, headers=world.headers("owner"))
    assert changed.status_code == 200 and changed.json()["paused"] is True
    # A group the caller cannot see cannot be put into a pool.
    response = client.post(f"{url}/groups", json={"group_id": world.groups["g3"]}, headers=world.headers("owner"))
    assert response.status_code == 404


def test_pool_edits(client: TestClient, world: World) -> None:
    made = _create(client, world)
    url = f"/api/v1/livecodes/{made['id']}"
    lead = world.headers("lead")
    added = client.post(f"{url}/groups", json={"group_id": world.groups["g3"], "scan_limit": 50}, headers=lead)
    assert added.status_code == 201 and added.json()["scan_limit"] == 50
    again = client.post(f"{url}/groups", json={"group_id": world.groups["g3"]}, headers=lead)
    assert again.status_code == 409 and again.json()["field"] == "group_id"
    changed = client.patch(f"{url}/groups/{world.groups['g3']}", json={"scan_limit": 80, "position": 0}, headers=lead)
    assert changed.json()["scan_limit"] == 80
    assert client.delete(f"{url}/groups/{world.groups['g2']}", headers=lead).status_code == 204
    pool = client.get(url, headers=lead).json()["pool"]
    assert [(g["group"], g["active"]) for g in pool] == [("ext-g3", True), ("ext-g1", True), ("ext-g2", False)]


def test_qr_images_upload_with_expiry_and_refusals(client: TestClient, world: World) -> None:
    g1 = world.groups["g1"]
    url = f"/api/v1/livecodes/groups/{g1}/qr-images"
    response = client.post(url, json={"image_base64": B64}, headers=world.headers("operator"))
    assert response.status_code == 201, response.text
    image = response.json()
    expires = datetime.fromisoformat(image["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)
    assert image["servable"] is True
    soon = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    bad = client.post(url, json={"image_base64": B64, "expires_at": soon}, headers=world.headers("lead"))
    assert bad.status_code == 422 and bad.json()["field"] == "expires_at"
    not_image = base64.b64encode(b"GIF89a....").decode()
    bad = client.post(url, json={"image_base64": not_image}, headers=world.headers("lead"))
    assert bad.status_code == 422 and bad.json()["field"] == "image"
    assert client.post(url, json={"image_base64": B64}, headers=world.headers("analyst")).status_code == 403
    assert client.post(url, json={"image_base64": B64}, headers=world.headers("lead_b")).status_code == 404
    withdrawn = client.delete(f"/api/v1/livecodes/qr-images/{image['id']}", headers=world.headers("owner"))
    assert withdrawn.json()["servable"] is False

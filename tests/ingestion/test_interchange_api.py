"""POST /api/v1/events accepts the interchange additions (member_name, message ids,
message.deleted) and GET /api/v1/events shows the message id; a bad value names its line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.api.conftest import World, api_app, client, password_hash, world

__all__ = ["api_app", "client", "password_hash", "world"]


def recent(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


EVENTS = [
    {"id": "a1", "ts": recent(3), "kind": "member.joined", "group": "ext-g1", "member": "ext-m9", "member_name": "九"},
    {
        "id": "a2",
        "ts": recent(2),
        "kind": "message.posted",
        "group": "ext-g1",
        "member": "ext-m9",
        "msg_type": "text",
        "text": "hello",
        "message": "mid-7",
        "member_name": "九哥",
    },
    {"id": "a3", "ts": recent(1), "kind": "message.deleted", "group": "ext-g1", "message": "mid-7"},
]


def test_the_api_ingests_the_additions_and_shows_the_message_id(client: TestClient, world: World) -> None:
    headers = {**world.headers("lead"), "Content-Type": "application/x-ndjson"}
    body = "\n".join(json.dumps(e) for e in EVENTS).encode()
    posted = client.post("/api/v1/events", content=body, headers=headers)
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"stored": 3, "duplicates": 0}
    listed = client.get("/api/v1/events?kind=message.deleted", headers=world.headers("lead"))
    assert listed.status_code == 200
    [deleted] = listed.json()["items"]
    assert (deleted["external_id"], deleted["message"], deleted["member_id"]) == ("a3", "mid-7", None)
    message = client.get("/api/v1/events?kind=message.posted", headers=world.headers("lead")).json()["items"]
    assert [(e["external_id"], e["message"]) for e in message if e["external_id"] == "a2"] == [("a2", "mid-7")]
    member = client.get(f"/api/v1/members/{message[-1]['member_id']}", headers=world.headers("lead"))
    assert member.status_code == 200 and member.json()["display_name"] == "九哥"


def test_a_bad_new_field_names_its_line_in_the_api(client: TestClient, world: World) -> None:
    headers = {**world.headers("lead"), "Content-Type": "application/x-ndjson"}
    bad = {**EVENTS[2], "message": "x" * 201}
    body = "\n".join(json.dumps(e) for e in [EVENTS[0], bad]).encode()
    answer = client.post("/api/v1/events", content=body, headers=headers)
    assert answer.status_code == 422
    assert answer.json()["message"] == "line 2: field 'message': must be at most 200 characters"
    assert answer.json()["field"] == "message" and answer.json()["detail"] == {"index": 1, "line": 2}

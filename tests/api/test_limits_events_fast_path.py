"""``POST /api/v1/events`` of a known token is answered by the edge (``EdgeGuard`` calls
``ingestion.endpoints.serve_post``) instead of the middleware stack and router: the answers, the
audit, the body cap, the admission and the database's unavailability are the route's."""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.api.conftest import World
from tests.api.test_edge import MiB, Upload, asgi_request, run


def _posted(event_id: str, member: str = "ext-m1", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "ts": "2026-03-05T11:00:00+08:00",
        "kind": "message.posted",
        "group": "ext-g1",
        "member": member,
        "msg_type": "text",
        "text": "早上好",
        **extra,
    }


def _events(world: World) -> int:
    from qunyun.models import Event

    with world.db() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def _fast_posts() -> int:
    """Posts the fast path's lanes have carried on the test client's event loop."""
    from qunyun.ingestion.coalesce import live_lanes

    lanes = live_lanes._lanes
    return lanes.posts if lanes is not None else 0


def test_a_known_tokens_post_is_served_by_the_edge_and_audited(client: TestClient, world: World) -> None:
    from qunyun.models import AuditLog

    headers = {**world.headers("lead"), "User-Agent": "sync/1.0"}
    first = client.post("/api/v1/events?platform=wecom", json=[_posted("f1")], headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": 1, "duplicates": 0}
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-content-type-options"] == "nosniff"  # the security headers still wrap it
    served = _fast_posts()
    again = client.post("/api/v1/events?platform=wecom", json=[_posted("f1")], headers=headers)
    assert again.json() == {"stored": 0, "duplicates": 1}
    assert _fast_posts() == served + 1
    with world.db() as s:
        rows = s.execute(
            select(AuditLog.staff_id, AuditLog.target_id, AuditLog.detail, AuditLog.user_agent, AuditLog.ip)
            .where(AuditLog.action == "events.ingest")
            .order_by(AuditLog.id)
        ).all()
    assert [(r[0], r[1], r[2]["stored"], r[2]["duplicates"], r[3]) for r in rows] == [
        (world.staff["lead"], "wecom", 1, 0, "sync/1.0"),
        (world.staff["lead"], "wecom", 0, 1, "sync/1.0"),
    ]
    assert rows[0].ip


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[{", "application/json"),  # not JSON
        (b"{}", "application/json"),  # not an array
        (json.dumps([_posted("ok"), {"id": "bad", "kind": "message.posted"}]).encode(), "application/json"),
        (b'{"id": "x"}\n\n{', "application/x-ndjson"),  # a bad line
        (b"[]", "application/xml"),  # media type
    ],
)
@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_the_fast_path_answers_errors_as_the_route_does(
    client: TestClient, world: World, body: bytes, content_type: str, language: str
) -> None:
    headers = {**world.headers("lead"), "Content-Type": content_type, "Accept-Language": language}
    assert client.post("/api/v1/events", json=[_posted("known")], headers=world.headers("lead")).status_code == 200
    served, stored = _fast_posts(), _events(world)
    fast = client.post("/api/v1/events", content=body, headers=headers)
    # An unknown query parameter sends the request to the route (the fast path only takes platform).
    route = client.post("/api/v1/events?platform=api&x=1", content=body, headers=headers)
    assert fast.status_code in (415, 422)
    assert (fast.status_code, fast.json()) == (route.status_code, route.json())
    assert _fast_posts() == served  # neither reached a lane
    assert _events(world) == stored


def test_a_bad_platform_is_the_routes_validation_error(client: TestClient, world: World) -> None:
    headers = world.headers("lead")
    assert client.post("/api/v1/events", json=[_posted("known")], headers=headers).status_code == 200
    bad = client.post("/api/v1/events?platform=Not%20OK", json=[_posted("p")], headers=headers)
    assert bad.status_code == 422
    assert bad.json()["field"] == "platform"


@pytest.mark.parametrize("who", ["operator", "admin", "owner"])
def test_scoped_roles_are_refused_on_the_fast_path_too(client: TestClient, world: World, who: str) -> None:
    headers = world.headers(who)
    stored = _events(world)
    for attempt in range(2):  # the second post's token is known to the edge
        denied = client.post("/api/v1/events", json=[_posted(f"{who}-{attempt}")], headers=headers)
        assert denied.status_code == 403, denied.text
        assert denied.json()["code"] == "forbidden"
    assert _events(world) == stored


def test_another_organisations_token_cannot_post_into_this_one(client: TestClient, world: World) -> None:
    # The lane is the token's own organisation's: lead_b's events land in org B only.
    from qunyun.models import Event

    before = _events(world)
    for attempt in range(2):
        assert (
            client.post("/api/v1/events", json=[_posted(f"b{attempt}")], headers=world.headers("lead_b")).status_code
            == 200
        )
    with world.db() as s:
        posted = set(s.scalars(select(Event.org_id).where(Event.external_id.in_(["b0", "b1"]))))
    assert posted == {world.org_b}
    assert _events(world) == before + 2


def test_the_body_cap_holds_on_the_fast_path(
    client: TestClient, world: World, api_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qunyun.config import get_settings

    lead = world.headers("lead")
    monkeypatch.setattr(get_settings(), "max_events_body_bytes", MiB)
    stored = _events(world)

    async def main() -> list[tuple[int, dict[str, str], bytes]]:
        known = await asgi_request(
            api_app,
            "POST",
            "/api/v1/events",
            headers={**lead, "content-type": "application/json"},
            upload=_Body(json.dumps([_posted("small")]).encode()),
        )
        upload = Upload(2 * MiB)
        too_big = await asgi_request(api_app, "POST", "/api/v1/events", upload=upload, headers=lead)
        assert upload.pulled <= MiB + 64 * 1024  # cut off once past the cap, not read to the end
        return [known, too_big]

    known, too_big = anyio.run(main)
    assert known[0] == 200
    assert too_big[0] == 413
    assert json.loads(too_big[2])["code"] == "payload_too_large"
    status, _, _ = run(api_app, "POST", "/api/v1/events", upload=Upload(100 * MiB), headers=lead, content_length=True)
    assert status == 413
    assert _events(world) == stored + 1


class _Body(Upload):
    """An ASGI request body of the given bytes, in one message."""

    def __init__(self, body: bytes) -> None:
        super().__init__(len(body))
        self.body = body

    async def receive(self) -> dict[str, Any]:
        if self.pulled:
            await self.release.wait()
            return {"type": "http.disconnect"}
        self.pulled = self.total
        return {"type": "http.request", "body": self.body, "more_body": False}


@pytest.mark.parametrize(("size", "hands_over"), [("small", True), ("large", False)])
def test_a_small_post_waiting_in_its_lane_gives_its_admission_slot_back(
    world: World, api_app: FastAPI, monkeypatch: pytest.MonkeyPatch, size: str, hands_over: bool
) -> None:
    from qunyun.config import get_settings
    from qunyun.ingestion import coalesce

    lead = {**world.headers("lead"), "content-type": "application/json"}
    held = threading.Event()
    release = threading.Event()
    run_batch = coalesce.run_batch

    def slow(batch: list[Any], factory: Any = None) -> int:
        held.set()
        release.wait(30)
        return run_batch(batch, factory)

    results: dict[str, tuple[int, dict[str, str], bytes]] = {}

    async def warm() -> None:  # the token becomes known to this process
        body = json.dumps([_posted("warm")]).encode()
        results["warm"] = await asgi_request(api_app, "POST", "/api/v1/events", headers=lead, upload=_Body(body))

    anyio.run(warm)
    # The admission semaphore is made per event loop: the next loop's has one slot, no queue.
    monkeypatch.setattr(get_settings(), "max_concurrent_requests", 1)
    monkeypatch.setattr(get_settings(), "admission_queue", 0)
    monkeypatch.setattr(coalesce, "run_batch", slow)

    async def main() -> None:
        # A large post: a message text past the size that hands the slot over.
        text = "x" * (70 * 1024 if size == "large" else 10)
        body = json.dumps([_posted("waiting", text=text)]).encode()

        async def post() -> None:
            results["post"] = await asgi_request(api_app, "POST", "/api/v1/events", headers=lead, upload=_Body(body))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(post)
                await anyio.to_thread.run_sync(held.wait, 30)
                results["other"] = await asgi_request(api_app, "GET", "/api/v1/groups", headers=world.headers("lead"))
                release.set()

    try:
        anyio.run(main)
    finally:
        release.set()
    assert results["warm"][0] == 200
    assert results["post"][0] == 200, results["post"]
    assert results["other"][0] == (200 if hands_over else 503)


def test_an_unavailable_database_is_503_on_the_fast_path(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import DisconnectionError

    from qunyun.ingestion import coalesce

    headers = world.headers("lead")
    assert client.post("/api/v1/events", json=[_posted("known")], headers=headers).status_code == 200
    stored = _events(world)

    def gone(batch: list[Any], factory: Any = None) -> None:
        raise DisconnectionError("the database went away")

    monkeypatch.setattr(coalesce, "_ingest_together", gone)
    served = _fast_posts()
    refused = client.post("/api/v1/events", json=[_posted("lost")], headers=headers)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"].isdigit()
    assert refused.json()["code"] == "database_unavailable"
    assert _fast_posts() == served + 1
    assert _events(world) == stored


def test_a_known_tokens_post_is_answered_ahead_of_the_middleware_stack(
    client: TestClient, world: World, api_app: FastAPI
) -> None:
    from qunyun.api.limits import EventsFastPath

    headers = world.headers("lead")
    assert client.post("/api/v1/events", json=[_posted("s1")], headers=headers).status_code == 200
    assert isinstance(api_app.middleware_stack, EventsFastPath)
    served = _fast_posts()
    answer = client.post("/api/v1/events", json=[_posted("s2")], headers=headers)
    assert answer.json() == {"stored": 1, "duplicates": 0}
    assert _fast_posts() == served + 1
    assert answer.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in answer.headers  # the API's headers, not the console's


def test_an_unexpected_error_on_the_fast_path_is_a_500_in_the_apis_shape(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from qunyun.ingestion import coalesce

    headers = {**world.headers("lead"), "Accept-Language": "zh"}
    assert client.post("/api/v1/events", json=[_posted("known")], headers=headers).status_code == 200
    stored = _events(world)

    def broken(batch: list[Any], factory: Any = None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(coalesce, "_ingest_together", broken)
    served = _fast_posts()
    with caplog.at_level("ERROR", logger="qunyun.api.limits"):
        answer = client.post("/api/v1/events", json=[_posted("lost", text="秘密")], headers=headers)
    assert answer.status_code == 500, answer.text
    assert answer.json()["code"] == "internal_error"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert _fast_posts() == served + 1
    assert _events(world) == stored
    assert "unhandled error on POST /api/v1/events" in caplog.text
    assert "秘密" not in caplog.text  # no message content in the log


def test_requests_of_one_credential_arriving_together_share_one_verification(
    monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    from qunyun.api import limits

    calls: list[str | None] = []
    real = limits._credential_valid

    def counted(authorization: str | None, cookie: str | None) -> bool:
        calls.append(authorization)
        return real(authorization, cookie)

    monkeypatch.setattr(limits, "_credential_valid", counted)
    recent = limits._RecentlyVerified()
    good = world.headers("lead")["Authorization"]

    async def main() -> list[bool]:
        results: list[bool] = []

        async def ask(authorization: str) -> None:
            results.append(await recent.verify(authorization, None))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(ask, good)
            for _ in range(5):
                tg.start_soon(ask, "Bearer not-a-token")
        return results

    results = anyio.run(main)
    assert sorted(results) == [False] * 5 + [True] * 10
    assert sorted(calls, key=str) == sorted([good, "Bearer not-a-token"], key=str)
    anyio.run(main)  # and once they are done, the next requests verify again
    assert len(calls) == 4

"""The server's edge: bodies are capped and read only from a known caller, a burst is answered
503 + Retry-After instead of queueing on the pool, and an unavailable database is 503, never 500.

Body tests drive the ASGI app directly with a ``receive`` that counts what the server pulled, so
they can tell "answered without reading the body" from "read it all, then answered".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.conftest import PASSWORD, World

CHUNK = b"{}\n" * 21846  # 64 KiB of JSON Lines


class Upload:
    """An ASGI request whose body is ``total`` bytes sent in 64 KiB chunks (chunked, by default)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0
        self.release = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.pulled >= self.total:
            await self.release.wait()
            return {"type": "http.disconnect"}
        size = min(len(CHUNK), self.total - self.pulled)
        self.pulled += size
        return {"type": "http.request", "body": CHUNK[:size], "more_body": self.pulled < self.total}


async def asgi_request(
    app: FastAPI,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    upload: Upload | None = None,
    content_length: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    upload = upload or Upload(0)
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if content_length:
        raw.append((b"content-length", str(upload.total).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *raw],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    status = 0
    answer: dict[str, str] = {}
    body = bytearray()

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answer.update({k.decode().lower(): v.decode() for k, v in message.get("headers", [])})
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, upload.receive, send)
    upload.release.set()
    return status, answer, bytes(body)


def run(app: FastAPI, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    async def main() -> tuple[int, dict[str, str], bytes]:
        return await asgi_request(app, method, path, **kwargs)

    return anyio.run(main)


MiB = 1024 * 1024


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/groups", "/api/v1/tags"])
def test_anonymous_body_is_401_before_it_is_read(
    client: TestClient, api_app: FastAPI, path: str, content_length: bool
) -> None:
    upload = Upload(16 * MiB)
    status, _, body = run(
        api_app, "POST", path, upload=upload, content_length=content_length, headers={"content-type": "text/plain"}
    )
    assert status == 401
    assert upload.pulled == 0
    assert json.loads(body)["code"] == "unauthenticated"


def test_forged_token_is_401_before_the_body_is_read(client: TestClient, api_app: FastAPI) -> None:
    upload = Upload(16 * MiB)
    status, _, _ = run(api_app, "POST", "/api/v1/events", upload=upload, headers={"authorization": "Bearer qya_forged"})
    assert status == 401
    assert upload.pulled == 0


@pytest.mark.parametrize("content_length", [True, False], ids=["content-length", "chunked"])
def test_every_body_is_capped(client: TestClient, world: World, api_app: FastAPI, content_length: bool) -> None:
    lead = {"authorization": f"Bearer {world.token('lead')}", "content-type": "application/json"}
    for path in ("/api/v1/groups", "/api/v1/tags", "/api/v1/auth/tokens"):
        upload = Upload(100 * MiB)
        status, _, body = run(api_app, "POST", path, upload=upload, headers=lead, content_length=content_length)
        assert status == 413, (path, body)
        assert json.loads(body)["code"] == "payload_too_large"
        # At most the default cap (1 MiB) and one chunk were read, never the 100 MiB.
        assert upload.pulled <= MiB + len(CHUNK)


def test_events_have_a_larger_documented_cap(
    client: TestClient, world: World, api_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qunyun.config import get_settings

    monkeypatch.setattr(get_settings(), "max_events_body_bytes", 2 * MiB)
    lead = {"authorization": f"Bearer {world.token('lead')}", "content-type": "application/x-ndjson"}
    # Over the default cap but under the events cap: read and parsed (the lines are not events).
    status, _, body = run(api_app, "POST", "/api/v1/events", upload=Upload(MiB + 1), headers=lead)
    assert status == 422, body
    upload = Upload(100 * MiB)
    status, _, body = run(api_app, "POST", "/api/v1/events", upload=upload, headers=lead)
    assert status == 413
    assert upload.pulled <= 2 * MiB + len(CHUNK)
    status, _, _ = run(api_app, "POST", "/api/v1/events", upload=Upload(100 * MiB), headers=lead, content_length=True)
    assert status == 413


def test_console_form_posts_are_capped(client: TestClient, world: World, api_app: FastAPI) -> None:
    upload = Upload(100 * MiB)
    form = {"content-type": "application/x-www-form-urlencoded"}
    status, _, body = run(api_app, "POST", "/login", upload=upload, headers=form, content_length=True)
    assert status == 413
    assert upload.pulled == 0
    upload = Upload(100 * MiB)
    status, _, body = run(api_app, "POST", "/login", upload=upload, headers=form)
    assert status == 413
    assert upload.pulled <= MiB + len(CHUNK)
    assert "请求内容过大".encode() in body


def test_big_event_batch_is_ingested(client: TestClient, world: World) -> None:
    lines = [
        json.dumps(
            {
                "id": f"big-{i}",
                "ts": "2026-03-05T10:00:00+08:00",
                "kind": "message.posted",
                "group": "ext-g1",
                "member": "ext-m1",
                "msg_type": "text",
            }
        )
        for i in range(4000)
    ]
    body = "\n".join(lines).encode()
    assert len(body) > 256 * 1024  # parsed in a worker thread
    response = client.post(
        "/api/v1/events", content=body, headers={**world.headers("lead"), "Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 4000


# -- admission -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "queue"),
    [
        (0.2, 32),  # room in the queue: refused when the wait ends
        (600.0, 0),  # no room in the queue: refused at once, not after ten minutes
    ],
)
def test_requests_beyond_the_admission_limit_get_503_and_healthz_answers(
    client: TestClient, world: World, api_app: FastAPI, monkeypatch: pytest.MonkeyPatch, wait: float, queue: int
) -> None:
    from qunyun.config import get_settings

    monkeypatch.setattr(get_settings(), "max_concurrent_requests", 1)
    monkeypatch.setattr(get_settings(), "admission_wait_seconds", wait)
    monkeypatch.setattr(get_settings(), "admission_queue", queue)
    results: dict[str, tuple[int, dict[str, str], bytes]] = {}

    async def main() -> None:
        # A login whose body never finishes holds the only slot.
        slow = Upload(10**9)
        first_chunk = slow.receive
        stalled = anyio.Event()

        async def receive() -> dict[str, Any]:
            if slow.pulled:
                stalled.set()
                await slow.release.wait()
                return {"type": "http.disconnect"}
            return await first_chunk()

        slow.receive = receive  # type: ignore[method-assign]

        async def hold() -> None:
            results["held"] = await asgi_request(
                api_app, "POST", "/api/v1/auth/tokens", upload=slow, headers={"content-type": "application/json"}
            )

        # Bounded, so that a regression fails here instead of hanging the suite.
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(hold)
                await stalled.wait()
                results["busy"] = await asgi_request(api_app, "GET", "/api/v1/groups", headers=headers)
                results["health"] = await asgi_request(api_app, "GET", "/healthz")
                slow.release.set()

    headers = {"authorization": f"Bearer {world.token('lead')}"}
    anyio.run(main)
    status, answer, body = results["busy"]
    assert status == 503
    assert answer["retry-after"].isdigit()
    assert json.loads(body)["code"] == "unavailable"
    assert results["health"][0] == 200
    # The slot is free again: the next request is served.
    assert client.get("/api/v1/groups", headers=headers).status_code == 200


# -- database unavailable ------------------------------------------------------------------------


@pytest.fixture
def app_on(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[Any]:
    """Build an app configured with another database URL (the settings and engine caches are
    reset, and restored after the test)."""
    from qunyun.config import get_settings
    from qunyun.db import session as db_session

    engines: list[Any] = []

    def build(url: str) -> FastAPI:
        from qunyun.api.app import create_app

        monkeypatch.setenv("QUNYUN_DATABASE_URL", url)
        get_settings.cache_clear()
        db_session.get_engine.cache_clear()
        db_session.get_sessionmaker.cache_clear()
        engines.append(db_session.get_engine())
        return create_app()

    yield build
    for engine in engines:
        engine.dispose()
    monkeypatch.setenv("QUNYUN_DATABASE_URL", database_url)
    get_settings.cache_clear()
    db_session.get_engine.cache_clear()
    db_session.get_sessionmaker.cache_clear()


def _assert_503(response: Any, *, api: bool = True) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    if api:
        assert response.json()["code"] == "database_unavailable"


def test_unreachable_postgresql_is_503_never_500(app_on: Any) -> None:
    app = app_on("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"].isdigit()
        _assert_503(c.get("/api/v1/groups", headers={"Authorization": "Bearer qya_x"}))
        _assert_503(c.post("/api/v1/tags", json={"name": "x"}, headers={"Authorization": "Bearer qya_x"}))
        _assert_503(c.post("/api/v1/auth/tokens", json={"username": "lead", "password": PASSWORD}))
        zh = c.get("/api/v1/groups", headers={"Authorization": "Bearer qya_x", "Accept-Language": "zh-CN"})
        assert zh.json()["message"] == "数据库暂时不可用，请稍后重试"
        c.cookies.set("qunyun_session", "qys_x")
        page = c.get("/")
        _assert_503(page, api=False)
        assert "数据库暂时不可用" in page.text


def test_read_only_sqlite_is_503_on_writes(app_on: Any, tmp_path: Any) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from qunyun.auth.tokens import TokenKind, issue_token
    from qunyun.db.migrate import upgrade
    from qunyun.db.session import make_engine
    from qunyun.models import Organisation, Staff

    path = tmp_path / "ro.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    now = datetime.now(UTC)
    with Session(engine) as s:
        org = Organisation(name="Acme", slug="acme-ro", time_zone="Asia/Shanghai", created_at=now)
        s.add(org)
        s.flush()
        lead = Staff(
            org_id=org.id,
            username="lead-ro",
            display_name="Lead",
            password_hash="!",
            role="lead",
            language="zh",
            is_active=True,
            created_at=now,
        )
        s.add(lead)
        s.flush()
        secret = issue_token(s, lead, TokenKind.API, now=now).secret
        s.commit()
    engine.dispose()

    app = app_on(f"sqlite:///file:{path}?mode=ro&uri=true")
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as c:
        _assert_503(c.post("/api/v1/tags", json={"name": "new"}, headers=headers))
        _assert_503(c.post("/api/v1/groups", json={"external_id": "g", "name": "G"}, headers=headers))

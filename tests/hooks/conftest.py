"""The webhook tests reuse the API tests' world (two organisations, staff of every role) and give
organisation A a simulator connection whose webhooks are signed with ``SECRET``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.config import get_settings
from qunyun.connections.secrets import encrypt
from qunyun.connectors.simulator.verification import signed_headers
from qunyun.models import Job, WebhookDelivery, WebhookRejection
from qunyun.worker.runner import Worker
from tests.api.conftest import World, anon, api_app, client, password_hash, world
from tests.connections.helpers import connection_row

__all__ = ["anon", "api_app", "client", "password_hash", "world"]

SECRET = "hook-secret-0123456789"
TEXT = "私密消息内容：我的手机号 13800000000"
# Recent (message text is kept for 30 days) and the same in every batch of one run.
EVENT_TS = datetime.now(UTC).replace(microsecond=0).isoformat()


def add_connection(
    world: World,
    org_id: int | None = None,
    *,
    name: str = "sim-hooks",
    platform: str = "simulator",
    secret: str | None = SECRET,
    status: str = "active",
) -> int:
    with world.db() as s:
        row = connection_row(
            org_id or world.org_a,
            name,
            platform=platform,
            secrets=encrypt({"webhook_secret": secret} if secret else {}),
            status=status,
        )
        s.add(row)
        s.commit()
        return row.id


@pytest.fixture
def connection(world: World) -> int:
    return add_connection(world)


def events(prefix: str = "e", *, text: str = TEXT) -> dict[str, Any]:
    """A batch of three v1 events: a group, a join and a message carrying ``text``."""
    ts = EVENT_TS
    return {
        "events": [
            {"id": f"{prefix}-g", "ts": ts, "kind": "group.created", "group": "G-hooks", "name": "Hooks 群"},
            {"id": f"{prefix}-j", "ts": ts, "kind": "member.joined", "group": "G-hooks", "member": "M-1"},
            {
                "id": f"{prefix}-m",
                "ts": ts,
                "kind": "message.posted",
                "group": "G-hooks",
                "member": "M-1",
                "msg_type": "text",
                "text": text,
            },
        ]
    }


def body_of(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else orjson.dumps(payload)


def deliver(
    client: TestClient,
    connection_id: int | str,
    payload: Any,
    *,
    secret: str | None = SECRET,
    at: datetime | None = None,
    delivery_id: str | None = None,
    platform: str = "simulator",
    headers: dict[str, str] | None = None,
) -> Response:
    """POST ``payload`` to the connection's webhook address, signed with ``secret`` (None: unsigned)."""
    body = body_of(payload)
    sent = {} if secret is None else signed_headers(secret, body, at=at or datetime.now(UTC), delivery_id=delivery_id)
    sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    return client.post(f"/hooks/{platform}/{connection_id}", content=body, headers=sent)


def run_jobs(db: sessionmaker[Session]) -> int:
    """Run every due job; returns how many ran."""
    worker = Worker("hooks-test", factory=db)
    ran = 0
    while worker.run_next():
        ran += 1
    return ran


def count(db: sessionmaker[Session], model: type[Any]) -> int:
    with db() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def rejections(db: sessionmaker[Session]) -> dict[tuple[int | None, str], int]:
    with db() as s:
        return {(r.connection_id, r.reason): r.count for r in s.scalars(select(WebhookRejection))}


def deliveries(db: sessionmaker[Session]) -> list[WebhookDelivery]:
    with db() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def hook_jobs(db: sessionmaker[Session]) -> list[Job]:
    with db() as s:
        return list(s.scalars(select(Job).where(Job.kind == "hooks.process").order_by(Job.id)))


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Set a QUNYUN_* variable for one test: the settings are read again now, and after the test."""

    def setter(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield setter
    monkeypatch.undo()
    get_settings.cache_clear()

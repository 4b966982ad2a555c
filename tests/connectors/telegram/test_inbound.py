"""Updates into qunyun both ways: POST /hooks/telegram/{id} with the secret token header, and
long polling with the offset stored; a migrated group stays one group even in a process that
did not see the migration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import select

from qunyun.connections.secrets import encrypt
from qunyun.connectors import registry
from qunyun.connectors.telegram.polling import poll_connection
from qunyun.connectors.telegram.updates import ALLOWED_UPDATES
from qunyun.models import Connection, Event, Group, Member
from qunyun.models.telegram_state import TelegramPollState
from tests.api.conftest import World, api_app, client, password_hash, world
from tests.connections.helpers import connection_row
from tests.connectors.telegram.fakebot import TOKEN, FakeBotApi
from tests.hooks.conftest import deliveries, rejections, run_jobs

__all__ = ["api_app", "client", "password_hash", "world"]

SECRET = "tg-Secret_token-0123456789"
FIXTURES: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "fixtures" / "updates.json").read_text("utf-8")
)


def add_telegram(world: World, fake: FakeBotApi | None, *, mode: str = "webhook") -> int:
    secrets: dict[str, str] = {"bot_token": TOKEN}
    if mode == "webhook":
        secrets["webhook_secret"] = SECRET
    settings = {"mode": mode, "api_base": fake.url if fake else "http://127.0.0.1:9"}
    with world.db() as s:
        row = connection_row(
            world.org_a, f"tg-{mode}", platform="telegram", settings=settings, secrets=encrypt(secrets)
        )
        s.add(row)
        s.commit()
        return row.id


@pytest.fixture(autouse=True)
def _forget_connectors() -> Iterator[None]:
    yield
    for connection_id in range(1, 50):
        registry.forget(connection_id)


def post(client: TestClient, connection_id: int, update: dict[str, Any], secret: str | None = SECRET) -> Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return client.post(f"/hooks/telegram/{connection_id}", content=orjson.dumps(update), headers=headers)


def telegram_events(world: World) -> list[tuple[str, int, str | None]]:
    with world.db() as s:
        rows = s.execute(
            select(Event.external_id, Event.kind, Group.external_id)
            .outerjoin(Group, Group.id == Event.group_id)
            .where(Event.org_id == world.org_a, Event.external_id.like("tg%"))
            .order_by(Event.id)
        )
        return [(r[0], int(r[1]), r[2]) for r in rows]


def test_the_webhook_takes_updates_with_the_secret_token_once(client: TestClient, world: World) -> None:
    connection = add_telegram(world, None)
    assert post(client, connection, FIXTURES["text_in_supergroup"]).status_code == 200
    assert post(client, connection, FIXTURES["text_in_supergroup"]).status_code == 200  # Telegram retries
    assert post(client, connection, FIXTURES["joined_through_link"]).status_code == 200
    [first, second] = deliveries(world.db)
    assert first.delivery_id == "update:900000001" and second.delivery_id == "update:900000004"
    run_jobs(world.db)
    assert [d.status for d in deliveries(world.db)] == ["processed", "processed"]
    assert telegram_events(world) == [
        ("tg123456789:900000001", 4, "-1001987654321"),
        ("tg123456789:900000004", 2, "-1001987654321"),
    ]
    with world.db() as s:
        member = s.scalars(select(Member).where(Member.external_id == "5550001")).one()
        assert (member.platform, member.display_name) == ("telegram", "李 雷")


def test_the_webhook_refuses_a_missing_or_wrong_secret_token(client: TestClient, world: World) -> None:
    connection = add_telegram(world, None)
    assert post(client, connection, FIXTURES["text_in_supergroup"], secret=None).status_code == 401
    assert post(client, connection, FIXTURES["text_in_supergroup"], secret=SECRET + "x").status_code == 401
    bad = client.post(
        f"/hooks/telegram/{connection}",
        content=b'{"message": 1}',
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
    )
    assert bad.status_code == 400  # no update_id
    polling = add_telegram(world, None, mode="polling")
    assert post(client, polling, FIXTURES["text_in_supergroup"]).status_code == 401  # no secret: no webhooks
    assert deliveries(world.db) == []
    counts = rejections(world.db)
    assert counts[(connection, "unsigned")] == 1 and counts[(connection, "bad_signature")] == 1
    assert counts[(connection, "malformed")] == 1


def test_a_migration_keeps_one_group_across_processes(client: TestClient, world: World) -> None:
    connection = add_telegram(world, None)
    for name in ("bot_added", "photo_with_caption_in_group", "migrate_to", "migrate_from"):
        assert post(client, connection, FIXTURES[name]).status_code == 200
    run_jobs(world.db)
    registry.forget(connection)  # another process: a connector that never saw the migration
    assert post(client, connection, FIXTURES["after_migration"]).status_code == 200
    run_jobs(world.db)
    with world.db() as s:
        groups = s.scalars(select(Group.external_id).where(Group.org_id == world.org_a, Group.platform == "telegram"))
        assert list(groups) == ["-4012345678"]
    assert telegram_events(world)[-1] == ("tg123456789:900000015", 4, "-4012345678")


def test_polling_ingests_each_update_once_and_asks_for_chat_member(fakebot: FakeBotApi, world: World) -> None:
    connection = add_telegram(world, fakebot, mode="polling")
    fakebot.updates = [FIXTURES["text_in_supergroup"], FIXTURES["joined_through_link"]]

    def poll() -> int:
        with world.db() as s:
            row = s.get(Connection, connection)
            assert row is not None
            count = poll_connection(s, row)
            s.commit()
            return count

    assert poll() == 2
    assert poll() == 0  # the offset moved past them
    fakebot.updates.append(FIXTURES["left"])
    assert poll() == 1
    calls = fakebot.called("getUpdates")
    assert calls[0]["allowed_updates"] == list(ALLOWED_UPDATES) and "chat_member" in calls[0]["allowed_updates"]
    assert "offset" not in calls[0] and calls[1]["offset"] == 900000005 and calls[2]["offset"] == 900000005
    assert [e[0] for e in telegram_events(world)] == [
        "tg123456789:900000001",
        "tg123456789:900000004",
        "tg123456789:900000007",
    ]
    with world.db() as s:
        state = s.get(TelegramPollState, connection)
        assert state is not None and state.next_offset == 900000008

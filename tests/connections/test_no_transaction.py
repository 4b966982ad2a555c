"""No database transaction is open while a connection's platform is asked (WeCom's gettoken,
Telegram's getMe, the simulator's check) — whichever way the lead adds, changes, tests or enables
it: the API, the console or the command line. The engine's own begin/commit/rollback events say
which connections hold a transaction at the moment the platform is called."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection as DbConnection
from sqlalchemy import Engine, event, select, text
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.connectors import registry
from qunyun.connectors.registry import ConnectionConfig
from qunyun.models import Connection
from tests.api.conftest import World, console_login, csrf_from

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
NOWHERE = "http://127.0.0.1:9"  # nothing listens: the real check fails at once, on this machine


@dataclass
class Watch:
    """Connections of the engine inside a transaction now, and what each platform call saw."""

    open: set[int] = field(default_factory=set)
    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (platform, name, open transactions)

    def begin(self, conn: DbConnection) -> None:
        self.open.add(id(conn))

    def end(self, conn: DbConnection) -> None:
        self.open.discard(id(conn))


@pytest.fixture
def watch(engine: Engine) -> Iterator[Watch]:
    seen = Watch()
    listeners = (("begin", seen.begin), ("commit", seen.end), ("rollback", seen.end))
    for name, fn in listeners:
        event.listen(engine, name, fn)
    originals = {p: (registry.factory_for(p), registry.check_for(p)) for p in ("simulator", "wecom", "telegram")}

    def watched(platform: str) -> registry.Check:
        check = originals[platform][1]

        def run(config: ConnectionConfig) -> None:
            seen.calls.append((platform, config.name, len(seen.open)))
            if check is not None:
                check(config)  # the real call (WeCom's gettoken, Telegram's getMe)

        return run

    for platform, (factory, _) in originals.items():
        assert factory is not None
        registry.register_factory(platform, factory, watched(platform))
    try:
        yield seen
    finally:
        for platform, (factory, check) in originals.items():
            assert factory is not None
            registry.register_factory(platform, factory, check)
        for name, fn in listeners:
            event.remove(engine, name, fn)


def test_the_watch_sees_a_transaction(world: World, watch: Watch) -> None:
    """The instrument works: a session that reads holds a transaction until it ends."""
    with world.db() as s:
        s.execute(text("SELECT 1"))
        assert len(watch.open) == 1
    assert not watch.open


def test_the_api_asks_each_platform_with_no_transaction_open(client: TestClient, world: World, watch: Watch) -> None:
    headers = world.headers("lead")
    bodies = [
        {"platform": "simulator", "name": "模拟", "settings": {"seed": 1}},
        {
            "platform": "wecom",
            "name": "企业微信",
            "settings": {"corp_id": "ww0123456789abcdef", "agent_id": "1000002", "api_base": NOWHERE},
            "secrets": {"secret": "app-secret-value-123", "token": "tok3nValue", "aes_key": AES_KEY},
        },
        {
            "platform": "telegram",
            "name": "电报",
            "settings": {"api_base": NOWHERE},
            "secrets": {"bot_token": "123456:ABCdefGhIJKlmnOPQrstUVWxyz0123456", "webhook_secret": "hook-secret-1"},
        },
    ]
    ids = []
    for body in bodies:
        response = client.post("/api/v1/connections", json=body, headers=headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    simulator, wecom, telegram = ids
    # The real checks ran and failed in words; the simulator's passed.
    with world.db() as s:
        rows = {row.id: row for row in s.scalars(select(Connection))}
    assert rows[simulator].status == "active"
    assert rows[wecom].status == "error" and rows[wecom].last_error
    assert rows[telegram].status == "error" and rows[telegram].last_error

    assert client.patch(f"/api/v1/connections/{simulator}", json={"settings": {"seed": 2}}, headers=headers).is_success
    assert client.post(f"/api/v1/connections/{wecom}/test", headers=headers).is_success
    assert client.post(f"/api/v1/connections/{telegram}/disable", headers=headers).is_success
    assert client.post(f"/api/v1/connections/{telegram}/enable", headers=headers).is_success

    assert [(p, n) for p, n, _ in watch.calls] == [
        ("simulator", "模拟"),
        ("wecom", "企业微信"),
        ("telegram", "电报"),
        ("simulator", "模拟"),
        ("wecom", "企业微信"),
        ("telegram", "电报"),
    ]
    assert [opened for _, _, opened in watch.calls] == [0] * 6


def test_the_console_asks_the_platform_with_no_transaction_open(client: TestClient, world: World, watch: Watch) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/connections").text)
    form = {
        "csrf_token": token,
        "platform": "wecom",
        "name": "企业微信主体",
        "settings.corp_id": "ww0123456789abcdef",
        "settings.agent_id": "1000002",
        "settings.api_base": NOWHERE,
        "secrets.secret": "app-secret-value-123",
        "secrets.token": "tok3nValue",
        "secrets.aes_key": AES_KEY,
    }
    added = client.post("/connections", data=form, follow_redirects=False)
    assert added.status_code == 303
    with world.db() as s:
        connection_id = s.scalars(select(Connection.id).where(Connection.name == "企业微信主体")).one()
    tested = client.post(f"/connections/{connection_id}/test", data={"csrf_token": token}, follow_redirects=False)
    assert tested.status_code == 303
    assert 'data-status="error"' in client.get("/connections").text  # the outcome, recorded afterwards
    assert watch.calls == [("wecom", "企业微信主体", 0), ("wecom", "企业微信主体", 0)]


def test_the_command_line_asks_the_platform_with_no_transaction_open(world: World, watch: Watch) -> None:
    runner = CliRunner()
    telegram = ["--api-base", NOWHERE, "--bot-token", "123456:ABCdefGhIJKlmnOPQrstUVWxyz0123456", "--polling"]
    added = runner.invoke(
        app, ["connections", "add", "telegram", "--org", "acme", "--name", "机器人", "--format", "json", *telegram]
    )
    assert added.exit_code == 0, added.output
    connection_id = json.loads(added.stdout)["id"]  # the contract holds: the outcome goes to stderr
    tested = runner.invoke(app, ["connections", "test", str(connection_id), "--org", "acme", "--format", "json"])
    assert tested.exit_code == 0, tested.output
    assert watch.calls == [("telegram", "机器人", 0), ("telegram", "机器人", 0)]

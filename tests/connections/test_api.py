"""/api/v1/connections: a lead adds, lists, tests, disables and enables connections; secrets
go in and never come out; bad input names the field; other roles and organisations are refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.connectors import registry
from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.simulator import SimulatorConnector
from tests.api.conftest import World
from tests.connections.helpers import connection_row

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters
# Nothing listens on the discard port: WeCom "cannot be reached" without the tests touching the internet.
UNREACHABLE = "http://127.0.0.1:9"
WECOM = {
    "platform": "wecom",
    "name": "企业微信主体",
    "settings": {"corp_id": "ww0123456789abcdef", "agent_id": "1000002", "api_base": UNREACHABLE},
    "secrets": {"secret": "app-secret-value-123", "token": "tok3nValue", "aes_key": AES_KEY},
}


def _add(client: TestClient, world: World, body: dict[str, Any], who: str = "lead") -> Any:
    return client.post("/api/v1/connections", json=body, headers=world.headers(who))


def test_lead_adds_a_simulator_connection(client: TestClient, world: World) -> None:
    response = _add(client, world, {"platform": "simulator", "name": "sandbox", "settings": {"seed": 7}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["platform"] == "simulator" and body["name"] == "sandbox"
    assert body["callback_path"] == f"/hooks/simulator/{body['id']}"
    assert body["settings"] == {"seed": 7}
    assert body["has_secrets"] == {"webhook_secret": False}
    assert body["status"] == "active" and body["last_error"] is None and body["tested_at"]
    listed = client.get("/api/v1/connections", headers=world.headers("lead")).json()
    assert [c["id"] for c in listed] == [body["id"]]
    # The connector is built for it (its own simulated platform) through the registry.
    with world.db() as s:
        connector = registry.connector_for(s, body["id"])
    assert isinstance(connector, SimulatorConnector)


def test_a_platform_without_a_connector_is_stored_with_the_reason(client: TestClient, world: World) -> None:
    response = _add(client, world, WECOM)
    assert response.status_code == 201, response.text
    body = response.json()
    # WeCom cannot be reached with these made-up credentials: stored, with gettoken's reason.
    assert body["status"] == "error" and ("gettoken" in body["last_error"] or "40013" in body["last_error"])
    assert body["has_secrets"] == {"secret": True, "token": True, "aes_key": True}
    assert body["settings"] == {"corp_id": "ww0123456789abcdef", "agent_id": 1000002, "api_base": UNREACHABLE}
    for value in WECOM["secrets"].values():
        assert value not in response.text
    from qunyun.models import Connection

    with world.db() as s:
        row = s.get(Connection, body["id"])
        assert row is not None
        for value in WECOM["secrets"].values():
            assert value not in row.secrets  # encrypted at rest
    again = client.post(f"/api/v1/connections/{body['id']}/test", headers=world.headers("lead"))
    assert again.status_code == 200 and again.json()["status"] == "error"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"platform": "myspace"}, "platform"),
        ({"name": "   "}, "name"),
        ({"name": "telegram"}, "name"),  # another platform's default connection's name
        ({"name": "import"}, "name"),  # imported history's default connection's name
        ({"settings": {"agent_id": "1000002"}}, "settings.corp_id"),
        ({"settings": {**WECOM["settings"], "agent_id": "one"}}, "settings.agent_id"),
        ({"settings": {**WECOM["settings"], "colour": "red"}}, "settings.colour"),
        ({"secrets": {**WECOM["secrets"], "aes_key": AES_KEY[:42]}}, "secrets.aes_key"),
        ({"secrets": {"secret": "app-secret-value-123", "token": "tok3nValue"}}, "secrets.aes_key"),
        ({"secrets": {**WECOM["secrets"], "secret": 12345678}}, "secrets.secret"),
    ],
)
def test_bad_input_is_422_naming_the_field(
    client: TestClient, world: World, change: dict[str, Any], field: str
) -> None:
    response = _add(client, world, {**WECOM, **change})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert AES_KEY not in response.text and "app-secret-value-123" not in response.text
    assert client.get("/api/v1/connections", headers=world.headers("lead")).json() == []


TOKEN = "123456:" + "A" * 35
HOME = "https://m.org"


@pytest.mark.parametrize(
    ("platform", "settings", "secrets", "field"),
    [
        ("telegram", {}, {"bot_token": TOKEN}, "secrets.webhook_secret"),
        ("telegram", {"mode": "push"}, {}, "settings.mode"),
        ("telegram", {"mode": "polling"}, {"bot_token": "x"}, "secrets.bot_token"),
        ("matrix", {"homeserver": "matrix.org", "user_id": "@a:b"}, {}, "settings.homeserver"),
        ("matrix", {"homeserver": HOME, "user_id": "bot"}, {}, "settings.user_id"),
        ("matrix", {"homeserver": HOME, "user_id": "@a:m.org"}, {}, "secrets.access_token"),
        ("simulator", {"seed": "x"}, {}, "settings.seed"),
    ],
)
def test_each_platform_checks_its_fields(
    client: TestClient, world: World, platform: str, settings: dict[str, Any], secrets: dict[str, Any], field: str
) -> None:
    body = {"platform": platform, "name": "bot", "settings": settings, "secrets": secrets}
    response = _add(client, world, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_telegram_polling_needs_no_webhook_secret_and_matrix_is_stored(client: TestClient, world: World) -> None:
    telegram = {
        "platform": "telegram",
        "name": "bot",
        "settings": {"mode": "polling"},
        "secrets": {"bot_token": "123456:" + "A" * 35},
    }
    assert _add(client, world, telegram).status_code == 201
    matrix = {
        "platform": "matrix",
        "name": "matrix-bot",
        "settings": {"homeserver": "https://matrix.example.org", "user_id": "@qunyun:example.org"},
        "secrets": {"access_token": "syt_secret_token_value"},
    }
    body = _add(client, world, matrix).json()
    assert body["has_secrets"] == {"access_token": True, "as_token": False, "hs_token": False}
    assert "syt_secret" not in str(body)


def test_names_are_unique_per_organisation(client: TestClient, world: World) -> None:
    assert _add(client, world, {"platform": "simulator", "name": "主账号"}).status_code == 201
    again = _add(client, world, {"platform": "simulator", "name": " 主账号 "})
    assert again.status_code == 409 and again.json()["field"] == "name"
    # Another organisation may use the same name.
    assert _add(client, world, {"platform": "simulator", "name": "主账号"}, who="lead_b").status_code == 201


@pytest.mark.parametrize("who", ["owner", "admin", "operator", "analyst"])
def test_only_leads_may_see_or_change_connections(client: TestClient, world: World, who: str) -> None:
    added = _add(client, world, {"platform": "simulator", "name": "sandbox"}).json()
    headers = world.headers(who)
    assert client.get("/api/v1/connections", headers=headers).status_code == 403
    assert _add(client, world, {"platform": "simulator", "name": "x"}, who=who).status_code == 403
    for action in ("test", "disable", "enable"):
        assert client.post(f"/api/v1/connections/{added['id']}/{action}", headers=headers).status_code == 403


def test_another_organisations_connection_is_404_like_a_missing_one(client: TestClient, world: World) -> None:
    theirs = _add(client, world, {"platform": "simulator", "name": "theirs"}, who="lead_b").json()
    for action in ("test", "disable", "enable"):
        for connection_id in (theirs["id"], 999_999):
            response = client.post(f"/api/v1/connections/{connection_id}/{action}", headers=world.headers("lead"))
            assert response.status_code == 404, response.text
    assert client.get("/api/v1/connections", headers=world.headers("lead")).json() == []
    assert client.get("/api/v1/connections").status_code == 401
    assert client.post("/api/v1/connections", json={"platform": "simulator", "name": "x"}).status_code == 401


def test_disable_and_enable(client: TestClient, world: World) -> None:
    from qunyun.connectors.base import ConnectorUnavailable
    from qunyun.models import AuditLog

    added = _add(client, world, {"platform": "simulator", "name": "sandbox"}).json()
    url = f"/api/v1/connections/{added['id']}"
    disabled = client.post(f"{url}/disable", headers=world.headers("lead")).json()
    assert disabled["status"] == "disabled"
    with world.db() as s, pytest.raises(ConnectorUnavailable):
        registry.connector_for(s, added["id"])
    tested = client.post(f"{url}/test", headers=world.headers("lead")).json()
    assert tested["status"] == "disabled" and tested["last_error"] is None  # tested, still off
    enabled = client.post(f"{url}/enable", headers=world.headers("lead")).json()
    assert enabled["status"] == "active"
    with world.db() as s:
        assert registry.connector_for(s, added["id"]) is not None
        actions = s.scalars(select(AuditLog.action).where(AuditLog.target_type == "connection").order_by(AuditLog.id))
        assert list(actions) == ["connection.add", "connection.disable", "connection.enable"]


@pytest.fixture
def checked_simulator() -> Iterator[list[ConnectionConfig]]:
    """The simulator's factory with a check that fails while the seed is 13, echoing the secret."""
    from qunyun.connectors.simulator import factory

    seen: list[ConnectionConfig] = []

    def check(config: ConnectionConfig) -> None:
        seen.append(config)
        if config.settings.get("seed") == 13:
            raise RuntimeError(f"401 Unauthorized for secret {config.secrets.get('webhook_secret')}")

    registry.register_factory("simulator", factory.build, check)
    try:
        yield seen
    finally:
        registry.register_factory("simulator", factory.build)


def test_the_check_decides_the_status_and_never_leaks_the_secret(
    client: TestClient, world: World, checked_simulator: list[ConnectionConfig], caplog: pytest.LogCaptureFixture
) -> None:
    from qunyun.connections.service import update_connection
    from qunyun.models import Role

    caplog.set_level(logging.DEBUG)
    secret = "hunter2-webhook-secret"
    body = {"platform": "simulator", "name": "unlucky", "settings": {"seed": 13}, "secrets": {"webhook_secret": secret}}
    added = _add(client, world, body).json()
    assert added["status"] == "error"
    assert added["last_error"] == "401 Unauthorized for secret ***"
    assert checked_simulator[-1].secrets == {"webhook_secret": secret}
    assert secret not in repr(checked_simulator[-1])

    from qunyun.auth.scope import Scope

    with world.db() as s:
        scope = Scope(staff_id=world.staff["lead"], org_id=world.org_a, role=Role.LEAD)
        first = registry.connector_for(s, added["id"])
        row = update_connection(s, scope, added["id"], settings={"seed": 14})
        s.commit()
        assert row.status == "active" and row.last_error is None
        # The connector built from the old settings is not used again.
        assert registry.connector_for(s, added["id"]) is not first
    listed = client.get("/api/v1/connections", headers=world.headers("lead")).json()
    assert listed[0]["status"] == "active" and listed[0]["has_secrets"] == {"webhook_secret": True}
    assert secret not in caplog.text


def test_a_lead_changes_a_connection(client: TestClient, world: World) -> None:
    from qunyun.connections.secrets import decrypt
    from qunyun.models import Connection

    added = _add(client, world, WECOM).json()
    _add(client, world, {"platform": "simulator", "name": "other"})
    url = f"/api/v1/connections/{added['id']}"
    headers = world.headers("lead")
    changed = client.patch(url, json={"name": "新主体", "secrets": {"token": "n3wToken"}}, headers=headers)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "新主体" and body["has_secrets"] == {"secret": True, "token": True, "aes_key": True}
    assert "n3wToken" not in changed.text
    with world.db() as s:
        row = s.get(Connection, added["id"])
        assert row is not None
        assert decrypt(row.secrets) == {**WECOM["secrets"], "token": "n3wToken"}
    assert client.patch(url, json={"name": "other"}, headers=headers).status_code == 409
    bad = client.patch(url, json={"settings": {"corp_id": "ww0123456789abcdef", "agent_id": "x"}}, headers=headers)
    assert bad.status_code == 422 and bad.json()["field"] == "settings.agent_id"
    assert client.patch(url, json={"name": "x"}, headers=world.headers("owner")).status_code == 403
    assert client.patch(url, json={"name": "x"}, headers=world.headers("lead_b")).status_code == 404


def test_a_connector_built_for_a_deleted_connection_is_not_its_successors(client: TestClient, world: World) -> None:
    from qunyun.connectors.base import Capability
    from qunyun.models import Connection

    added = _add(client, world, {"platform": "simulator", "name": "gone"}).json()
    with world.db() as s:
        row = s.get(Connection, added["id"])
        assert row is not None
        assert registry.profile_of(row).has(Capability.KICK)
        assert isinstance(registry.connector_for(s, row.id), SimulatorConnector)  # built and kept
        s.delete(row)
        s.flush()
        # The id comes round again (SQLite reuses it after a delete; a restored backup may too).
        again = connection_row(
            world.org_a,
            "企业微信",
            platform="wecom",
            id=added["id"],
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        s.add(again)
        s.flush()
        assert not registry.profile_of(again).has(Capability.KICK)  # WeCom cannot kick by API
        s.rollback()

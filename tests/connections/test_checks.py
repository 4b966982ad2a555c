"""A connection's check calls its platform with no transaction open: a slow platform holds no
lock (another session writes the connection meanwhile), a check that never comes back leaves
nothing half-written, and a change made while the platform was asked is not overwritten."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from qunyun.connectors import registry
from qunyun.connectors.registry import ConnectionConfig
from qunyun.models import AuditLog, Connection
from qunyun.timeutil import utcnow
from tests.api.conftest import World

WAIT = 20  # seconds a test waits for the other side before it fails


class Died(BaseException):
    """The process dies while the platform is being asked (not an error a check reports)."""


@dataclass
class SlowPlatform:
    """The simulator's factory with a check that waits until the test lets it go, then fails
    when ``failure`` is set (or the process "dies" when it is ``Died``)."""

    asked: threading.Event = field(default_factory=threading.Event)
    answer: threading.Event = field(default_factory=threading.Event)
    failure: BaseException | None = None
    seen: list[ConnectionConfig] = field(default_factory=list)

    def check(self, config: ConnectionConfig) -> None:
        self.seen.append(config)
        self.asked.set()
        assert self.answer.wait(WAIT), "the test never answered"
        if self.failure is not None:
            raise self.failure


@pytest.fixture
def slow() -> Iterator[SlowPlatform]:
    from qunyun.connectors.simulator import factory

    platform = SlowPlatform()
    registry.register_factory("simulator", factory.build, platform.check)
    try:
        yield platform
    finally:
        platform.answer.set()
        registry.register_factory("simulator", factory.build)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as executor:
        yield executor


def meanwhile(world: World, work: Callable[[Session], Any]) -> Any:
    """``work`` in a session of its own, committed; it gives up on a lock after 3 seconds rather
    than waiting for it."""
    with world.db() as s:
        sqlite = s.get_bind().dialect.name == "sqlite"
        s.execute(text("PRAGMA busy_timeout = 3000" if sqlite else "SET LOCAL lock_timeout = '3s'"))
        try:
            result = work(s)
            s.commit()
        finally:
            if sqlite:  # the pooled connection goes back with the engine's own timeout
                s.execute(text("PRAGMA busy_timeout = 30000"))
                s.rollback()
        return result


def added(client: TestClient, world: World, name: str = "sandbox") -> int:
    response = client.post(
        "/api/v1/connections", json={"platform": "simulator", "name": name}, headers=world.headers("lead")
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def in_background(pool: ThreadPoolExecutor, slow: SlowPlatform, request: Callable[[], Any]) -> Future[Any]:
    slow.asked.clear()
    future = pool.submit(request)
    assert slow.asked.wait(WAIT), "the platform was never asked"
    return future


def test_a_slow_check_holds_no_transaction(
    client: TestClient, world: World, slow: SlowPlatform, pool: ThreadPoolExecutor
) -> None:
    slow.answer.set()
    connection_id = added(client, world)
    slow.answer.clear()
    url = f"/api/v1/connections/{connection_id}/test"
    testing = in_background(pool, slow, lambda: client.post(url, headers=world.headers("lead")))

    # While the platform thinks, another session writes the row (and another table): no lock
    # of the request is in its way, on PostgreSQL and on SQLite alike.
    def write(s: Session) -> None:
        s.execute(update(Connection).where(Connection.id == connection_id).values(name="沙盒"))

    meanwhile(world, write)
    assert not testing.done()
    slow.answer.set()
    response = testing.result(WAIT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "沙盒" and body["status"] == "active" and body["tested_at"]


def test_an_added_connection_appears_only_with_its_check(
    client: TestClient, world: World, slow: SlowPlatform, pool: ThreadPoolExecutor
) -> None:
    slow.failure = RuntimeError("503 Service Unavailable")
    body = {"platform": "simulator", "name": "慢平台", "settings": {"seed": 3}}
    adding = in_background(
        pool, slow, lambda: client.post("/api/v1/connections", json=body, headers=world.headers("lead"))
    )
    assert slow.seen[-1].settings == {"seed": 3} and slow.seen[-1].name == "慢平台"

    def look(s: Session) -> int:
        return s.scalar(select(func.count()).select_from(Connection).where(Connection.name == "慢平台")) or 0

    assert meanwhile(world, look) == 0  # nothing half-written while the platform is asked
    slow.answer.set()
    response = adding.result(WAIT)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "error" and response.json()["last_error"] == "503 Service Unavailable"
    assert meanwhile(world, look) == 1


def test_a_check_that_never_comes_back_leaves_nothing(world: World, slow: SlowPlatform) -> None:
    """The process dies while the platform is asked (the command line's unit of work here)."""
    from qunyun.auth.scope import Scope
    from qunyun.connections.service import add_connection
    from qunyun.db.session import unit_of_work
    from qunyun.models import Role

    slow.failure = Died()
    slow.answer.set()
    lead = Scope(staff_id=world.staff["lead"], org_id=world.org_a, role=Role.LEAD)
    with pytest.raises(Died), unit_of_work(world.db) as s:
        add_connection(s, lead, "simulator", "半截", {"seed": 1}, {})
    with world.db() as s:
        assert s.scalar(select(func.count()).select_from(Connection)) == 0
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.target_type == "connection")) == 0


def test_a_change_made_while_the_platform_is_asked_is_not_overwritten(
    client: TestClient, world: World, slow: SlowPlatform, pool: ThreadPoolExecutor
) -> None:
    slow.answer.set()
    connection_id = added(client, world)
    slow.answer.clear()
    url = f"/api/v1/connections/{connection_id}"
    changing = in_background(
        pool, slow, lambda: client.patch(url, json={"settings": {"seed": 5}}, headers=world.headers("lead"))
    )

    def other_change(s: Session) -> None:
        row = s.get_one(Connection, connection_id)
        row.settings = {"seed": 9}
        row.updated_at = utcnow()

    meanwhile(world, other_change)
    slow.answer.set()
    response = changing.result(WAIT)
    assert response.status_code == 409 and response.json()["field"] == "connection_id"
    with world.db() as s:
        assert s.get_one(Connection, connection_id).settings == {"seed": 9}
        updates = s.scalars(select(AuditLog.action).where(AuditLog.action == "connection.update")).all()
        assert updates == []


def test_a_test_of_settings_changed_meanwhile_records_nothing_about_them(
    client: TestClient, world: World, slow: SlowPlatform, pool: ThreadPoolExecutor
) -> None:
    """The outcome of a check made with the old settings is not written over the new ones."""
    slow.answer.set()
    connection_id = added(client, world)
    with world.db() as s:
        tested_at = s.get_one(Connection, connection_id).tested_at
    slow.answer.clear()
    slow.failure = RuntimeError("refused")
    url = f"/api/v1/connections/{connection_id}/test"
    testing = in_background(pool, slow, lambda: client.post(url, headers=world.headers("lead")))
    meanwhile(
        world,
        lambda s: s.execute(update(Connection).where(Connection.id == connection_id).values(settings={"seed": 2})),
    )
    slow.answer.set()
    body = testing.result(WAIT).json()
    assert body["status"] == "active" and body["last_error"] is None and body["settings"] == {"seed": 2}
    with world.db() as s:
        assert s.get_one(Connection, connection_id).tested_at == tested_at


def test_enabling_checks_outside_the_transaction_too(
    client: TestClient, world: World, slow: SlowPlatform, pool: ThreadPoolExecutor
) -> None:
    slow.answer.set()
    connection_id = added(client, world)
    headers = world.headers("lead")
    assert client.post(f"/api/v1/connections/{connection_id}/disable", headers=headers).status_code == 200
    slow.answer.clear()
    slow.failure = RuntimeError("token revoked")
    url = f"/api/v1/connections/{connection_id}/enable"
    enabling = in_background(pool, slow, lambda: client.post(url, headers=headers))
    meanwhile(
        world,
        lambda s: s.execute(update(Connection).where(Connection.id == connection_id).values(name="已停用的沙盒")),
    )
    slow.answer.set()
    body = enabling.result(WAIT).json()
    assert body["status"] == "error" and body["last_error"] == "token revoked" and body["name"] == "已停用的沙盒"

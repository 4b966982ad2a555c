"""Logins under attack: the throttle counts per account and source, shared by every process;
X-Forwarded-For only from trusted proxies; a password check never holds the write lock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.api.conftest import PASSWORD, World

WRONG = "wrong password"
A, B, C = "203.0.113.10", "203.0.113.20", "203.0.113.30"
PROXY = "10.0.0.2"


def _from(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, client=(address, 40000))


def _token(c: TestClient, username: str, password: str, **headers: str) -> Any:
    return c.post("/api/v1/auth/tokens", json={"username": username, "password": password}, headers=headers)


@pytest.fixture
def trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    from qunyun.config import get_settings

    def configure(value: str) -> None:
        monkeypatch.setenv("QUNYUN_TRUSTED_PROXIES", value)
        get_settings.cache_clear()

    yield configure
    get_settings.cache_clear()


def _login_ips(world: World, username: str) -> list[str | None]:
    from qunyun.models import AuditLog

    with world.db() as s:
        return list(
            s.scalars(
                select(AuditLog.ip)
                .where(AuditLog.action == "auth.login", AuditLog.staff_id == world.staff[username])
                .order_by(AuditLog.id)
            )
        )


def test_wrong_passwords_from_one_address_do_not_lock_out_another(
    client: TestClient, world: World, api_app: FastAPI
) -> None:
    attacker, lead = _from(api_app, A), _from(api_app, B)
    for _ in range(5):
        assert _token(attacker, "lead", WRONG).status_code == 401
    locked = _token(attacker, "lead", PASSWORD)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert _token(lead, "lead", PASSWORD).status_code == 201
    # The console form follows the same rule.
    assert _token(attacker, "lead", PASSWORD).status_code == 429


def test_one_address_spraying_many_usernames_is_stopped(client: TestClient, world: World, api_app: FastAPI) -> None:
    sprayer = _from(api_app, A)
    for i in range(30):
        assert _token(sprayer, f"user{i}", WRONG).status_code == 401
    assert _token(sprayer, "lead", PASSWORD).status_code == 429
    assert _token(_from(api_app, B), "lead", PASSWORD).status_code == 201


def test_an_account_has_a_ceiling_across_sources(client: TestClient, world: World, api_app: FastAPI) -> None:
    from qunyun.auth.throttle import LoginThrottle

    api_app.state.login_throttle = LoginThrottle(per_account=8)
    for address in (A, B):
        for _ in range(4):
            assert _token(_from(api_app, address), "analyst", WRONG).status_code == 401
    assert _token(_from(api_app, C), "analyst", PASSWORD).status_code == 429
    assert _token(_from(api_app, C), "lead", PASSWORD).status_code == 201


def test_a_correct_password_clears_only_its_own_source(client: TestClient, world: World, api_app: FastAPI) -> None:
    for _ in range(4):
        assert _token(_from(api_app, A), "owner", WRONG).status_code == 401
        assert _token(_from(api_app, B), "owner", WRONG).status_code == 401
    assert _token(_from(api_app, A), "owner", PASSWORD).status_code == 201
    for _ in range(4):
        assert _token(_from(api_app, A), "owner", WRONG).status_code == 401  # A starts again from 0
    assert _token(_from(api_app, B), "owner", WRONG).status_code == 401  # B's 5th
    assert _token(_from(api_app, B), "owner", PASSWORD).status_code == 429


def test_two_app_instances_share_the_failure_counts(client: TestClient, world: World, api_app: FastAPI) -> None:
    from qunyun.api.app import create_app

    other = create_app()  # a second server process, as far as the throttle can tell
    for _ in range(5):
        assert _token(_from(api_app, A), "analyst", WRONG).status_code == 401
    assert _token(_from(other, A), "analyst", PASSWORD).status_code == 429


def test_forwarded_for_is_ignored_without_trusted_proxies(client: TestClient, world: World, api_app: FastAPI) -> None:
    peer = _from(api_app, PROXY)
    for i in range(5):
        assert _token(peer, "analyst", WRONG, **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code == 401
    rotated = _token(peer, "analyst", PASSWORD, **{"X-Forwarded-For": "198.51.100.99"})
    assert rotated.status_code == 429
    assert _token(peer, "lead", PASSWORD, **{"X-Forwarded-For": "198.51.100.99"}).status_code == 201
    assert _login_ips(world, "lead") == [PROXY]


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(
    client: TestClient, world: World, api_app: FastAPI, trusted_proxies: Callable[[str], None]
) -> None:
    trusted_proxies("10.0.0.0/24, 192.0.2.1")
    proxy, stranger = _from(api_app, PROXY), _from(api_app, A)
    for _ in range(5):
        assert _token(proxy, "analyst", WRONG, **{"X-Forwarded-For": B}).status_code == 401
    assert _token(proxy, "analyst", PASSWORD, **{"X-Forwarded-For": B}).status_code == 429
    # Another client behind the same proxy; a spoofed hop left of it is not the client.
    chain = {"X-Forwarded-For": f"{B}, {C}"}
    assert _token(proxy, "analyst", PASSWORD, **chain).status_code == 201
    # A peer that is not a proxy cannot claim to be someone else.
    assert _token(stranger, "lead", PASSWORD, **{"X-Forwarded-For": C}).status_code == 201
    assert _login_ips(world, "analyst") == [C]
    assert _login_ips(world, "lead") == [A]


def test_serve_trusts_forwarded_headers_only_from_configured_proxies(
    monkeypatch: pytest.MonkeyPatch, trusted_proxies: Callable[[str], None], database_url: str
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from qunyun.cli import app

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda _app, **kwargs: calls.append(kwargs))
    runner = CliRunner()
    assert runner.invoke(app, ["serve", "--job-threads", "0"]).exit_code == 0
    assert calls[-1]["proxy_headers"] is False  # uvicorn's own default trusts 127.0.0.1
    trusted_proxies("10.0.0.0/8")
    assert runner.invoke(app, ["serve", "--job-threads", "0"]).exit_code == 0
    assert calls[-1]["proxy_headers"] is True and calls[-1]["forwarded_allow_ips"] == "10.0.0.0/8"


def test_a_bad_trusted_proxy_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from qunyun.config import Settings

    monkeypatch.setenv("QUNYUN_TRUSTED_PROXIES", "10.0.0.1, proxy.internal")
    with pytest.raises(ValidationError, match=r"proxy\.internal"):
        Settings()


def test_old_failure_records_are_pruned(client: TestClient, world: World, api_app: FastAPI) -> None:
    from qunyun.models import LoginFailure

    with world.db() as s:
        s.add(LoginFailure(username="ghost", source=B, failed_at=datetime.now(UTC) - timedelta(days=2)))
        s.commit()
    assert _token(_from(api_app, A), "lead", WRONG).status_code == 401
    with world.db() as s:
        assert s.scalars(select(LoginFailure.username)).all() == ["lead"]
        assert s.scalar(select(func.count()).select_from(LoginFailure).where(LoginFailure.username == "ghost")) == 0


def test_a_password_check_in_progress_does_not_hold_the_write_lock(
    client: TestClient, world: World, api_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a failed login is inside its (slow) password check, a lead's event post commits."""
    from qunyun.auth import service

    real_verify = service.verify_password
    in_check, release = threading.Event(), threading.Event()

    def held_verify(password_hash: str, password: str) -> bool:
        in_check.set()
        release.wait()
        return real_verify(password_hash, password)

    monkeypatch.setattr(service, "verify_password", held_verify)
    headers = world.headers("lead")
    answers: list[int] = []

    def failed_login() -> None:
        answers.append(_token(_from(api_app, A), "nobody", WRONG).status_code)

    login = threading.Thread(target=failed_login)
    login.start()
    try:
        assert in_check.wait(timeout=60)
        event = {"id": "during-login", "ts": "2026-03-05T10:00:00+08:00", "kind": "member.joined"}
        posted = client.post("/api/v1/events", json=[{**event, "group": "ext-g1", "member": "m-new"}], headers=headers)
        assert posted.status_code == 200, posted.text
        assert login.is_alive() and not answers  # the login was still inside its check
    finally:
        release.set()
        login.join()
    assert answers == [401]


def test_forwarded_client_walks_the_chain_from_the_right() -> None:
    from qunyun.auth.address import forwarded_client, parse_networks, throttle_source

    proxies = parse_networks("10.0.0.0/8,::1")
    assert forwarded_client("10.1.2.3", ["1.1.1.1, 2.2.2.2, 10.0.0.9"], proxies) == "2.2.2.2"
    assert forwarded_client("10.1.2.3", ["1.1.1.1", "2.2.2.2:5555"], proxies) == "2.2.2.2"
    assert forwarded_client("10.1.2.3", ["10.0.0.7, 10.0.0.8"], proxies) == "10.0.0.7"
    assert forwarded_client("10.1.2.3", [], proxies) == "10.1.2.3"
    assert forwarded_client("8.8.8.8", ["1.1.1.1"], proxies) == "8.8.8.8"
    assert forwarded_client("10.1.2.3", ["1.1.1.1"], ()) == "10.1.2.3"
    assert throttle_source("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert throttle_source("::ffff:1.2.3.4") == "1.2.3.4"
    assert throttle_source("testclient") == "testclient"


def test_password_checks_are_bounded_and_a_login_without_a_slot_is_503(
    client: TestClient, world: World, api_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 takes 64 MiB and a core per check: a burst of logins may not run them all at once."""
    from qunyun.auth import service

    real_verify = service.verify_password
    in_check, release = threading.Event(), threading.Event()

    def held_verify(password_hash: str, password: str) -> bool:
        in_check.set()
        release.wait()
        return real_verify(password_hash, password)

    monkeypatch.setattr(service, "_check_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(service, "CHECK_WAIT_SECONDS", 0.01)
    monkeypatch.setattr(service, "verify_password", held_verify)
    answers: list[int] = []
    login = threading.Thread(target=lambda: answers.append(_token(_from(api_app, A), "lead", PASSWORD).status_code))
    login.start()
    try:
        assert in_check.wait(timeout=60)
        busy = _token(_from(api_app, B), "owner", PASSWORD, **{"Accept-Language": "zh-CN"})
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
        assert busy.json()["message"] == "登录请求过多，请稍后再试。"
    finally:
        release.set()
        login.join()
    assert answers == [201]
    # The refused attempt did not count as a failure.
    assert _token(_from(api_app, B), "owner", PASSWORD).status_code == 201

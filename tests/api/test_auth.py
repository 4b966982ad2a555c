"""Logging in and out: API tokens, console sessions, CSRF, throttling, expiry, audit, language."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.conftest import PASSWORD, World, console_login, csrf_from


def _audit_actions(world: World) -> list[tuple[str, int | None]]:
    from qunyun.models import AuditLog

    with world.db() as s:
        return [(a.action, a.staff_id) for a in s.scalars(select(AuditLog).order_by(AuditLog.id))]


def test_api_token_login_use_and_revoke(client: TestClient, world: World) -> None:
    response = client.post("/api/v1/auth/tokens", json={"username": "owner", "password": PASSWORD, "name": "ci"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token"].startswith("qya_") and body["token_type"] == "bearer"
    headers = {"Authorization": f"Bearer {body['token']}"}

    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["username"] == "owner"
    assert me.json()["organisation"]["slug"] == "acme"
    assert me.json()["group_ids"] == sorted([world.groups["g1"], world.groups["g2"]])
    assert me.json()["can_write"] is True

    assert client.delete("/api/v1/auth/tokens/current", headers=headers).status_code == 204
    again = client.get("/api/v1/me", headers=headers)
    assert again.status_code == 401
    assert again.headers["www-authenticate"] == "Bearer"
    assert ("auth.login", world.staff["owner"]) in _audit_actions(world)
    assert ("auth.token_revoked", world.staff["owner"]) in _audit_actions(world)


def test_only_the_hash_of_a_token_is_stored(client: TestClient, world: World) -> None:
    from qunyun.auth.tokens import hash_secret
    from qunyun.models import AuthToken

    secret = client.post("/api/v1/auth/tokens", json={"username": "lead", "password": PASSWORD}).json()["token"]
    with world.db() as s:
        hashes = list(s.scalars(select(AuthToken.token_hash)))
    assert hash_secret(secret) in hashes
    assert all(secret not in h for h in hashes)


def test_wrong_password_is_401_and_audited(client: TestClient, world: World) -> None:
    response = client.post("/api/v1/auth/tokens", json={"username": "owner", "password": "wrong password"})
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    unknown = client.post("/api/v1/auth/tokens", json={"username": "nobody", "password": "wrong password"})
    assert unknown.status_code == 401
    assert unknown.json()["message"] == response.json()["message"]  # no username oracle
    assert ("auth.login_failed", world.staff["owner"]) in _audit_actions(world)


def test_failed_logins_are_throttled_per_username(client: TestClient, world: World) -> None:
    for _ in range(5):
        r = client.post("/api/v1/auth/tokens", json={"username": "analyst", "password": "wrong password"})
        assert r.status_code == 401
    locked = client.post("/api/v1/auth/tokens", json={"username": "analyst", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"
    assert int(locked.headers["retry-after"]) > 0
    # Another username from the same address is not locked by these five failures.
    assert client.post("/api/v1/auth/tokens", json={"username": "lead", "password": PASSWORD}).status_code == 201


def test_token_request_names_the_bad_field(client: TestClient, world: World) -> None:
    response = client.post("/api/v1/auth/tokens", json={"username": "owner"})
    assert response.status_code == 422
    assert response.json()["field"] == "password"
    too_long = client.post(
        "/api/v1/auth/tokens", json={"username": "owner", "password": PASSWORD, "expires_in_days": 10_000}
    )
    assert too_long.status_code == 422
    assert too_long.json()["field"] == "expires_in_days"


def test_expired_api_token_is_401(client: TestClient, world: World) -> None:
    from qunyun.auth.tokens import hash_secret
    from qunyun.models import AuthToken

    headers = world.headers("lead")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    with world.db() as s:
        token = s.scalar(select(AuthToken).where(AuthToken.token_hash == hash_secret(world.token("lead"))))
        assert token is not None
        token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        s.commit()
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_last_used_at_moves_at_most_once_a_minute(client: TestClient, world: World) -> None:
    from qunyun.auth.tokens import hash_secret
    from qunyun.models import AuthToken

    headers = world.headers("lead")

    def last_used() -> datetime | None:
        with world.db() as s:
            return s.scalar(
                select(AuthToken.last_used_at).where(AuthToken.token_hash == hash_secret(world.token("lead")))
            )

    assert last_used() is None
    client.get("/api/v1/me", headers=headers)
    first = last_used()
    assert first is not None
    client.get("/api/v1/me", headers=headers)
    assert last_used() == first
    with world.db() as s:
        token = s.scalar(select(AuthToken).where(AuthToken.token_hash == hash_secret(world.token("lead"))))
        assert token is not None
        token.last_used_at = first - timedelta(minutes=2)
        s.commit()
    client.get("/api/v1/me", headers=headers)
    moved = last_used()
    assert moved is not None and moved > first - timedelta(minutes=2)


def test_console_login_landing_and_logout(client: TestClient, world: World) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    console_login(client, "owner")
    home = client.get("/")
    assert home.status_code == 200
    assert "Owner" in home.text and "Alpha 福利群" in home.text and "Beta 学习群" in home.text
    assert "Gamma 核心群" not in home.text  # not in the owner's scope
    assert "退出登录" in home.text  # Chinese by default
    # The session cookie also authenticates API reads.
    assert client.get("/api/v1/me").json()["username"] == "owner"

    logout = client.post("/logout", data={"csrf_token": csrf_from(home.text)}, follow_redirects=False)
    assert logout.status_code == 303 and logout.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303
    actions = _audit_actions(world)
    assert ("auth.login", world.staff["owner"]) in actions
    assert ("auth.logout", world.staff["owner"]) in actions


def test_session_cookie_flags(client: TestClient, world: World) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": "lead", "password": PASSWORD, "csrf_token": csrf_from(page.text)},
        follow_redirects=False,
    )
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "qunyun_session" in v)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # QUNYUN_ENV=test; production sets Secure


def test_console_wrong_password_rerenders_form(client: TestClient, world: World) -> None:
    page = client.get("/login")
    response = client.post(
        "/login", data={"username": "owner", "password": "nope nope", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text
    assert "qunyun_session" not in client.cookies


def test_login_page_is_bilingual(client: TestClient, world: World) -> None:
    zh = client.get("/login")
    assert "登录" in zh.text and 'lang="zh-CN"' in zh.text
    en = client.get("/login?lang=en")
    assert "Sign in" in en.text and 'lang="en"' in en.text
    # The choice sticks through the lang cookie.
    assert "Sign in" in client.get("/login").text
    page = client.get("/login")
    failed = client.post(
        "/login", data={"username": "owner", "password": "nope nope", "csrf_token": csrf_from(page.text)}
    )
    assert "Wrong username or password" in failed.text


def test_staff_language_is_used_without_a_cookie(client: TestClient, world: World) -> None:
    from qunyun.models import Staff

    with world.db() as s:
        staff = s.get(Staff, world.staff["analyst"])
        assert staff is not None
        staff.language = "en"
        s.commit()
    console_login(client, "analyst")
    home = client.get("/")
    assert "Sign out" in home.text and "read only" in home.text


def test_message_catalogues_have_the_same_keys_and_placeholders() -> None:
    import string

    from qunyun.locale import catalogue, catalogue_files

    for zh_file, en_file in zip(catalogue_files("zh"), catalogue_files("en"), strict=True):
        assert zh_file.name.removeprefix("zh") == en_file.name.removeprefix("en")
        zh = json.loads(zh_file.read_text(encoding="utf-8"))
        en = json.loads(en_file.read_text(encoding="utf-8"))
        assert set(zh) == set(en), zh_file.name

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    zh_all, en_all = catalogue("zh"), catalogue("en")
    differing = {key for key in zh_all if fields(zh_all[key]) != fields(en_all[key])}
    assert not differing


def test_console_pages_have_security_headers(client: TestClient, world: World) -> None:
    page = client.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    css = client.get("/static/console.css")
    assert css.status_code == 200 and "--accent" in css.text


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_an_unreachable_database(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from qunyun.api import app as app_module
    from qunyun.db.session import make_engine

    dead = make_engine("postgresql://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    monkeypatch.setattr(app_module, "get_engine", lambda: dead)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    dead.dispose()


def test_cookie_writes_need_the_csrf_header(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    body = {"name": "New tag"}
    assert client.post("/api/v1/tags", json=body).status_code == 403
    assert client.post("/api/v1/tags", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    home = client.get("/")
    ok = client.post("/api/v1/tags", json=body, headers={"X-CSRF-Token": csrf_from(home.text)})
    assert ok.status_code == 201, ok.text


def test_lead_creates_staff_who_can_log_in(client: TestClient, world: World) -> None:
    lead = world.headers("lead")
    body = {"username": "newbie", "password": "a long enough secret", "role": "operator", "language": "en"}
    created = client.post("/api/v1/staff", json=body, headers=lead)
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "operator" and created.json()["group_ids"] == []
    assert "password" not in created.json()
    login = client.post("/api/v1/auth/tokens", json={"username": "newbie", "password": "a long enough secret"})
    assert login.status_code == 201

    from qunyun.models import AuditLog

    with world.db() as s:
        entry = s.scalar(select(AuditLog).where(AuditLog.action == "staff.create"))
        assert entry is not None
        assert entry.staff_id == world.staff["lead"]
        assert "a long enough secret" not in json.dumps(entry.detail)

    taken = client.post("/api/v1/staff", json=body, headers=lead)
    assert taken.status_code == 409 and taken.json()["field"] == "username"
    short = client.post("/api/v1/staff", json={**body, "username": "other", "password": "Xq7zW"}, headers=lead)
    assert short.status_code == 422 and short.json()["field"] == "password"
    assert "Xq7zW" not in json.dumps(short.json())  # the rejected password is not echoed
    bad_role = client.post("/api/v1/staff", json={**body, "username": "other", "role": "king"}, headers=lead)
    assert bad_role.status_code == 422 and bad_role.json()["field"] == "role"

    staff = client.get(f"/api/v1/staff/{world.staff['operator']}", headers=lead).json()
    assert staff["group_ids"] == [world.groups["g1"]]
    owner = client.get(f"/api/v1/staff/{world.staff['owner']}", headers=lead).json()
    assert owner["group_ids"] == sorted([world.groups["g1"], world.groups["g2"]])


def test_audit_log_reads_newest_first_with_a_cursor(client: TestClient, world: World) -> None:
    lead = world.headers("lead")
    for name in ("a", "b", "c"):
        assert client.post("/api/v1/tags", json={"name": name}, headers=lead).status_code == 201
    first = client.get("/api/v1/audit", params={"action": "tag.create", "limit": 2}, headers=lead).json()
    assert [e["detail"]["name"] for e in first["items"]] == ["c", "b"]
    assert first["items"][0]["staff_id"] == world.staff["lead"]
    assert first["items"][0]["ip"] == "testclient"
    rest = client.get(
        "/api/v1/audit", params={"action": "tag.create", "limit": 2, "cursor": first["next_cursor"]}, headers=lead
    ).json()
    assert [e["detail"]["name"] for e in rest["items"]] == ["a"] and rest["next_cursor"] is None
    one = client.get(f"/api/v1/audit/{first['items'][0]['id']}", headers=lead)
    assert one.status_code == 200 and one.json()["action"] == "tag.create"
    naive = client.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"}, headers=lead)
    assert naive.status_code == 422 and naive.json()["field"] == "since"

"""The console's /connections page (leads only, Chinese by default): the list with the callback
URL, an add form per platform whose secret inputs are password fields never filled in again,
and test / disable / enable buttons that post with the CSRF token."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import World, console_login, csrf_from

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _wecom(token: str, **change: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "platform": "wecom",
        "name": "企业微信主体",
        "settings.corp_id": "ww0123456789abcdef",
        "settings.agent_id": "1000002",
        "settings.api_base": "http://127.0.0.1:9",  # nothing listens: no call leaves the machine
        "secrets.secret": "app-secret-value-123",
        "secrets.token": "tok3nValue",
        "secrets.aes_key": AES_KEY,
        **change,
    }


def test_the_lead_adds_tests_disables_and_enables(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    page = client.get("/connections")
    assert page.status_code == 200
    text = page.text
    assert "平台连接" in text and "还没有连接" in text and 'href="/connections"' in text
    for platform in ("simulator", "wecom", "telegram", "matrix"):
        assert f'id="add-{platform}"' in text
    for name in ("secrets.secret", "secrets.token", "secrets.aes_key", "secrets.bot_token", "secrets.access_token"):
        tag = re.search(rf'<input [^>]*name="{re.escape(name)}"[^>]*>', text)
        assert tag and 'type="password"' in tag.group(0) and "value=" not in tag.group(0)
    token = csrf_from(text)

    added = client.post("/connections", data=_wecom(token), follow_redirects=False)
    assert added.status_code == 303
    listing = client.get(added.headers["location"]).text
    assert "已添加连接" in listing and "企业微信主体" in listing
    assert ("gettoken" in listing or "40013" in listing) and "异常" in listing  # WeCom refused or unreachable
    match = re.search(r'data-connection="(\d+)"', listing)
    assert match
    cid = match.group(1)
    assert f"http://testserver/hooks/wecom/{cid}" in listing
    for value in ("app-secret-value-123", "tok3nValue", AES_KEY):
        assert value not in listing

    disabled = client.post(f"/connections/{cid}/disable", data={"csrf_token": token}, follow_redirects=False)
    assert disabled.status_code == 303
    listing = client.get("/connections").text
    assert 'data-status="disabled"' in listing and f'action="/connections/{cid}/enable"' in listing
    client.post(f"/connections/{cid}/test", data={"csrf_token": token})
    client.post(f"/connections/{cid}/enable", data={"csrf_token": token})
    assert 'data-status="error"' in client.get("/connections").text


def test_a_bad_form_names_the_field_and_sends_no_secret_back(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/connections").text)
    response = client.post("/connections", data=_wecom(token, **{"secrets.aes_key": "short"}))
    assert response.status_code == 422
    text = html.unescape(response.text)
    assert "secrets.aes_key 必须是 43 位字母和数字组成的 EncodingAESKey" in text
    assert "app-secret-value-123" not in text and "tok3nValue" not in text
    assert 'value="ww0123456789abcdef"' in text  # settings are kept for another try
    assert "还没有连接" in text
    english = client.post("/connections?lang=en", data=_wecom(token, **{"settings.corp_id": ""}))
    assert english.status_code == 422 and "settings.corp_id is required" in english.text
    duplicate = _wecom(token, name="dup")
    assert client.post("/connections", data=duplicate, follow_redirects=False).status_code == 303
    assert client.post("/connections", data=duplicate).status_code == 409


def test_forms_need_the_csrf_token(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    assert client.post("/connections", data=_wecom("forged")).status_code == 403
    assert "还没有连接" in client.get("/connections").text


@pytest.mark.parametrize("who", ["owner", "operator", "analyst"])
def test_other_roles_are_refused_and_see_no_link(client: TestClient, world: World, who: str) -> None:
    console_login(client, who)
    overview = client.get("/")
    assert 'href="/connections"' not in overview.text
    assert client.get("/connections").status_code == 403
    token = csrf_from(overview.text)
    assert client.post("/connections", data=_wecom(token)).status_code == 403


def test_another_organisations_connection_is_not_found(client: TestClient, world: World) -> None:
    console_login(client, "lead_b")
    token = csrf_from(client.get("/connections").text)
    client.post("/connections", data=_wecom(token), follow_redirects=False)
    match = re.search(r'data-connection="(\d+)"', client.get("/connections").text)
    assert match
    client.cookies.clear()
    console_login(client, "lead")
    token = csrf_from(client.get("/connections").text)
    for target in (match.group(1), "999999", "abc", "9" * 40):
        response = client.post(f"/connections/{target}/disable", data={"csrf_token": token})
        assert response.status_code == 404, target
    assert client.post(f"/connections/{match.group(1)}/explode", data={"csrf_token": token}).status_code == 404

"""/docs works offline: Swagger UI's assets come from this server (an installed package), the page
names no other host and sets a 'self'-only policy; the favicon answers for the console and /docs."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from qunyun.api.app import create_app

EXTERNAL_URL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)


@pytest.fixture
def client(db: object) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        yield client


def test_docs_load_from_this_server_only(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.text
    assert not EXTERNAL_URL.search(html), html
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "http" not in csp
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', html)
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/init.js", "/favicon.ico"} <= set(assets)
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    bundle = client.get("/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in bundle.content
    init = client.get("/docs/init.js").text
    # The schema comes from this server, and Swagger UI's online validator is switched off.
    assert "validatorUrl: null" in init and not EXTERNAL_URL.search(init)
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")


def test_docs_are_served_in_production_too(db: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from qunyun.config import get_settings

    monkeypatch.setenv("QUNYUN_ENV", "production")
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            assert client.get("/docs").status_code == 200
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_the_favicon_answers_and_the_console_links_it(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.content.lstrip().startswith(b"<svg")
    login = client.get("/login")
    assert login.status_code == 200
    assert '<link rel="icon" href="/favicon.ico"' in login.text

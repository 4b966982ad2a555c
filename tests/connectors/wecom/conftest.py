"""WeCom tests: the official callback vectors, a WeCom connection of organisation A, and the fake
WeCom server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from qunyun.config import get_settings
from qunyun.connections.secrets import encrypt
from qunyun.connectors import registry
from qunyun.connectors.wecom import tokens
from qunyun.connectors.wecom.crypto import WeComCrypto
from qunyun.connectors.wecom.fake import FakeWeCom, serve
from tests.api.conftest import World, anon, api_app, client, password_hash, world
from tests.connections.helpers import connection_row

__all__ = ["anon", "api_app", "client", "password_hash", "world"]

# WeCom's own sample (WXBizMsgCrypt Sample.py of its callback SDKs).
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP_ID = "ww1436e0e65a779aee"
SECRET = "app-secret-0123456789"


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


@pytest.fixture
def fake() -> Iterator[tuple[FakeWeCom, str]]:
    server = FakeWeCom(CORP_ID, SECRET)
    with serve(server) as base:
        yield server, base
    tokens.forget_memory()


def add_wecom(
    world: World,
    api_base: str | None = None,
    *,
    org_id: int | None = None,
    name: str = "wecom",
    welcome_text: str | None = None,
) -> int:
    settings: dict[str, object] = {"corp_id": CORP_ID}
    if welcome_text:
        settings["welcome_text"] = welcome_text
    if api_base:
        settings["api_base"] = api_base
    with world.db() as s:
        row = connection_row(
            org_id or world.org_a,
            name,
            platform="wecom",
            settings=settings,
            secrets=encrypt({"secret": SECRET, "token": TOKEN, "aes_key": AES_KEY}),
        )
        s.add(row)
        s.commit()
        registry.forget(row.id)
        return row.id


@pytest.fixture
def set_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    def setter(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield setter
    monkeypatch.undo()
    get_settings.cache_clear()

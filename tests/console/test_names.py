"""Names, not codes: a group's and a member's platform by name, in the console's language."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qunyun.console.labels import platform_name
from qunyun.locale import Translator
from tests.api.conftest import World, console_login


def test_group_and_member_pages_name_the_platform(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    group = client.get(f"/groups/{world.groups['g1']}").text
    assert "<dd>API 接入 · ext-g1</dd>" in group
    member = client.get(f"/members/{world.members['m1']}?lang=en").text
    assert "<dd>API · ext-m1</dd>" in member


def test_platform_names_fall_back_to_the_code() -> None:
    zh, en = Translator("zh"), Translator("en")
    assert platform_name(zh, "wecom") == "企业微信" and platform_name(en, "wecom") == "WeCom"
    assert platform_name(zh, "line") == "line"  # a platform someone registered: its code

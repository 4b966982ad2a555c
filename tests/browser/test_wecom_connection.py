"""A WeCom connection set up in a real browser against the fake WeCom server: the lead adds it
with a wrong secret, sees the callback URL to paste into WeCom and gettoken's refusal in words;
once the secret is right on WeCom's side, "test" turns the connection active."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from qunyun.connectors.wecom.fake import FakeWeCom, serve
from tests.browser.conftest import login, shot

CORP_ID = "ww1436e0e65a779aee"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"


@pytest.fixture
def wecom() -> Iterator[tuple[FakeWeCom, str]]:
    fake = FakeWeCom(CORP_ID, "the-right-secret-01")
    with serve(fake) as base:
        yield fake, base


def test_lead_adds_a_wecom_connection_and_tests_it(
    context: Any, demo: Any, server: str, wecom: tuple[FakeWeCom, str]
) -> None:
    fake, base = wecom
    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)
    page.goto("/connections")
    page.click("#add-wecom summary")
    page.fill("#f-wecom-name", "企微主体")
    page.fill("#f-wecom-corp_id", CORP_ID)
    page.fill("#f-wecom-api_base", base)
    page.fill("#f-wecom-secret", "a-wrong-secret-0001")
    page.fill("#f-wecom-token", TOKEN)
    page.fill("#f-wecom-aes_key", AES_KEY)
    page.click("#add-wecom button[type=submit]")
    page.wait_for_url("**/connections**")
    row = page.locator("#connections-table tr", has_text="企微主体")
    assert row.get_attribute("data-status") == "error"
    text = row.inner_text()
    assert "40001" in text and "secret" in text  # gettoken's refusal, in words
    cid = row.get_attribute("data-connection")
    callback = row.locator("input[readonly]").input_value()
    assert callback == f"{server}/hooks/wecom/{cid}"
    shot(page, "wecom-connection-error")

    fake.secret = "a-wrong-secret-0001"  # the admin resets the app's secret on WeCom to what was pasted
    row.locator('button[data-action="test"]').click()
    page.wait_for_url("**/connections**")
    row = page.locator("#connections-table tr", has_text="企微主体")
    assert row.get_attribute("data-status") == "active"
    assert fake.gettoken_calls >= 2
    shot(page, "wecom-connection-active")

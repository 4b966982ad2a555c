"""The console's channel pages: the report over a range on /channels, and a page per channel
with its funnel, scans and joins per day and its live codes; each reader within their scope."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.acquisition.helpers import Community
from tests.api.conftest import World, console_login

WEEK = "from=2026-03-02&to=2026-03-08"


def _metric(html: str, row: str, metric: str) -> str:
    """The text of the cell ``data-metric=metric`` in the row that starts with ``row``."""
    part = html[html.index(row) :]
    match = re.search(rf'data-metric="{metric}"[^>]*>(.*?)</', part, re.S)
    assert match, (row, metric)
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def _kpi(html: str, metric: str) -> str:
    match = re.search(rf'class="kpi" data-metric="{metric}">.*?class="value">(.*?)</div>', html, re.S)
    assert match, metric
    return match.group(1).strip()


def test_the_report_on_the_channels_page(client: TestClient, world: World, week: Community) -> None:
    console_login(client, "qiji-lead", "password-1")
    html = client.get(f"/channels?{WEEK}").text
    table = html[html.index('id="channel-report-table"') :]
    assert _metric(table, 'data-channel="sms"', "joins") == "2"
    assert _metric(table, 'data-channel="sms"', "cac") == "¥26.50"
    assert _metric(table, 'data-channel="race"', "cost") == "¥10,000.00"
    assert _metric(table, 'data-channel="sms"', "roi") == "1.32"
    assert 'id="unattributed"' in html


def test_the_channel_page_shows_its_funnel_and_live_codes(client: TestClient, world: World, week: Community) -> None:
    console_login(client, "qiji-lead", "password-1")
    page = client.get(f"/channels/{week.channels['sms']}?{WEEK}")
    assert page.status_code == 200
    html = page.text
    funnel = html[html.index('id="funnel-table"') :]
    counts = [
        _metric(funnel, f'data-stage="{s}"', "count") for s in ("reached", "scanned", "joined", "active", "converted")
    ]
    assert counts == ["1,000", "3", "2", "2", "1"]
    assert "转化漏斗" in html and "<svg" in html
    assert _metric(html, 'data-code="' + week.codes["短信活码"][1] + '"', "joins") == "2"
    assert "Funnel" in client.get(f"/channels/{week.channels['sms']}?{WEEK}&lang=en").text


def test_an_owner_sees_their_groups_without_cost(client: TestClient, world: World, week: Community) -> None:
    console_login(client, "qiji-owner", "password-1")
    html = client.get(f"/channels/{week.channels['race']}?{WEEK}").text
    assert _kpi(html, "joins") == "0"  # u3 joined gc, not the owner's
    assert _kpi(html, "cost") == _kpi(html, "cac") == "—"
    html = client.get(f"/channels/{week.channels['sms']}?{WEEK}").text
    assert (_kpi(html, "joins"), _kpi(html, "gmv"), _kpi(html, "touches")) == ("2", "¥70.00", "—")


def test_another_organisations_channel_is_not_found(client: TestClient, world: World, week: Community) -> None:
    console_login(client, "lead")
    assert client.get(f"/channels/{week.channels['sms']}").status_code == 404
    assert client.get("/channels/nonsense").status_code == 404
    assert client.get(f"/channels/{world.channels['sms']}").status_code == 200


def test_a_bad_day_names_the_field(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    page = client.get(f"/channels/{world.channels['sms']}?from=2026-02-30")
    assert page.status_code == 422 and "from" in page.text
    page = client.get("/channels?from=2026-03-08&to=2026-03-01")
    assert page.status_code == 422

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


def _spend_form(client: TestClient, path: str) -> str:
    html = client.get(path).text
    match = re.search(r'id="spend-form".*?name="csrf_token" value="([^"]+)"', html, re.S)
    assert match, "the spend form"
    return match.group(1)


def test_a_lead_records_spend_on_the_channels_page(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    path = f"/channels/{world.channels['sms']}"
    token = _spend_form(client, path)
    response = client.post(
        f"{path}/spend",
        data={"csrf_token": token, "day": "2026-03-02", "touches": "2000", "fixed_cost": "100", "note": "周一短信"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].endswith("done=spend#spend")
    html = client.get(f"{path}?from=2026-03-02&to=2026-03-02").text
    assert 'id="spend-notice"' not in html and "周一短信" in html
    # 2,000 touches × 0.05 + 1 member × 1.50 + 100.00 fixed
    assert _kpi(html, "touches") == "2,000" and _kpi(html, "cost") == "¥201.50"


def test_bad_spend_is_shown_on_the_page_naming_the_field(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    path = f"/channels/{world.channels['sms']}"
    token = _spend_form(client, path)
    page = client.post(f"{path}/spend", data={"csrf_token": token, "day": "2026-03-02", "fixed_cost": "1.234"})
    assert page.status_code == 422
    assert re.search(r'id="spend-error" data-field="fixed_cost"', page.text)
    assert 'value="1.234"' in page.text  # what was typed stays in the form


def test_only_a_lead_records_spend_and_only_on_their_organisations_channels(client: TestClient, world: World) -> None:
    console_login(client, "owner")
    html = client.get(f"/channels/{world.channels['sms']}").text
    assert 'id="spend-form"' not in html and 'id="spend-table"' in html
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    data = {"csrf_token": token.group(1), "day": "2026-03-02", "touches": "5"}
    assert client.post(f"/channels/{world.channels['sms']}/spend", data=data).status_code == 403
    client.cookies.clear()
    console_login(client, "lead")
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/channels").text)
    assert token
    data["csrf_token"] = token.group(1)
    assert client.post(f"/channels/{world.channels['sms_b']}/spend", data=data).status_code == 404
    forged = {**data, "csrf_token": "forged"}
    assert client.post(f"/channels/{world.channels['sms']}/spend", data=forged).status_code == 403

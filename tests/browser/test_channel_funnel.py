"""The demo's funnel in a real browser: a phone in WeChat scans the demo's SMS live code and is
sent to a group with room; the member's join, as the platform reports it (with the invite link),
is posted to the live events API; the channel's page then counts the scan, the visitor and the
member acquired, on its funnel and its live code's row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select

from qunyun.auth.tokens import TokenKind, issue_token
from qunyun.db.session import unit_of_work
from qunyun.livecodes.attribution import entry_for_link
from qunyun.models import Channel, Group, LiveCode, Staff
from tests.browser.conftest import login, shot

PHONE = {"width": 375, "height": 667}
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
)
STAGES = ("reached", "scanned", "joined", "active", "converted")


def _funnel(page: Any) -> dict[str, int]:
    counts = {}
    for stage in STAGES:
        text = page.locator(f'#funnel-table tr[data-stage="{stage}"] [data-metric="count"]').inner_text()
        counts[stage] = int(text.replace(",", ""))
    return counts


def _kpi(page: Any, metric: str) -> int:
    return int(page.locator(f'.kpi[data-metric="{metric}"] .value').inner_text().replace(",", ""))


def test_a_scan_of_the_demos_live_code_and_the_join_after_it_reach_the_channels_funnel(
    context: Any, browser: Any, server: str, demo: Any
) -> None:
    with unit_of_work(write=False) as s:
        sms, code = s.execute(
            select(Channel.id, LiveCode.code)
            .join(LiveCode, LiveCode.channel_id == Channel.id)
            .where(Channel.org_id == demo.org_id, Channel.code == "sms")
        ).one()
    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)
    page.goto(f"/channels/{sms}")
    before = _funnel(page)
    scans_before, visitors_before = _kpi(page, "scans"), _kpi(page, "visitors")
    assert before["scanned"] > 0 and before["joined"] > 0 and before["active"] > 0  # the simulated month
    shot(page, "channel-funnel")

    # A phone in WeChat, without JavaScript, scans the SMS live code: it is shown a group with
    # room and the invite link into it (the simulated platform's links are not web addresses,
    # so the page shows it rather than redirecting to it).
    phone = browser.new_context(
        base_url=server, viewport=PHONE, user_agent=WECHAT_UA, locale="zh-CN", java_script_enabled=False
    )
    try:
        visitor = phone.new_page()
        response = visitor.goto(f"/c/{code}")
        assert response is not None and response.status == 200
        link = visitor.locator("a.button").get_attribute("href")
        assert link is not None and link.startswith("sim://")
        heading = visitor.locator("h1").inner_text()
        shot(visitor, "channel-funnel-scan-phone")
    finally:
        phone.close()
    with unit_of_work(write=False) as s:
        entry = entry_for_link(s, demo.org_id, link)
        assert entry is not None
        group = s.get(Group, entry.group_id)
        assert group is not None and group.member_count < group.capacity
        assert heading == f"加入「{group.name}」"
        lead = s.scalars(select(Staff).where(Staff.org_id == demo.org_id, Staff.username == demo.lead_username)).one()
    with unit_of_work() as s:
        token = issue_token(s, s.merge(lead), TokenKind.API, now=datetime.now(UTC), name="browser-test").secret

    # The visitor joins through that link; the platform reports it, and it is posted live.
    joined = {
        "id": "browser-funnel-join",
        "ts": datetime.now(UTC).isoformat(),
        "kind": "member.joined",
        "group": group.external_id,
        "member": "browser-funnel-member",
        "scene": "link",
        "channel": "sms",
        "link": link,
    }
    posted = httpx.post(
        f"{server}/api/v1/events?platform=simulator",
        json=[joined],
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert posted.status_code in (200, 201, 202), posted.text

    page.reload()
    after = _funnel(page)
    assert (after["scanned"], after["joined"]) == (before["scanned"] + 1, before["joined"] + 1)
    assert (_kpi(page, "scans"), _kpi(page, "visitors")) == (scans_before + 1, visitors_before + 1)
    row = page.locator(f'#live-codes tr[data-code="{code}"]')
    assert int(row.locator('[data-metric="joins"]').inner_text().replace(",", "")) == after["joined"]
    shot(page, "channel-funnel-after-join")

"""The console in a real browser: the lead's tour (overview, a group, member filters, weekly
export, language switch), a group owner's limited view, the phone layout, and a table sorted by
a header click and an error page, in Chinese."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from qunyun.analytics.stats import stats_for_cli
from qunyun.db.session import unit_of_work
from qunyun.models import Group, Member, Organisation, Staff
from tests.browser.conftest import login, shot


def _today(demo: Any) -> datetime:
    with unit_of_work(write=False) as s:
        zone = s.scalar(select(Organisation.time_zone).where(Organisation.id == demo.org_id))
    return datetime.now(ZoneInfo(zone or "Asia/Shanghai"))


def test_lead_tour(context: Any, demo: Any) -> None:
    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)

    # Overview: today's figures and the 30-day table equal `qunyun stats daily`.
    assert page.locator(".kpi").count() == 7
    assert page.locator("svg.chart").count() == 4
    shot(page, "lead-overview")
    now = _today(demo)
    stats = stats_for_cli(
        "daily", org_slug=demo.org_slug, date_from=(now - timedelta(days=29)).date(), date_to=now.date(), group=None
    )
    assert any(r["members"] for r in stats), "the demo has members"
    for row in stats:
        cells = page.locator(f'#daily-trend tr[data-date="{row["date"]}"]')
        for metric in ("joins", "left", "actives", "members"):
            assert cells.locator(f'td[data-metric="{metric}"]').inner_text() == str(row[metric]), (row, metric)

    # Communities → the regional community: its positioning and the playbook's name preview.
    page.click('nav.sections a[href="/communities"]')
    page.wait_for_url("**/communities")
    page.click("#communities-table >> text=骑迹地方骑友群")
    page.wait_for_url("**/communities/*")
    assert "骑迹·华东骑友1群" in page.locator("main").inner_text()

    # Groups → one group's page with its portrait, members and timeline.
    page.click('nav.sections a[href="/groups"]')
    page.wait_for_url("**/groups")
    rows = page.locator("#groups-table tbody tr")
    assert rows.count() > 5
    name = rows.first.locator("td a").inner_text()
    rows.first.locator("td a").click()
    page.wait_for_url("**/groups/*")
    assert page.locator("#group-name").inner_text() == name
    assert page.locator("#portrait meter").count() > 0
    assert page.locator("#timeline li").count() > 0
    shot(page, "lead-group")

    # Members: filter by gender and region; every row matches.
    page.goto("/members")
    page.select_option("#member-filters select[name=gender]", "female")
    region = page.locator("#member-filters select[name=region] option").nth(1).get_attribute("value")
    page.select_option("#member-filters select[name=region]", region)
    page.click("#member-filters button[type=submit]")
    page.wait_for_url("**/members?*gender=female*")
    filtered = page.locator("#members-table tbody tr[data-member-id]")
    assert filtered.count() > 0
    for i in range(filtered.count()):
        cells = filtered.nth(i).locator("td")
        assert cells.nth(1).inner_text() == "女" and cells.nth(3).inner_text() == region
    with unit_of_work(write=False) as s:
        expected = len(
            s.scalars(
                select(Member.id).where(
                    Member.org_id == demo.org_id, Member.gender == "female", Member.region == region
                )
            ).all()
        )
    assert f"({expected})" in page.locator("h1").inner_text()
    shot(page, "lead-members-filtered")

    # Weekly stats → CSV export with the contract's columns.
    page.goto("/stats")
    page.select_option("#stats-form select[name=period]", "weekly")
    page.click("#stats-form button[type=submit]")
    page.wait_for_url("**/stats?*period=weekly*")
    assert page.locator("#stats-table tbody tr.total").count() >= 2  # the ISO weeks of the last 14 days
    with page.expect_download() as download_info:
        page.click("#export-csv")
    download = download_info.value
    assert download.suggested_filename.startswith("qunyun-weekly-") and download.suggested_filename.endswith(".csv")
    content = Path(download.path()).read_text(encoding="utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(content)))
    # The console exports in the page's language (the CLI's CSV keeps the English contract).
    assert list(exported[0])[:4] == ["周", "群 ID", "群名称", "入群"]
    assert "成交额（元）" in exported[0]
    shot(page, "lead-stats-weekly")

    # Language: English on request, and it sticks.
    page.click("#switch-language")
    page.wait_for_load_state()
    assert page.locator("nav.sections").inner_text().split()[:2] == ["Overview", "Communities"]
    page.goto("/groups")
    assert "Sign out" in page.locator("header").inner_text()
    shot(page, "lead-groups-english")


def test_group_owner_sees_only_their_groups(context: Any, demo: Any) -> None:
    page = context.new_page()
    login(page, demo.owner_username, demo.owner_password)
    with unit_of_work(write=False) as s:
        owner_id = s.scalar(select(Staff.id).where(Staff.username == demo.owner_username))
        mine = set(s.scalars(select(Group.name).where(Group.owner_id == owner_id)))
        other = s.scalar(select(Group.id).where(Group.org_id == demo.org_id, Group.owner_id != owner_id).limit(1))
    assert 5 <= len(mine) <= 10
    page.goto("/groups")
    shown = set(page.locator("#groups-table tbody td:first-child a").all_inner_texts())
    assert shown == mine
    shot(page, "owner-groups")
    response = page.goto(f"/groups/{other}")
    assert response is not None and response.status == 404
    page.goto("/staff")
    assert page.locator("#staff-table tbody tr").count() == 1


def test_overview_fits_a_phone(browser: Any, server: str, demo: Any) -> None:
    phone = browser.new_context(base_url=server, viewport={"width": 375, "height": 812}, is_mobile=True, has_touch=True)
    try:
        page = phone.new_page()
        login(page, demo.lead_username, demo.lead_password)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than the phone"
        shot(page, "phone-overview")
    finally:
        phone.close()


def test_sorted_table_and_error_page_in_chinese(context: Any, demo: Any) -> None:
    from qunyun.db.collation import pinyin_key

    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)

    # Groups by name: a click on the header sorts, a second click reverses; pinyin order, not code points.
    page.goto("/groups?sort=members")
    header = page.locator('#groups-table th[data-sort="name"] a')
    assert header.inner_text() == "群"
    header.click()
    page.wait_for_url("**/groups?*sort=name*")
    assert page.locator('#groups-table th[data-sort="name"]').get_attribute("aria-sort") == "ascending"
    names = page.locator("#groups-table tbody td:first-child a").all_inner_texts()
    assert len(names) > 5 and names == sorted(names, key=pinyin_key)
    assert "↑" in page.locator('#groups-table th[data-sort="name"]').inner_text()
    shot(page, "lead-groups-sorted-by-name")
    page.locator('#groups-table th[data-sort="name"] a').click()
    page.wait_for_url("**/groups?*dir=desc*")
    assert page.locator("#groups-table tbody td:first-child a").all_inner_texts() == names[::-1]

    # Members by name, pinyin order too.
    page.goto("/members")
    page.locator('#members-table th[data-sort="name"] a').click()
    page.wait_for_url("**/members?*sort=name*")
    members = page.locator("#members-table tbody td:first-child a").all_inner_texts()
    # Han names come first, by the first syllable's pinyin (the whole key may differ between
    # pypinyin and PostgreSQL's ICU for polyphonic characters).
    han = [m for m in members if pinyin_key(m)[0][0][0] == 1]
    assert len(han) > 5 and members[: len(han)] == han
    first = [pinyin_key(m)[0][0][1].rstrip("12345") for m in han]
    assert first == sorted(first)

    # An error page in Chinese keeps the navigation and the sign-out.
    response = page.goto("/groups/9223372036854775808")
    assert response is not None and response.status == 404
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "页面不存在" in page.locator("main").inner_text()
    # A lead's sections: overview, communities, groups, members, channels, live codes, moderation,
    # stats, staff, tasks, connections and the webhook inbox.
    assert page.locator("nav.sections a").count() == 13
    assert "退出登录" in page.locator("header").inner_text()
    shot(page, "error-404-with-navigation")
    page.click('nav.sections a[href="/members"]')
    page.wait_for_url("**/members")

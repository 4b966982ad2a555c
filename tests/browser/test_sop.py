"""The SOP pages in a real browser over the demo community: the group calendar shows the seeds'
daily rhythm and the 28-day campaign with their runs' states (month, week, on a phone), the
campaign's Gantt chart renders by phase, and the reports show figures."""

from __future__ import annotations

import re
from typing import Any

from qunyun.simulate.sop_rhythm import CAMPAIGN_PLAN, DAILY_STEPS
from qunyun.sop.calendar import LEGEND
from tests.browser.conftest import SCREENSHOTS, login

PHONE = {"width": 390, "height": 844}


def shot(page: Any, name: str) -> None:
    """What the viewport shows (a month of a demo's runs is a tall page: a full-page capture of
    it outlasts the default timeout on a busy machine)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), timeout=60_000)


def test_the_calendar_shows_the_daily_rhythm_and_the_campaign_in_their_states(
    context: Any, browser: Any, server: str, demo: Any
) -> None:
    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)
    page.click('nav.sections a[href="/sop"]')
    page.wait_for_url("**/sop")
    assert page.locator("#sop-month").is_visible()
    # The legend names every state; the month holds runs that went out, were done by a person,
    # wait for one, expired, were skipped, and are still to come.
    assert page.locator("#sop-legend li").count() == len(LEGEND)
    shown = set(page.locator("#cal-counts .chip").evaluate_all("els => els.map(e => e.dataset.state)"))
    assert {"sent", "done", "assigned", "expired", "skipped", "planned"} <= shown, shown
    assert page.locator('#sop-month .run[data-state="sent"]').count() > 0
    shot(page, "sop-month")

    # This week: every slot of the daily rhythm, 08:00 早安语 to 20:00 晚安语.
    page.locator("#sop-month .day.today a.num").click()
    page.wait_for_url("**view=week**")
    week = page.locator("#sop-week")
    text = week.inner_text()
    for step in DAILY_STEPS:
        assert f"{step.at:%H:%M} {step.category}" in text, step.category
    states = set(week.locator(".run").evaluate_all("els => els.map(e => e.dataset.state)"))
    assert {"sent", "planned"} <= states, states
    shot(page, "sop-week")

    # One plan: the campaign's runs in owner1's groups.
    page.goto("/sop")
    everything = page.locator("#sop-month .run").count()
    page.select_option("#sop-filters select[name=plan]", label=CAMPAIGN_PLAN)
    page.click("#sop-filters button[type=submit]")
    page.wait_for_url("**plan=**")
    assert 0 < page.locator("#sop-month .run").count() < everything

    # On a phone the month is a list of days with runs, no seven-column grid, nothing wider
    # than the screen.
    mobile = browser.new_context(base_url=server, viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
    try:
        phone = mobile.new_page()
        login(phone, demo.lead_username, demo.lead_password)
        phone.goto("/sop")
        head = phone.evaluate("getComputedStyle(document.querySelector('#sop-month .head')).display")
        assert head == "none", (head, phone.evaluate("window.innerWidth"))
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the calendar is {overflow}px wider than the phone"
        shot(phone, "sop-month-phone")
    finally:
        mobile.close()


def test_the_gantt_renders_and_the_reports_show_figures(context: Any, demo: Any) -> None:
    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)
    page.goto("/sop")
    page.click('.sop-tabs a[href="/sop/gantt"]')
    page.wait_for_url("**/sop/gantt")
    chart = page.locator("#sop-gantt")
    assert chart.is_visible()
    phases = chart.locator("thead tr").first.locator("th[data-phase]").all_inner_texts()
    assert phases == ["营前", "营中", "营后"]
    assert chart.locator("tr.step").count() == 14
    assert chart.locator("tr.group-row").count() == 5
    dots = set(chart.locator(".dot").evaluate_all("els => els.map(e => e.dataset.state)"))
    assert "planned" in dots and dots & {"sent", "done"}, dots
    assert chart.locator("td.now").count() == 5  # today, in each group's row
    shot(page, "sop-gantt")

    page.click('.sop-tabs a[href="/sop/reports"]')
    page.wait_for_url("**/sop/reports")
    total = page.locator("#report-groups tfoot tr.total").inner_text()
    rates = re.findall(r"(\d+\.\d)%", total)
    assert len(rates) == 2 and 0 < float(rates[0]) < 100, total
    assert page.locator("#report-groups tbody tr").count() >= 20
    assert page.locator("#report-staff tbody tr").count() >= 5
    workload = page.locator("#report-workload").inner_text()
    assert "合适" in workload  # five groups per owner: within the norm
    shot(page, "sop-reports")

    # owner1 sees their own groups only.
    context.clear_cookies()
    owner = context.new_page()
    login(owner, demo.owner_username, demo.owner_password)
    owner.goto("/sop/reports")
    assert owner.locator("#report-groups tbody tr").count() == 5

"""Moderation in a real browser: a lead opens the demo organisation's policy, tests a message
written to slip past filters and sees the listed word highlighted where it hides, then reverses a
decision in the moderation log with a reason; on a phone the pages fit the screen."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from qunyun.db.session import unit_of_work
from qunyun.models import MembershipSpan, ModerationDecision
from qunyun.moderation.service import create_default_policy
from qunyun.timeutil import utcnow
from tests.browser.conftest import login, shot

PHONE = {"width": 375, "height": 667}


def _arrange(demo: Any) -> tuple[int, int]:
    """The organisation's default policy and one engine decision about a demo member (a spammer
    warned in their group); their ids."""
    with unit_of_work() as s:
        policy = create_default_policy(s, demo.org_id)
        span = s.execute(
            select(MembershipSpan.group_id, MembershipSpan.member_id)
            .where(MembershipSpan.left_at.is_(None))
            .order_by(MembershipSpan.id)
            .limit(1)
        ).one()
        decision = ModerationDecision(
            org_id=demo.org_id,
            group_id=span.group_id,
            member_id=span.member_id,
            policy_id=policy.id,
            policy_version=policy.version,
            rule="敏感词",
            rule_kind="words",
            category="ads",
            action="warn",
            matches=[{"word": "兼职刷单", "category": "ads", "start": 2, "end": 6}],
            detail={"ladder_step": 1},
            excerpt="亲们兼职刷单日结，私聊我",
            dry_run=False,
            source="engine",
            action_ids=[],
            at=utcnow(),
        )
        s.add(decision)
        s.flush()
        return policy.id, decision.id


def test_lead_tests_a_message_and_reverses_a_decision(context: Any, demo: Any) -> None:
    policy_id, decision_id = _arrange(demo)
    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)

    page.click('nav.sections a[href="/moderation"]')
    page.wait_for_url("**/moderation")
    page.click(f'#policies a[href="/moderation/policies/{policy_id}"]')
    page.wait_for_url(f"**/moderation/policies/{policy_id}")
    page.fill("#t-text", "姐妹们，兼 职 刷 单，日结300，私聊")
    page.click("#run-test")
    page.wait_for_selector("#test-result")
    mark = page.locator("#test-highlight mark")
    assert mark.count() == 1
    assert mark.inner_text() == "兼 职 刷 单" and mark.get_attribute("data-word") == "兼职刷单"
    assert page.locator("#test-rule").inner_text().startswith("敏感词")
    assert page.locator("#test-action").inner_text() == "警告"  # the ladder's first step
    shot(page, "moderation-test")

    page.click('a[href="/moderation/log"]')
    page.wait_for_url("**/moderation/log")
    row = page.locator(f"#decision-{decision_id}")
    assert "兼职刷单" in row.inner_text()
    row.locator("details.reverse summary").click()
    row.locator("textarea[name=reason]").fill("误判：她在提醒大家防骗")
    row.locator("form.reverse-form button[type=submit]").click()
    page.wait_for_url("**done=reversed*")
    assert page.locator("#moderation-notice").inner_text() == "处置已撤销。"
    row = page.locator(f"#decision-{decision_id}")
    assert row.get_attribute("data-reversed") == "1"
    assert "误判：她在提醒大家防骗" in row.inner_text()
    shot(page, "moderation-log")

    with unit_of_work(write=False) as s:
        member_id = s.scalar(select(ModerationDecision.member_id).where(ModerationDecision.id == decision_id))
    page.goto(f"/members/{member_id}")
    assert "误判：她在提醒大家防骗" in page.locator("#moderation").inner_text()

    # On a phone, the policy and the log fit the screen (tables scroll inside their cards).
    phone = context.new_page()
    phone.set_viewport_size(PHONE)
    for path in (f"/moderation/policies/{policy_id}", "/moderation/log"):
        phone.goto(path)
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
    shot(phone, "moderation-phone")

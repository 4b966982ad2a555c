"""The task inbox on a phone in a real browser: an assisted SOP step's script and a link material
copied in one tap (the Clipboard API on 127.0.0.1, the selection and copy command without it),
已复制 shown for a moment, and the text selected for copying by hand when the browser refuses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from qunyun.auth.scope import Scope
from qunyun.console.pages.tasks import PAGE_SIZE
from qunyun.db.session import unit_of_work
from qunyun.models import Group, Role, Staff
from qunyun.tasks.service import list_tasks, open_task
from tests.browser.conftest import SCREENSHOTS, login

PHONE = {"width": 390, "height": 844}
ROUTE = "https://qiji.example.com/routes/weekend?from=xihu&km=60"

# Pages that behave as a browser without the Clipboard API (a plain-http address), and as one
# that refuses both ways of copying.
NO_CLIPBOARD_API = "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined});"
REFUSES = NO_CLIPBOARD_API + "Document.prototype.execCommand = function () { return false; };"


@pytest.fixture
def phone(browser: Any, server: str) -> Iterator[Any]:
    ctx = browser.new_context(base_url=server, viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def _owner_scope(demo: Any) -> Scope:
    with unit_of_work(write=False) as s:
        owner = s.scalar(select(Staff.id).where(Staff.username == demo.owner_username))
    assert owner is not None
    return Scope(staff_id=owner, org_id=demo.org_id, role=Role.OWNER)


def _first_sop_task(demo: Any) -> tuple[int, str]:
    """An assisted SOP step that the demo gave owner1, on the first page of their open tab, and
    its script as the SOP engine rendered it."""
    with unit_of_work(write=False) as s:
        items, _ = list_tasks(s, _owner_scope(demo), view="open", limit=PAGE_SIZE)
    task = next(i.task for i in items if i.task.kind == "sop_step")
    return task.id, task.detail["payload"]["text"]


def _task_with_a_link(demo: Any) -> tuple[int, str]:
    """An SOP step with a link material in one of owner1's groups, due long ago (first on the tab)."""
    scope = _owner_scope(demo)
    with unit_of_work() as s:
        group = s.scalar(select(Group.id).where(Group.owner_id == scope.staff_id).order_by(Group.id).limit(1))
        script = "周末骑行路线已更新\n周六 7:00 西湖集合，全程 60 公里"
        detail = {
            "category": "内容推送",
            "payload": {"text": script},
            "materials": [{"kind": "link", "value": ROUTE, "title": "周末路线"}],
        }
        task = open_task(
            s,
            org_id=demo.org_id,
            kind="sop_step",
            title="周末路线",
            detail=detail,
            group_id=group,
            assignee_id=scope.staff_id,
            due_at=datetime(2000, 1, 1, tzinfo=UTC),
        )
        return task.id, script


def shot(card: Any, name: str) -> None:
    """The card alone (the demo owner's open tab is a long page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    card.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _problems(page: Any) -> list[str]:
    """Errors the page reports (a script refused by the CSP, an exception), collected as they come."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def _clipboard(phone: Any) -> str:
    """What the clipboard holds, read from a page of the context's own (the pages under test may
    have no Clipboard API)."""
    reader = phone.new_page()
    try:
        reader.goto("/healthz")
        return str(reader.evaluate("navigator.clipboard.readText()"))
    finally:
        reader.close()


def test_copy_the_script_in_one_tap(phone: Any, demo: Any) -> None:
    task_id, script = _first_sop_task(demo)
    assert script and "{" not in script  # the variables rendered, as the card shows them
    page = phone.new_page()
    problems = _problems(page)
    login(page, demo.owner_username, demo.owner_password)
    page.goto("/tasks?view=open")
    card = page.locator(f"#task-{task_id}")
    assert card.locator(f"#copy-{task_id}").input_value() == script
    button = card.locator(f'button[data-copy="copy-{task_id}"]')
    expect(button).to_have_text("复制")
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 44, box  # a thumb can hit it
    status = button.locator("xpath=following-sibling::*[@role='status']")
    expect(status).to_have_text("")

    button.tap()
    expect(status).to_have_text("已复制")
    expect(button).to_have_attribute("data-state", "copied")
    assert _clipboard(phone) == script
    shot(card, "tasks-copied-phone")
    expect(status).to_have_text("", timeout=5_000)  # for a moment only
    expect(button).not_to_have_attribute("data-state", "copied")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the inbox is {overflow}px wider than the phone"
    assert problems == []


def test_copy_a_link_without_the_clipboard_api_and_by_hand_when_refused(phone: Any, demo: Any) -> None:
    task_id, script = _task_with_a_link(demo)
    page = phone.new_page()
    problems = _problems(page)
    login(page, demo.owner_username, demo.owner_password)

    # Without the Clipboard API: the selection and copy command, in English.
    page.add_init_script(NO_CLIPBOARD_API)
    page.goto("/tasks?view=open&lang=en")
    assert page.evaluate("navigator.clipboard") is None
    card = page.locator(f"#task-{task_id}")
    link = card.locator(f'button[data-copy="copy-{task_id}-1"]')
    expect(link).to_have_text("Copy")
    link.tap()
    expect(link.locator("xpath=following-sibling::*[@role='status']")).to_have_text("Copied")
    assert _clipboard(phone) == ROUTE
    card.locator(f'button[data-copy="copy-{task_id}"]').tap()
    expect(card.locator(f'button[data-copy="copy-{task_id}"]')).to_have_attribute("data-state", "copied")
    assert _clipboard(phone) == script
    assert card.locator(f"#copy-{task_id}-1").is_hidden()  # the address field shows only when needed

    # A browser that refuses both: the address is shown, selected, and the person told to copy it.
    refusing = phone.new_page()
    problems += _problems(refusing)
    refusing.add_init_script(REFUSES)
    refusing.goto("/tasks?view=open&lang=zh")  # the language chosen above is kept in a cookie
    card = refusing.locator(f"#task-{task_id}")
    link = card.locator(f'button[data-copy="copy-{task_id}-1"]')
    link.tap()
    expect(link.locator("xpath=following-sibling::*[@role='status']")).to_have_text("复制失败：已选中，请手动复制")
    field = card.locator(f"#copy-{task_id}-1")
    expect(field).to_be_visible()
    expect(field).to_be_focused()
    selected = refusing.evaluate("[document.activeElement.selectionStart, document.activeElement.selectionEnd]")
    assert selected == [0, len(ROUTE)] and field.input_value() == ROUTE
    shot(card, "tasks-copy-refused-phone")
    assert problems == []

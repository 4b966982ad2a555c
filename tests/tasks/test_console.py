"""The task inbox page (/tasks) over HTTP: made for a phone, in Chinese by default, complete a
task with a plain form (no script needed; one small script of ours adds one-tap copy), leads
filter by assignee; the staff page counts tasks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from qunyun.locale import Msg
from tests.api.conftest import World, console_login, csrf_from
from tests.tasks.conftest import PNG, later_today, load, open_in

PHONE = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", "Viewport-Width": "390"}


def card(html: str, task_id: int) -> str:
    match = re.search(rf'<li class="task card" id="task-{task_id}".*?</li>', html, re.S)
    assert match, f"task {task_id} not on the page"
    return match.group(0)


def test_the_inbox_renders_for_a_phone(client: TestClient, world: World) -> None:
    title = Msg("task.prefix.platform_action", title=Msg("task.title.kick", group="Alpha", member="张三", name=""),
                platform=Msg("display.platform.wecom"))  # fmt: skip
    task_id = open_in(world, "g1", title=title, kind="platform_action", due_at=later_today(world))
    console_login(client, "owner")
    response = client.get("/tasks", headers=PHONE)
    assert response.status_code == 200
    html = response.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<a href="/tasks" aria-current="page">任务</a>' in html  # the navigation, in Chinese
    for tab in ("今天", "已逾期", "已完成", "全部待办"):
        assert tab in html
    assert "<table" not in html  # one column of cards
    # One script, ours, from /static and deferred (the CSP allows no inline script): one-tap copy.
    assert re.findall(r"<script.*?</script>", html, re.S) == ['<script src="/static/copy.js" defer></script>']
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<link rel="stylesheet" href="/static/tasks.css">' in html and "<style" not in html  # CSP: 'self'
    assert "min-height: 44px" in client.get("/static/tasks.css").text  # tap targets a thumb can hit
    task = card(html, task_id)
    assert "将 张三 移出「Alpha」（在企业微信上手动完成）" in task
    assert "Alpha 福利群" in task and "截止：" in task
    assert '<textarea class="copy"' in task and "本周精华已整理好" in task  # the text to copy
    # … with its copy button, hidden until the script shows it (without script: select by hand).
    assert f'<button type="button" class="copy-button" data-copy="copy-{task_id}" hidden>复制</button>' in task
    assert 'data-copied="已复制"' in html and 'data-copy-failed="复制失败：已选中，请手动复制"' in html
    assert 'enctype="multipart/form-data"' in task and 'type="file"' in task and 'name="evidence_image"' in task
    english = client.get("/tasks?lang=en").text
    assert "Remove 张三 from Alpha (by hand on WeCom)" in card(english, task_id)
    assert f'data-copy="copy-{task_id}" hidden>Copy</button>' in card(english, task_id)
    assert 'data-copied="Copied"' in english


def test_the_copy_script_is_ours_and_served_from_static(client: TestClient) -> None:
    script = client.get("/static/copy.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    # The Clipboard API where the browser has it, the selection and copy command where not.
    assert "navigator.clipboard.writeText" in script.text and 'execCommand("copy")' in script.text
    assert "http://" not in script.text and "https://" not in script.text  # nothing loaded from elsewhere


def test_a_link_material_has_a_copy_button_for_its_address(client: TestClient, world: World) -> None:
    detail = {
        "payload": {"text": "周末骑行路线已更新，{group_name} 不见不散"},
        "materials": [
            {"kind": "link", "value": "https://example.com/route?day=sat&n=1", "title": "周六路线"},
            {"kind": "link", "value": "群公告第 3 条", "title": ""},
            {"kind": "miniprogram", "value": "wx1234567890abcdef/pages/item?id=cage", "title": "骑迹商城"},
        ],
    }
    task_id = open_in(world, "g1", kind="sop_step", detail=detail, assignee="owner")
    console_login(client, "owner")
    task = card(client.get("/tasks?view=open").text, task_id)
    # The script as the card shows it, and each link's address exactly, in a field to select by hand.
    assert f'data-copy="copy-{task_id}" hidden>复制</button>' in task
    for n, value in ((1, "https://example.com/route?day=sat&amp;n=1"), (2, "群公告第 3 条")):
        assert f'data-copy="copy-{task_id}-{n}" hidden>复制</button>' in task
        assert f'id="copy-{task_id}-{n}" value="{value}" readonly hidden aria-label="链接："' in task
    assert f"copy-{task_id}-3" not in task  # a mini-program is opened, not pasted
    assert task.count('class="copy-button"') == 3


def test_complete_a_task_from_the_inbox_form(client: TestClient, world: World) -> None:
    task_id = open_in(world, "g1")
    console_login(client, "owner")
    token = csrf_from(client.get("/tasks").text)
    response = client.post(
        f"/tasks/{task_id}/complete",
        data={"csrf_token": token, "view": "today", "evidence_text": "已发到群里", "evidence_link": ""},
        files={"evidence_image": ("shot.png", PNG, "image/png")},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/tasks?")
    after = client.get(response.headers["location"]).text
    assert "任务已完成" in after and f'id="task-{task_id}"' not in after  # no longer on today's tab
    done = card(client.get("/tasks?view=done").text, task_id)
    assert "已发到群里" in done and f'src="/tasks/{task_id}/evidence"' in done and "Owner" in done
    image = client.get(f"/tasks/{task_id}/evidence")
    assert image.status_code == 200 and image.content == PNG
    with world.db() as s:
        assert load(s, task_id).completed_by_id == world.staff["owner"]


def test_a_refused_upload_is_shown_on_the_task(client: TestClient, world: World) -> None:
    task_id = open_in(world, "g1")
    console_login(client, "owner")
    token = csrf_from(client.get("/tasks").text)
    url = f"/tasks/{task_id}/complete"
    big = client.post(
        url,
        data={"csrf_token": token, "evidence_text": "截图太大"},
        files={"evidence_image": ("big.jpg", b"\xff\xd8\xff" + b"\0" * (6 * 1024 * 1024), "image/jpeg")},
    )
    assert big.status_code == 413
    task = card(big.text, task_id)
    assert "<details open>" in task and 'data-field="evidence_image"' in task and "5 MiB" in task
    assert "截图太大" in task  # what was typed is kept
    text = client.post(url, data={"csrf_token": token}, files={"evidence_image": ("a.txt", b"hello", "text/plain")})
    assert text.status_code == 422 and 'data-field="evidence_image"' in card(text.text, task_id)
    # Without the CSRF token nothing happens; another's task is not found.
    assert client.post(url, data={"evidence_text": "x"}).status_code == 403
    rival = open_in(world, "gb1", org="b")
    assert client.post(f"/tasks/{rival}/complete", data={"csrf_token": token}).status_code == 404
    with world.db() as s:
        assert load(s, task_id).status == "open"


def test_a_lead_sees_everyones_tasks_and_filters_by_assignee(client: TestClient, world: World) -> None:
    owners = open_in(world, "g1")
    operators = open_in(world, "g1", assignee="operator")
    console_login(client, "lead")
    html = client.get("/tasks?view=open").text
    assert 'id="task-filter"' in html and f'<option value="{world.staff["operator"]}"' in html
    card(html, owners), card(html, operators)
    filtered = client.get(f"/tasks?view=open&assignee={world.staff['operator']}").text
    assert f'id="task-{owners}"' not in filtered and f'id="task-{operators}"' in filtered
    client.cookies.clear()
    console_login(client, "operator")
    mine = client.get("/tasks?view=open").text
    assert 'id="task-filter"' not in mine and f'id="task-{owners}"' not in mine and f'id="task-{operators}"' in mine
    client.cookies.clear()
    console_login(client, "analyst")
    read_only = card(client.get("/tasks?view=open").text, owners)
    assert "<form" not in read_only  # the analyst reads, never completes


def test_the_staff_page_counts_open_and_overdue_tasks(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    open_in(world, "g1", due_at=now - timedelta(hours=2))
    open_in(world, "g2", due_at=now + timedelta(days=1))
    open_in(world, "g1")
    done = open_in(world, "g1", due_at=now - timedelta(days=1))
    open_in(world, "g1", assignee="operator", due_at=now - timedelta(minutes=5))
    console_login(client, "owner")
    token = csrf_from(client.get("/tasks").text)
    client.post(f"/tasks/{done}/complete", data={"csrf_token": token})
    client.cookies.clear()
    console_login(client, "lead")
    html = client.get("/staff?sort=tasks").text
    owner_row = html.split('<tr data-staff="owner">', 1)[1].split("</tr>", 1)[0]
    assert owner_row.endswith("<td>3</td><td>1</td>\n  ")
    operator_row = html.split('<tr data-staff="operator">', 1)[1].split("</tr>", 1)[0]
    assert operator_row.endswith("<td>1</td><td>1</td>\n  ")
    assert html.index('data-staff="owner"') < html.index('data-staff="operator"') < html.index('data-staff="lead"')

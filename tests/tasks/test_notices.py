"""Reminders and escalations reach their person: every console page shows the signed-in staff
member how many of their tasks were reminded or escalated to them and not yet seen, leading to
them; the API lists and counts them; nobody sees, or clears, anyone else's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from qunyun.tasks.service import remind_and_escalate
from tests.api.conftest import World, console_login
from tests.tasks.conftest import open_in

NOTICE = re.compile(
    r'<a href="/tasks\?view=new" id="task-notices"[^>]*>任务 <span class="notice-count">(\d+)</span></a>'
)


def sweep(world: World, now: datetime) -> None:
    """The periodic pass, a minute after ``now`` (the tasks opened since are due a reminder)."""
    with world.db() as s:
        remind_and_escalate(s, now + timedelta(minutes=1))
        s.commit()


def badge(client: TestClient, who: str, path: str = "/") -> int:
    """The count next to 任务 on a console page of ``who`` (0 when there is none)."""
    client.cookies.clear()
    console_login(client, who)
    response = client.get(path)
    found = NOTICE.findall(response.text)
    assert len(found) <= 1
    return int(found[0]) if found else 0


def notices(client: TestClient, world: World, who: str) -> int:
    response = client.get("/api/v1/tasks/notices", headers=world.headers(who))
    assert response.status_code == 200, response.text
    return int(response.json()["unseen"])


def test_a_reminder_reaches_the_assignee_and_nobody_else(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    task_id = open_in(world, "g1", due_at=now + timedelta(minutes=30))  # the owner's
    assert badge(client, "owner") == 0
    sweep(world, now)

    assert badge(client, "owner") == 1
    assert badge(client, "owner", "/groups") == 1  # on every page
    for other in ("lead", "admin", "operator", "analyst", "lead_b"):
        assert badge(client, other) == 0, other
        assert notices(client, world, other) == 0, other
    assert notices(client, world, "owner") == 1

    mine = client.get("/api/v1/tasks?view=new", headers=world.headers("owner")).json()
    assert [(t["id"], t["notice"]) for t in mine["items"]] == [(task_id, "reminded")]
    # The lead sees every task of the organisation, but not the owner's reminder.
    assert client.get("/api/v1/tasks?view=new", headers=world.headers("lead")).json()["items"] == []
    everyone = client.get("/api/v1/tasks?view=open", headers=world.headers("lead")).json()["items"]
    assert [(t["id"], t["notice"]) for t in everyone] == [(task_id, None)]


def test_showing_the_task_marks_only_the_viewers_notice_seen(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    task_id = open_in(world, "g1", due_at=now + timedelta(minutes=30))
    sweep(world, now)
    # The lead looks at every task, the owner's reminded one among them: the owner's stays unseen.
    assert badge(client, "lead", "/tasks?view=open") == 0
    assert notices(client, world, "owner") == 1
    # Another's ids in a request to mark them seen change nothing of theirs.
    marked = client.post("/api/v1/tasks/notices/seen", json={"task_ids": [task_id]}, headers=world.headers("admin"))
    assert marked.status_code == 200 and marked.json() == {"unseen": 0}
    assert notices(client, world, "owner") == 1

    # The owner follows the count: the task is marked on its card, and then seen.
    client.cookies.clear()
    console_login(client, "owner")
    page = client.get("/tasks?view=new").text
    assert 'data-view="new" aria-current="page"' in page
    card = re.search(rf'<li class="task card" id="task-{task_id}".*?</li>', page, re.S)
    assert card and '<span class="badge notice-reminded">提醒</span>' in card.group(0)
    assert "notice-count" not in page  # the count is of the tasks not on this page
    assert notices(client, world, "owner") == 0
    assert badge(client, "owner") == 0
    assert client.get("/api/v1/tasks?view=new", headers=world.headers("owner")).json()["items"] == []


def test_an_escalation_reaches_the_lead_and_shows_who_it_went_to(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    task_id = open_in(world, "g1", due_at=now - timedelta(hours=3))  # overdue past the grace
    sweep(world, now)
    assert notices(client, world, "lead") == 1 and notices(client, world, "owner") == 1  # reminded
    assert notices(client, world, "lead_b") == 0

    client.cookies.clear()
    console_login(client, "lead")
    card = re.search(rf'<li class="task card" id="task-{task_id}".*?</li>', client.get("/tasks?view=new").text, re.S)
    assert card
    assert '<span class="badge notice-escalated">上报给你</span>' in card.group(0)
    assert "已上报 Lead" in card.group(0)
    assert notices(client, world, "lead") == 0 and notices(client, world, "owner") == 1

    # The assignee sees on the task (and through the API) who it was escalated to.
    client.cookies.clear()
    console_login(client, "owner")
    assert "已上报 Lead" in client.get("/tasks?view=overdue").text
    one = client.get(f"/api/v1/tasks/{task_id}", headers=world.headers("owner")).json()
    assert one["escalated_to_name"] == "Lead" and one["escalated_to_id"] == world.staff["lead"]


def test_a_done_task_is_no_longer_counted(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    task_id = open_in(world, "g1", due_at=now + timedelta(minutes=30))
    sweep(world, now)
    assert notices(client, world, "owner") == 1
    done = client.post(
        f"/api/v1/tasks/{task_id}/complete", json={"evidence_text": "ok"}, headers=world.headers("owner")
    )
    assert done.status_code == 200
    assert notices(client, world, "owner") == 0


def test_error_pages_show_the_count_too(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    open_in(world, "g1", due_at=now + timedelta(minutes=30))
    sweep(world, now)
    client.cookies.clear()
    console_login(client, "owner")
    missing = client.get("/groups/999999")
    assert missing.status_code == 404
    assert NOTICE.findall(missing.text) == ["1"]


def test_marking_all_seen_through_the_api(client: TestClient, world: World) -> None:
    now = datetime.now(UTC)
    open_in(world, "g1", due_at=now + timedelta(minutes=30))
    open_in(world, "g2", due_at=now + timedelta(minutes=40))
    sweep(world, now)
    assert notices(client, world, "owner") == 2
    marked = client.post("/api/v1/tasks/notices/seen", headers=world.headers("owner"))
    assert marked.status_code == 200 and marked.json() == {"unseen": 0}
    bad = client.post("/api/v1/tasks/notices/seen", json={"task_ids": "all"}, headers=world.headers("owner"))
    assert bad.status_code == 422 and "task_ids" in bad.text

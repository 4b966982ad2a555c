"""A task made from an SOP step that asks for a screenshot is completed only with an uploaded
image: without one the API answers 422 naming ``evidence_image`` and the task stays open. The
inbox's form says so before anything is sent: its file input is required and labelled 必填."""

from __future__ import annotations

import base64
import re

from fastapi.testclient import TestClient

from tests.api.conftest import World, console_login, csrf_from
from tests.tasks.conftest import PNG, load, open_in
from tests.tasks.test_console import card


def sop_task(world: World, *, evidence_required: bool) -> int:
    detail = {"payload": {"text": "午间抽奖开始啦"}, "category": "活跃活动", "evidence_required": evidence_required}
    return open_in(world, "g1", kind="sop_step", detail=detail, assignee="owner")


def test_a_screenshot_step_needs_an_image_to_complete(client: TestClient, world: World) -> None:
    task_id = sop_task(world, evidence_required=True)
    url = f"/api/v1/tasks/{task_id}/complete"
    owner = world.headers("owner")
    for body in ({}, {"evidence_text": "发过了", "evidence_link": "https://example.com/post/1"}):
        refused = client.post(url, headers=owner, json=body)
        assert refused.status_code == 422, refused.text
        assert "evidence_image" in refused.text
    zh = client.post(url, headers={**owner, "Accept-Language": "zh"}, data={"evidence_text": "发过了"})
    assert zh.status_code == 422 and "截图" in zh.text
    with world.db() as s:
        assert load(s, task_id).status == "open"
    done = client.post(url, headers=owner, json={"evidence_image_base64": base64.b64encode(PNG).decode()})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    # Completing again changes nothing and needs nothing more: the image is stored.
    assert client.post(url, headers=owner, json={}).status_code == 200
    with world.db() as s:
        assert load(s, task_id).evidence_image


def test_a_multipart_upload_satisfies_the_rule(client: TestClient, world: World) -> None:
    task_id = sop_task(world, evidence_required=True)
    response = client.post(
        f"/api/v1/tasks/{task_id}/complete",
        headers=world.headers("owner"),
        files={"evidence_image": ("shot.png", PNG, "image/png")},
    )
    assert response.status_code == 200, response.text


def test_steps_without_the_rule_and_other_tasks_complete_without_an_image(client: TestClient, world: World) -> None:
    plain = sop_task(world, evidence_required=False)
    other = open_in(world, "g1", detail={"evidence_required": True}, assignee="owner")  # not an SOP step
    for task_id in (plain, other):
        response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=world.headers("owner"), json={})
        assert response.status_code == 200, response.text


def _image_input(html: str, task_id: int) -> tuple[str, str]:
    """The label and the file input of the task's completion form."""
    found = re.search(
        rf'<label for="image-{task_id}">([^<]*)</label>\s*(<input type="file" id="image-{task_id}"[^>]*>)',
        card(html, task_id),
    )
    assert found, card(html, task_id)
    return found.group(1), found.group(2)


def test_the_inbox_marks_the_screenshot_required(client: TestClient, world: World) -> None:
    shot = sop_task(world, evidence_required=True)
    plain = sop_task(world, evidence_required=False)
    console_login(client, "owner")
    page = client.get("/tasks?view=open").text
    label, field = _image_input(page, shot)
    assert "必填" in label and " required" in field and 'name="evidence_image"' in field
    label, field = _image_input(page, plain)
    assert "选填" in label and " required" not in field
    label, field = _image_input(client.get("/tasks?view=open&lang=en").text, shot)
    assert "required" in label

    # A form sent without the image anyway (an old browser) is still refused, on the task's card.
    token = csrf_from(page)
    refused = client.post(
        f"/tasks/{shot}/complete", data={"csrf_token": token, "view": "open", "evidence_text": "发过了"}
    )
    assert refused.status_code == 422
    task = card(refused.text, shot)
    assert 'data-field="evidence_image"' in task and "发过了" in task
    assert " required" in _image_input(refused.text, shot)[1]
    with world.db() as s:
        assert load(s, shot).status == "open"

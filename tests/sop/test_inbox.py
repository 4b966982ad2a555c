"""An assisted SOP step in the task inbox: besides the text to copy, the person sees the step's
instructions (详情) and its materials — an image, a mini-program, a file — each a link when it is
a web address (and never one that is not)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import World, anon, api_app, client, console_login, password_hash, world
from tests.tasks.conftest import open_in
from tests.tasks.test_console import card

__all__ = ["anon", "api_app", "client", "password_hash", "world"]


def test_the_inbox_shows_an_sop_steps_instructions_and_materials(client: TestClient, world: World) -> None:
    detail = {
        "sop_run_id": 1,
        "category": "活跃活动",
        "detail": "15:00 发起接龙\n结束后截图上传",
        "payload": {"text": "今天的接龙开始啦！"},
        "materials": [
            {"kind": "text", "value": "回复 1 参与", "title": ""},
            {"kind": "image", "value": "https://example.com/lottery.png", "title": "抽奖海报"},
            {"kind": "miniprogram", "value": "wx1234567890abcdef/pages/item?id=cage", "title": "骑迹商城"},
            {"kind": "file", "value": "javascript:alert(1)", "title": ""},
        ],
        "evidence_required": True,
    }
    task_id = open_in(world, "g1", kind="sop_step", detail=detail, assignee="owner")
    other = open_in(
        world, "g1", detail={"payload": {"text": "x"}, "detail": "不是 SOP", "materials": []}, assignee="owner"
    )
    console_login(client, "owner")
    page = client.get("/tasks?view=open").text
    html = card(page, task_id)
    assert '<p class="sop-detail"><strong>要做的事：</strong> 15:00 发起接龙\n结束后截图上传</p>' in html
    assert "今天的接龙开始啦！" in html  # the text to copy, as before
    assert (
        '<strong>图片：</strong> <a href="https://example.com/lottery.png" rel="noopener noreferrer nofollow"'
        ' target="_blank">抽奖海报</a>' in html
    )
    assert "<strong>小程序：</strong> 骑迹商城 · wx1234567890abcdef/pages/item?id=cage</p>" in html
    assert "<strong>文件：</strong> javascript:alert(1)</p>" in html and 'href="javascript' not in html
    assert 'data-kind="text"' not in html  # a text material is part of the text to copy
    assert "sop-detail" not in card(page, other) and "material" not in card(page, other)
    english = card(client.get("/tasks?view=open&lang=en").text, task_id)
    assert "What to do:" in english and "Mini-program:" in english

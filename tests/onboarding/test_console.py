"""Onboarding in the console: the playbook's onboarding fields saved with the community (an
unknown variable is a 422 naming it, nothing saved), and the benefit page's coupon pool with its
import (leads only; others see what their scope allows)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.auth.scope import Scope
from qunyun.community.service import create_community, playbook_of
from qunyun.models import Community, Group, Playbook, Role
from qunyun.models.onboarding import CouponCode
from tests.api.conftest import World, console_login, csrf_from


def _community(world: World) -> tuple[int, int]:
    """A community of organisation A with its playbook, and group g1 (the owner's) in it."""
    with world.db() as s:
        community = create_community(
            s, Scope(world.staff["lead"], world.org_a, Role.LEAD), {"name": "骑友地方群", "community_type": "local"}
        )
        group = s.get(Group, world.groups["g1"])
        assert group is not None
        group.community_id = community.id
        playbook = playbook_of(s, community)
        assert playbook is not None
        group.playbook_id = playbook.id
        s.commit()
        return community.id, playbook.id


def _edit(client: TestClient, community_id: int, **fields: str) -> tuple[int, str]:
    token = csrf_from(client.get(f"/communities/{community_id}/edit").text)
    form = {"csrf_token": token, "name": "骑友地方群", "community_type": "local"}
    form["organisation_model"] = "lead-owner-admin"
    response = client.post(f"/communities/{community_id}/edit", data={**form, **fields}, follow_redirects=False)
    return response.status_code, response.text


def test_the_onboarding_fields_are_saved_with_the_playbook(client: TestClient, world: World) -> None:
    community_id, playbook_id = _community(world)
    console_login(client, "lead")
    page = client.get(f"/communities/{community_id}/edit").text
    assert "防刷屏间隔（秒）" in page and "群名片格式" in page and "新人福利私信" in page
    status, _ = _edit(
        client,
        community_id,
        welcome_text="欢迎 {nickname} 加入{group_name}！群规：{rules_url}",
        welcome_interval_seconds="120",
        rules_url="https://example.com/rules",
        name_card_format="城市-昵称",
        name_card_delay_minutes="5",
        name_card_text="",
        benefit_text="{nickname}，你的券码：{code}",
    )
    assert status == 303
    with world.db() as s:
        playbook = s.get_one(Playbook, playbook_id)
        assert (playbook.welcome_interval_seconds, playbook.name_card_delay_minutes) == (120, 5)
        assert (playbook.rules_url, playbook.name_card_format) == ("https://example.com/rules", "城市-昵称")
        assert playbook.benefit_text == "{nickname}，你的券码：{code}"
    detail = client.get(f"/communities/{community_id}").text
    assert "城市-昵称" in detail and f"/communities/{community_id}/benefit" in detail


def test_an_unknown_variable_is_refused_naming_it_and_nothing_is_saved(client: TestClient, world: World) -> None:
    community_id, playbook_id = _community(world)
    console_login(client, "lead")
    for fields, shown in (
        ({"welcome_text": "欢迎 {name} 加入！"}, "「欢迎语」不支持变量 {name}"),
        ({"benefit_text": "券码 {coupon}"}, "「新人福利私信」不支持变量 {coupon}"),
        ({"welcome_text": "欢迎 {nickname"}, "不成对"),
        ({"welcome_interval_seconds": "-1"}, "「防刷屏间隔（秒）」须是 0 到 3600 之间的整数"),
        ({"name_card_format": "昵称"}, "至少要有两部分"),
        ({"rules_url": "javascript:alert(1)"}, "群规链接须以 http:// 或 https:// 开头"),
    ):
        status, text = _edit(client, community_id, **fields)
        assert status == 422, fields
        assert shown in text, (fields, text[:2000])
    with world.db() as s:
        playbook = s.get_one(Playbook, playbook_id)
        assert (playbook.welcome_text, playbook.welcome_interval_seconds, playbook.rules_url) == ("", 60, "")
    english = client.get(f"/communities/{community_id}/edit?lang=en")
    assert english.status_code == 200
    status, text = _edit(client, community_id, welcome_text="Hi {name}")
    assert status == 422 and "Welcome message: unknown variable {name}" in text


def test_the_benefit_page_imports_codes_for_a_lead(client: TestClient, world: World) -> None:
    community_id, _ = _community(world)
    console_login(client, "lead")
    page = client.get(f"/communities/{community_id}/benefit")
    assert page.status_code == 200 and "新人福利券码池" in page.text and "导入券码" in page.text
    token = csrf_from(page.text)
    upload = client.post(
        f"/communities/{community_id}/benefit",
        data={"csrf_token": token},
        files={"file": ("codes.csv", "券码\nA-1\nA-2\nA-1\n".encode(), "text/csv")},
        follow_redirects=False,
    )
    assert upload.status_code == 303
    shown = client.get(upload.headers["location"]).text
    assert "已导入 2 个券码，跳过 1 个重复的；现有 2 个待发。" in shown
    pasted = client.post(f"/communities/{community_id}/benefit", data={"csrf_token": token, "codes": "A-3\nBAD CODE\n"})
    assert pasted.status_code == 422 and "第 2 行「1」列的券码含有空格或不可见字符" in pasted.text
    assert "BAD CODE" in pasted.text  # what was pasted stays in the box
    forged = client.post(f"/communities/{community_id}/benefit", data={"csrf_token": "x", "codes": "Z-1"})
    assert forged.status_code == 403
    with world.db() as s:
        assert sorted(s.scalars(select(CouponCode.code))) == ["A-1", "A-2"]
        assert s.scalar(select(Community.id).where(Community.id == community_id)) == community_id


def test_who_sees_the_benefit_page_and_who_imports(client: TestClient, world: World) -> None:
    community_id, _ = _community(world)
    console_login(client, "owner")  # owns g1, which is in the community: sees it, cannot import
    page = client.get(f"/communities/{community_id}/benefit")
    assert page.status_code == 200 and "导入券码" not in page.text
    token = csrf_from(page.text)
    denied = client.post(f"/communities/{community_id}/benefit", data={"csrf_token": token, "codes": "X"})
    assert denied.status_code == 403
    client.cookies.clear()
    console_login(client, "lead_b")  # another organisation's lead: as if it did not exist
    assert client.get(f"/communities/{community_id}/benefit").status_code == 404

"""The console pages over HTTP: each renders, each shows only what the staff member may see,
the exports hold only visible rows, and the 0→1 community setup validates and audits."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from qunyun.analytics.stats import stats_for_cli
from qunyun.ingestion.service import ingest
from qunyun.models import AuditLog, Community, Playbook, Staff
from qunyun.team.service import create_organisation
from tests.api.conftest import World, console_login, csrf_from

PAGES = ["/", "/communities", "/groups", "/members", "/channels", "/staff", "/stats", "/stats?period=weekly"]


def today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_lead_sees_every_page_in_chinese_and_can_switch_to_english(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        assert "退出登录" in page.text, path
    groups = client.get("/groups").text
    assert "Alpha 福利群" in groups and "Gamma 核心群" in groups
    detail = client.get(f"/groups/{world.groups['g1']}")
    assert detail.status_code == 200 and "群画像" in detail.text and "Member m1" in detail.text
    assert client.get(f"/members/{world.members['m1']}").status_code == 200
    english = client.get("/groups?lang=en")
    assert "Sign out" in english.text and "Members / capacity" in english.text
    assert "Sign out" in client.get("/").text  # the choice sticks (cookie)


def test_overview_numbers_are_the_daily_stats_total(client: TestClient, world: World, password_hash: str) -> None:
    """An organisation fed through ingestion: the overview's rows equal `qunyun stats daily`."""
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    day = timedelta(days=1)
    events = [
        {"id": "c1", "ts": (now - 3 * day).isoformat(), "kind": "group.created", "group": "r1", "name": "骑友1群"},
        {"id": "j1", "ts": (now - 3 * day).isoformat(), "kind": "member.joined", "group": "r1", "member": "a"},
        {"id": "j2", "ts": (now - 2 * day).isoformat(), "kind": "member.joined", "group": "r1", "member": "b"},
        {"id": "j3", "ts": (now - 2 * day).isoformat(), "kind": "member.joined", "group": "r2", "member": "b"},
        {
            "id": "p1",
            "ts": (now - day).isoformat(),
            "kind": "message.posted",
            "group": "r1",
            "member": "a",
            "msg_type": "text",
        },
        {"id": "l1", "ts": now.isoformat(), "kind": "member.left", "group": "r1", "member": "a"},
        {"id": "o1", "ts": now.isoformat(), "kind": "order.paid", "order": "o1", "member": "b", "amount": "399.00"},
    ]
    with world.db() as s:
        organisation = create_organisation(s, name="骑迹", slug="qiji")
        s.add(
            Staff(
                org_id=organisation.id,
                username="qiji-lead",
                display_name="Lead",
                password_hash=password_hash,
                role="lead",
                created_at=now,
            )
        )
        ingest(s, organisation.id, events, platform="sim", source="test", live=False)
        s.commit()
    console_login(client, "qiji-lead")
    html = client.get("/").text
    first = (now - 29 * day).date()
    stats = stats_for_cli("daily", org_slug="qiji", date_from=first, date_to=now.date(), group=None)
    assert [r["members"] for r in stats[-4:]] == [1, 2, 2, 1]  # a; a and b (in two groups); a left
    for row in stats:
        cells = html.split(f'<tr data-date="{row["date"]}">', 1)[1].split("</tr>", 1)[0]
        for metric in ("joins", "left", "actives", "members"):
            assert f'<td data-metric="{metric}">{row[metric]}</td>' in cells, (row, metric)
        assert f'data-value="{row["active_ratio"]}"' in cells
    today_row = html.split(f'<tr data-date="{now.date().isoformat()}">', 1)[1].split("</tr>", 1)[0]
    assert "¥399.00" in today_row


def test_owner_overview_totals_count_only_their_groups(client: TestClient, world: World) -> None:
    console_login(client, "owner")
    html = client.get("/").text
    row = html.split(f'<tr data-date="{today()}">', 1)[1].split("</tr>", 1)[0]
    assert '<td data-metric="members">1</td>' in row  # only m1: Gamma is not the owner's


def test_owner_sees_only_their_groups_and_members(client: TestClient, world: World) -> None:
    console_login(client, "owner")
    groups = client.get("/groups").text
    assert "Alpha 福利群" in groups and "Beta 学习群" in groups and "Gamma 核心群" not in groups
    assert client.get(f"/groups/{world.groups['g3']}").status_code == 404
    assert client.get(f"/groups/{world.groups['gb1']}").status_code == 404
    members = client.get("/members").text
    assert "Member m1" in members and "Member m2" in members
    assert "Member m3" not in members and "Member m4" not in members
    for key in ("m3", "m4", "mb1"):
        assert client.get(f"/members/{world.members[key]}").status_code == 404
    # Filtering by a group outside the scope matches nobody rather than revealing its members.
    assert "Member m3" not in client.get(f"/members?group={world.groups['g3']}").text
    staff = client.get("/staff").text
    assert 'data-staff="owner"' in staff and 'data-staff="lead"' not in staff
    assert client.get(f"/stats?group={world.groups['g3']}").status_code == 404


def test_exports_hold_only_visible_groups(client: TestClient, world: World) -> None:
    console_login(client, "owner")
    response = client.get("/stats/export?format=csv&period=daily")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert rows and {r["群名称"] for r in rows} == {"你负责的群合计", "Alpha 福利群", "Beta 学习群"}
    assert list(rows[0])[:3] == ["日期", "群 ID", "群名称"]
    weekly = client.get("/stats/export?format=xlsx&period=weekly")
    assert weekly.status_code == 200
    sheet = load_workbook(io.BytesIO(weekly.content)).active
    values = list(sheet.values)
    assert values[0][:4] == ("周", "群 ID", "群名称", "入群")
    assert "Gamma 核心群" not in {v[2] for v in values[1:]}
    assert client.get("/stats/export?format=pdf").status_code == 422


def test_lead_sets_up_a_community_step_by_step(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    start = client.get("/communities/setup/start")
    token = csrf_from(start.text)
    created = client.post(
        "/communities/setup/start",
        data={
            "csrf_token": token,
            "name": "骑友地方群",
            "community_type": "local",
            "purpose": "沉淀用户",
            "goals": "10 个 400 人群",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303 and created.headers["location"].endswith("/setup/persona")
    base = created.headers["location"].rsplit("/", 1)[0]
    steps = {
        "persona": {"target_persona": "25-45 岁骑行爱好者"},
        "value": {"value_offered": ["social", "content"], "channels_plan": "短信、包裹卡", "rhythm": "每天 8:00 早安"},
        "naming": {"naming_template": "{brand}·{region}骑友{seq}群"},
        "rules": {
            "rules": "我们是谁…",
            "values": "真诚",
            "division_of_labour": "群主+管理员",
            "organisation_model": "lead-owner-admin",
        },
        "welcome": {"welcome_text": "欢迎加入！"},
    }
    for key, fields in steps.items():
        page = client.get(f"{base}/{key}")
        assert page.status_code == 200
        response = client.post(f"{base}/{key}", data={"csrf_token": token, **fields}, follow_redirects=False)
        assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("?setup=done")
    with world.db() as s:
        community = s.scalars(select(Community).where(Community.name == "骑友地方群")).one()
        assert community.value_offered == ["social", "content"] and community.target_persona
        playbook = s.scalars(select(Playbook).where(Playbook.community_id == community.id)).one()
        assert playbook.naming_template == "{brand}·{region}骑友{seq}群" and playbook.rules_text == "我们是谁…"
        actions = set(s.scalars(select(AuditLog.action).where(AuditLog.target_id == str(community.id))))
        assert {"community.create", "community.update"} <= actions
    preview = client.get(f"{base}/naming").text
    assert "Acme 社群·华东骑友1群" in preview


def test_setup_rejects_bad_input_naming_the_field_and_writes_nothing(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/communities/setup/start").text)
    blank = client.post("/communities/setup/start", data={"csrf_token": token, "name": " ", "community_type": "local"})
    assert blank.status_code == 422 and "name" in blank.text
    wrong_type = client.post(
        "/communities/setup/start", data={"csrf_token": token, "name": "X", "community_type": "party"}
    )
    assert wrong_type.status_code == 422 and "community_type" in wrong_type.text
    created = client.post(
        "/communities/setup/start",
        data={"csrf_token": token, "name": "X", "community_type": "core"},
        follow_redirects=False,
    )
    base = created.headers["location"].rsplit("/", 1)[0]
    bad = client.post(f"{base}/naming", data={"csrf_token": token, "naming_template": "{brand}{city}"})
    assert bad.status_code == 422 and "{city}" in bad.text and 'value="{brand}{city}"' in bad.text
    duplicate = client.post(
        "/communities/setup/start", data={"csrf_token": token, "name": "X", "community_type": "core"}
    )
    assert duplicate.status_code == 409
    with world.db() as s:
        assert s.scalars(select(Community).where(Community.name == "X")).one()
        assert s.scalars(
            select(Playbook.naming_template).join(Community, Community.id == Playbook.community_id)
        ).all() == [""]


def test_only_the_lead_may_change_communities(client: TestClient, world: World) -> None:
    console_login(client, "analyst")
    token = csrf_from(client.get("/").text)
    denied = client.post("/communities/setup/start", data={"csrf_token": token, "name": "Y", "community_type": "core"})
    assert denied.status_code == 403
    client.cookies.clear()
    console_login(client, "owner")
    assert client.get("/communities/setup/start").status_code == 403


def test_community_forms_need_the_csrf_token(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    forged = client.post("/communities/setup/start", data={"csrf_token": "nope", "name": "Z", "community_type": "core"})
    assert forged.status_code == 403
    with world.db() as s:
        assert s.scalars(select(Community).where(Community.name == "Z")).first() is None

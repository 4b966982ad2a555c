"""The SOP console pages (/sop, /sop/gantt, /sop/reports) over HTTP: Chinese by default and
English on request, made for a phone, the legend naming every state, and the viewer's scope —
an owner sees their groups' runs only and another's group is 404."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qunyun.locale import Translator
from qunyun.sop.calendar import LEGEND
from tests.api.conftest import World, api_app, client, console_login, password_hash, world
from tests.sop.test_calendar_api import CAMPAIGN, applied
from tests.sop.test_endpoints import call, tomorrow

__all__ = ["api_app", "client", "password_hash", "world"]


def test_the_calendar_pages_render_in_the_viewers_scope(client: TestClient, world: World) -> None:
    applied(client, world)
    console_login(client, "owner")
    month = client.get(f"/sop?date={tomorrow()}")
    assert month.status_code == 200
    html = month.text
    assert '<a href="/sop" aria-current="page">SOP 日历</a>' in html
    # Styled by a stylesheet of our own: the Content-Security-Policy allows no inline style.
    assert 'id="sop-month"' in html and '<link rel="stylesheet" href="/static/sop.css">' in html
    assert "<style" not in html.split('id="sop-month"')[0].split("<main")[1]
    assert "@media (max-width: 760px)" in client.get("/static/sop.css").text
    zh = Translator("zh")
    for state in LEGEND:  # the legend names every state
        swatch = '<span class="swatch" aria-hidden="true"></span>'
        assert f'data-state="{state.value}">{swatch}{zh("sop.state." + state.value)}' in html
    assert "Alpha 福利群" in html and "Beta 学习群" in html and "Gamma 核心群" not in html
    week = client.get(f"/sop?view=week&date={tomorrow()}").text
    assert 'id="sop-week"' in week and "08:00 早安语" in week and 'class="run st st-planned"' in week
    # Filters and hand-edited query strings: another's group is 404, nonsense falls back.
    assert client.get(f"/sop?group={world.groups['g3']}").status_code == 404
    assert client.get(f"/sop?staff={world.staff['lead']}").status_code == 404
    assert client.get("/sop?view=year&date=nonsense&state=bogus&plan=99999999999").status_code == 200
    english = client.get(f"/sop?view=week&date={tomorrow()}&lang=en").text
    assert "Group calendar" in english and "Next week" in english


def test_gantt_and_reports_pages(client: TestClient, world: World) -> None:
    body = {"name": "28天训练营", "kind": "campaign", "steps": CAMPAIGN}
    plan_id = call(client, world, "admin", "POST", "/api/v1/sop/plans", body).json()["id"]
    for key in ("g1", "g3"):
        apply = {"group_id": world.groups[key], "start": tomorrow()}
        assert call(client, world, "lead", "POST", f"/api/v1/sop/plans/{plan_id}/apply", apply).status_code == 200
    console_login(client, "lead")
    gantt = client.get(f"/sop/gantt?plan={plan_id}").text
    assert 'id="sop-gantt"' in gantt
    for label in ("营前", "营中", "营后", "D-7", "D0", "D+14", "Alpha 福利群", "Gamma 核心群"):
        assert label in gantt, label
    assert gantt.count('class="dot st st-planned"') == 4  # two groups × the two steps still to come
    reports = client.get("/sop/reports").text
    for heading in ("按群", "按员工", "员工负荷", "执行率", "准时率"):
        assert heading in reports
    assert 'id="report-workload"' in reports and "偏少" in reports
    client.cookies.clear()
    console_login(client, "owner")
    owner = client.get(f"/sop/gantt?plan={plan_id}").text
    assert "Alpha 福利群" in owner and "Gamma 核心群" not in owner
    assert client.get(f"/sop/gantt?plan={plan_id}&group={world.groups['g3']}").status_code == 404

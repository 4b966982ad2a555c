"""The overview and its charts as a person reads them: axis text of a readable size, whole
numbers of people on the axes, a value on hover, today against yesterday at the same hour, "—"
for a day without members and averages without it, and the group list labelled as the top 8."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from qunyun.analytics.intraday import today_and_yesterday
from qunyun.auth.scope import Scope
from qunyun.console.charts import NARROWEST_PX, Series, bar_chart, line_chart
from tests.api.conftest import World, console_login
from tests.console.helpers import qiji_organisation

ZONE = ZoneInfo("Asia/Shanghai")
TEXT = {"msg_type": "text"}
CSS = Path(__file__).resolve().parents[2] / "src/qunyun/console/static/console.css"


def _svgs(html: str) -> list[str]:
    return re.findall(r'<svg class="chart".*?</svg>', html, flags=re.S)


def _y_ticks(svg: str) -> list[str]:
    """The y axis's labels: right-aligned left of the plot (the last x label is right-aligned too)."""
    from qunyun.console.charts import LEFT

    return re.findall(rf'x="{LEFT - 6:.1f}"[^>]*text-anchor="end">([^<]*)</text>', svg)


def test_axis_text_is_at_least_11_px_on_the_narrowest_card() -> None:
    svg = line_chart(["03-01", "03-02"], [Series("群成员", [3, 5])], title="群成员")
    width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))  # type: ignore[union-attr]
    sizes = [float(v) for v in re.findall(r'<text[^>]*font-size="([\d.]+)"', svg)]
    assert sizes and len(sizes) == svg.count("<text")
    assert min(sizes) * NARROWEST_PX / width >= 11  # the drawing scales down to the card's width
    # No stylesheet rule shrinks the chart text back (CSS would win over the attribute).
    rule = re.search(r"svg\.chart \.axis \{([^}]*)\}", CSS.read_text()).group(1)  # type: ignore[union-attr]
    assert "font-size" not in rule


@pytest.mark.parametrize("top", [1, 2, 3, 5, 7, 10, 13, 250, 1234])
def test_head_counts_step_by_whole_numbers(top: int) -> None:
    svg = bar_chart(["a", "b"], [Series("入群", [0, top])], title="入群")
    ticks = [float(t.replace(",", "")) for t in _y_ticks(svg)]
    assert ticks[0] == 0 and ticks[-1] >= top
    assert all(t.is_integer() for t in ticks), ticks
    assert len({b - a for a, b in pairwise(ticks)}) == 1  # even steps


def test_every_point_and_bar_has_a_hover_value() -> None:
    line = line_chart(["03-01", "03-02", "03-03"], [Series("活跃率", [0.25, None, 0.5])], title="活跃率",
                      fmt=lambda v: f"{v * 100:.0f}%")  # fmt: skip
    assert "<title>03-01 活跃率: 25%</title>" in line and "<title>03-03 活跃率: 50%</title>" in line
    assert "03-02 · 活跃率: —" in line  # the day column says "—", no dot at 0
    assert line.count("<circle") == 2 and line.count("<polyline") == 0  # no line through the gap
    bars = bar_chart(["短信", "包裹卡"], [Series("获客", [1200, 3])], title="获客")
    assert "<title>短信 获客: 1,200</title>" in bars and "<title>包裹卡 获客: 3</title>" in bars


def test_today_is_compared_with_yesterday_at_the_same_hour(world: World, password_hash: str) -> None:
    now = datetime(2026, 3, 3, 14, 0, tzinfo=ZONE)

    def at(days: int, hour: int, minute: int = 0) -> str:
        return (datetime(2026, 3, 3, hour, minute, tzinfo=ZONE) + timedelta(days=days)).isoformat()

    def event(eid: str, ts: str, kind: str, member: str, **extra: object) -> dict[str, object]:
        return {"id": eid, "ts": ts, "kind": kind, "group": "r1", "member": member, **extra}

    events: list[dict[str, object]] = [
        {"id": "c1", "ts": at(-1, 8), "kind": "group.created", "group": "r1", "name": "骑友群"},
        event("j-a", at(-1, 9), "member.joined", "a"),
        event("p-a", at(-1, 10), "message.posted", "a", msg_type="text"),
        event("j-b", at(-1, 13, 59), "member.joined", "b"),
        event("j-c", at(-1, 14), "member.joined", "c"),  # at 14:00 yesterday: not before it
        event("l-b", at(-1, 20), "member.left", "b"),
        {"id": "o-y", "ts": at(-1, 21), "kind": "order.paid", "order": "o-y", "member": "a", "amount": "100.00"},
        event("j-d", at(0, 8), "member.joined", "d"),
        {"id": "o-t", "ts": at(0, 11), "kind": "order.paid", "order": "o-t", "member": "c", "amount": "50.00"},
        {"id": "r-t", "ts": at(0, 12), "kind": "order.refunded", "order": "o-t", "amount": "10.00"},
        event("l-a", at(0, 13), "member.left", "a"),
        event("j-e", at(0, 15), "member.joined", "e"),  # after now
    ]
    org_id = qiji_organisation(world, password_hash, events)
    with world.db() as s:
        today, yesterday = today_and_yesterday(s, Scope.organisation(org_id), now, ZONE)
    metrics = ("joins", "left", "actives", "members", "active_ratio", "orders", "gmv_fen")
    # Yesterday up to 14:00: a and b joined, a posted; c's 14:00 join, b's leave and the order came later.
    assert {k: yesterday[k] for k in metrics} == {
        "joins": 2, "left": 0, "actives": 1, "members": 2, "active_ratio": 0.5, "orders": 0, "gmv_fen": 0,
    }  # fmt: skip
    # Today up to 14:00: d joined, a left; members now c and d; c paid 50 and got 10 back.
    assert {k: today[k] for k in metrics} == {
        "joins": 1, "left": 1, "actives": 0, "members": 2, "active_ratio": 0.0, "orders": 1, "gmv_fen": 4000,
    }  # fmt: skip
    assert today["until"] == yesterday["until"] == "14:00"


def test_overview_shows_the_same_hour_comparison_dashes_and_averages(
    client: TestClient, world: World, password_hash: str
) -> None:
    now = datetime.now(ZONE)
    day = timedelta(days=1)
    # Members only on the last three days: 2, 2, 1 members; 1, 0, 1 of them active (50 %, 0 %, 100 %).
    events: list[dict[str, object]] = [
        {"id": "c1", "ts": (now - 2 * day).isoformat(), "kind": "group.created", "group": "r1", "name": "骑友群"},
        {"id": "j1", "ts": (now - 2 * day).isoformat(), "kind": "member.joined", "group": "r1", "member": "a"},
        {"id": "j2", "ts": (now - 2 * day).isoformat(), "kind": "member.joined", "group": "r1", "member": "b"},
        {"id": "p1", "ts": (now - 2 * day).isoformat(), "kind": "message.posted", "group": "r1", "member": "a", **TEXT},
        {"id": "l1", "ts": now.isoformat(), "kind": "member.left", "group": "r1", "member": "b"},
        {"id": "p2", "ts": now.isoformat(), "kind": "message.posted", "group": "r1", "member": "a", **TEXT},
    ]
    qiji_organisation(world, password_hash, events)
    console_login(client, "qiji-lead")
    html = client.get("/").text
    assert "昨日同时段" in html and "今日数据截至" in html
    empty_day = (now - 5 * day).date().isoformat()
    row = html.split(f'<tr data-date="{empty_day}">', 1)[1].split("</tr>", 1)[0]
    assert re.search(r'data-metric="active_ratio"[^>]*>—</td>', row)  # not 0.0%
    week = html.split("<tbody>", 1)[1].split("</tr>", 1)[0]  # the 7-day window row
    # Averages over the three days with members only: (50 + 0 + 100) / 3 = 50 %, actives (1+0+1)/3 → 1.
    assert '<td data-metric="active_ratio">50.0%</td>' in week
    assert re.search(r'<td data-metric="actives">1 ', week)
    members_chart = _svgs(html)[0]
    assert all(float(t.replace(",", "")).is_integer() for t in _y_ticks(members_chart))


def test_overview_group_list_is_labelled_as_the_top_8(client: TestClient, world: World, password_hash: str) -> None:
    now = datetime.now(ZONE).isoformat()
    groups = [
        {"id": f"c{i}", "ts": now, "kind": "group.created", "group": f"r{i}", "name": f"群{i}"} for i in range(10)
    ]
    qiji_organisation(world, password_hash, groups)
    console_login(client, "qiji-lead")
    html = client.get("/").text
    assert "成员最多的 8 个群" in html and "查看全部 10 个群" in html
    assert html.count('<li><a href="/groups/') == 8
    # Acme's lead sees 3 groups: the whole list, labelled as such.
    client.cookies.clear()
    console_login(client, "lead")
    html = client.get("/").text
    assert "组织内的全部群" in html and "成员最多的" not in html


def test_channels_show_kind_names_and_money_with_separators(client: TestClient, world: World) -> None:
    from qunyun.models import Channel

    with world.db() as s:
        channel = s.get(Channel, world.channels["sms"])
        assert channel is not None
        channel.fixed_cost_fen = 1_234_567_89
        s.commit()
    console_login(client, "lead")
    html = client.get("/channels").text
    row = html.split('<tr data-channel="sms">', 1)[1].split("</tr>", 1)[0]
    assert '<td data-kind="sms">短信</td>' in row and "¥1,234,567.89" in row
    english = client.get("/channels?lang=en").text
    assert '<td data-kind="sms">SMS</td>' in english


def test_the_last_day_label_is_not_cut_off_by_the_chart_edge() -> None:
    from qunyun.console.charts import WIDTH

    labels = [f"11-{d:02d}" for d in range(1, 31)]
    svg = line_chart(labels, [Series("群成员", list(range(30)))], title="群成员")
    last = re.search(r'<text[^>]*x="([\d.]+)"[^>]*text-anchor="(\w+)">11-30</text>', svg)
    assert last is not None
    x, anchor = float(last.group(1)), last.group(2)
    assert anchor == "end" and x <= WIDTH

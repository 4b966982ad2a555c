"""The console's stats exports: no formula from a hostile group name, headers and sheet names in
the console's language, ratios as percentages, money with thousands separators; and the CLI's
machine-readable CSV keeps its contract while its text cells stay inert."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from qunyun.analytics.render import neutralise, render_rows
from qunyun.timeutil import iso_week_label
from tests.api.conftest import World, console_login
from tests.console.helpers import qiji_organisation

HOSTILE = '=HYPERLINK("http://evil.example","x")'
DANGEROUS = [HOSTILE, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]


def _rename(client: TestClient, world: World, group: str, name: str) -> None:
    response = client.patch(
        f"/api/v1/groups/{world.groups[group]}", json={"name": name}, headers=world.headers("owner")
    )
    assert response.status_code == 200, response.text


def _csv(client: TestClient, query: str) -> list[list[str]]:
    response = client.get(f"/stats/export?format=csv&{query}")
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def _xlsx(client: TestClient, query: str) -> tuple[str, list[list[object]], object]:
    response = client.get(f"/stats/export?format=xlsx&{query}")
    assert response.status_code == 200, response.text
    book = load_workbook(io.BytesIO(response.content))
    sheet = book.active
    assert sheet is not None
    return sheet.title, [list(r) for r in sheet.iter_rows(values_only=True)], sheet


@pytest.mark.parametrize("name", DANGEROUS)
def test_a_group_name_never_becomes_a_formula_in_csv(client: TestClient, world: World, name: str) -> None:
    _rename(client, world, "g1", name)
    console_login(client, "owner")
    rows = _csv(client, "period=daily")
    names = {r[2] for r in rows[1:]}
    assert "'" + name in names and name not in names


def test_a_group_name_is_a_string_cell_in_xlsx(client: TestClient, world: World) -> None:
    _rename(client, world, "g1", HOSTILE)
    console_login(client, "owner")
    for period in ("daily", "weekly"):
        _, _, sheet = _xlsx(client, f"period={period}")
        hits = [c for row in sheet.iter_rows() for c in row if c.value == HOSTILE]  # type: ignore[attr-defined]
        assert hits, period
        for cell in hits:
            assert cell.data_type == "s" and cell.quotePrefix, period
        assert not [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]  # type: ignore[attr-defined]


@pytest.fixture
def qiji(world: World, password_hash: str) -> datetime:
    """An organisation fed through ingestion, with a lead: group r1 has a member from yesterday
    on and a 12,345.60 yuan order today; group r2 never has anyone. Returns now."""
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    yesterday = (now - timedelta(days=1)).isoformat()
    events = [
        {"id": "c1", "ts": yesterday, "kind": "group.created", "group": "r1", "name": "骑友群"},
        {"id": "c2", "ts": yesterday, "kind": "group.created", "group": "r2", "name": "空群"},
        {"id": "j1", "ts": yesterday, "kind": "member.joined", "group": "r1", "member": "a"},
        {"id": "j2", "ts": yesterday, "kind": "member.joined", "group": "r1", "member": "b"},
        {"id": "p1", "ts": yesterday, "kind": "message.posted", "group": "r1", "member": "a", "msg_type": "text"},
        {"id": "o1", "ts": now.isoformat(), "kind": "order.paid", "order": "o1", "member": "a", "amount": "12345.60"},
    ]
    qiji_organisation(world, password_hash, events)
    return now


def test_export_headers_sheet_names_and_percentages_follow_the_language(client: TestClient, qiji: datetime) -> None:
    console_login(client, "qiji-lead")
    yesterday = (qiji - timedelta(days=1)).date().isoformat()
    rows = _csv(client, "period=daily")
    assert rows[0] == ["日期", "群 ID", "群名称", "入群", "退群", "活跃", "群成员", "活跃率"]
    by_name = {(r[0], r[2]): r for r in rows[1:]}
    assert by_name[(yesterday, "骑友群")][6:] == ["2", "50.0%"]  # one of two members posted
    assert by_name[(yesterday, "空群")][6:] == ["0", "—"]  # no members: no ratio, not 0 %

    title, values, sheet = _xlsx(client, "period=weekly")
    assert title == "每周数据"
    assert values[0][:4] == ["周", "群 ID", "群名称", "入群"] and "成交额（元）" in values[0]
    ratio_col = values[0].index("活跃率")
    # The week of yesterday's post (on a Monday, this week has a row of its own with no post).
    week = iso_week_label((qiji - timedelta(days=1)).date())
    [row] = [i for i, r in enumerate(values) if r[2] == "骑友群" and r[0] == week]
    assert values[row][ratio_col] == 0.5  # a number, shown as a percentage
    assert sheet.cell(row=row + 1, column=ratio_col + 1).number_format == "0.0%"  # type: ignore[attr-defined]
    assert [r[ratio_col] for r in values if r[2] == "空群"][-1] == "—"

    english = _csv(client, "period=weekly&lang=en")
    assert english[0][:4] == ["Week", "Group ID", "Group name", "Joins"] and "GMV (yuan)" in english[0]
    client.get("/stats?lang=en")  # the switch sticks (cookie) for the export links
    title, values, _ = _xlsx(client, "period=daily")
    assert title == "Daily" and values[0][:3] == ["Date", "Group ID", "Group name"]


def test_money_has_thousands_separators(client: TestClient, qiji: datetime) -> None:
    console_login(client, "qiji-lead")
    rows = _csv(client, "period=weekly")
    gmv = rows[0].index("成交额（元）")
    assert "12,345.60" in {r[gmv] for r in rows[1:]}
    _, _, sheet = _xlsx(client, "period=weekly")
    hits = [c for row in sheet.iter_rows() for c in row if c.value == 12345.6]  # type: ignore[attr-defined]
    assert hits and hits[0].number_format == "#,##0.00"
    assert "¥12,345.60" in client.get("/stats?period=weekly").text


def test_cli_csv_keeps_its_contract_and_neutralises_text() -> None:
    rows = [
        {"date": "2026-03-02", "group": HOSTILE, "joins": 1, "active_ratio": 0.25, "gmv": "-12.50", "wow": -0.5},
        {"date": "2026-03-03", "group": "@evil", "joins": 0, "active_ratio": 0.0, "gmv": "0.00", "wow": None},
    ]
    out = io.StringIO()
    render_rows(rows, "csv", out)
    parsed = list(csv.reader(io.StringIO(out.getvalue())))
    assert parsed[0] == ["date", "group", "joins", "active_ratio", "gmv", "wow"]
    assert parsed[1] == ["2026-03-02", "'" + HOSTILE, "1", "0.25", "-12.50", "-0.5"]
    assert parsed[2] == ["2026-03-03", "'@evil", "0", "0.0", "0.00", ""]
    assert neutralise(-3) == -3 and neutralise("-3.5") == "-3.5" and neutralise("-x") == "'-x"

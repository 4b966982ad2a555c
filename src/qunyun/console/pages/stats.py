"""Daily and weekly stats tables, and their CSV and Excel exports (the `qunyun stats` rows,
limited to the groups the staff member may see)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from qunyun.analytics.stats import StatsQuery, daily_stats, weekly_stats
from qunyun.auth.scope import group_visible, require_group
from qunyun.console.web import ConsolePage, int_param
from qunyun.errors import InvalidInput
from qunyun.models import Group

router = APIRouter()
SHOWN_ROWS = 2000  # the page shows this many rows; the exports have all of them
DAILY_COLUMNS = ["date", "group", "group_name", "joins", "left", "actives", "members", "active_ratio"]
WEEKLY_COLUMNS = [
    "week", "group", "group_name", "joins", "left", "actives", "members", "active_ratio",
    "converted", "conversion_ratio", "gmv", "converted_wow",
]  # fmt: skip
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _day(value: str | None, default: date, field: str) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD): {value!r}", field=field) from exc


def stats_rows(page: ConsolePage) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The form's values and the rows they select, with each group's name added."""
    params = page.request.query_params
    period = params.get("period", "daily")
    if period not in ("daily", "weekly"):
        raise InvalidInput("period must be daily or weekly", field="period")
    today = page.today()
    default_from = today - timedelta(days=13) if period == "daily" else today - timedelta(weeks=7)
    date_from = _day(params.get("from"), default_from, "from")
    date_to = _day(params.get("to"), today, "to")
    group_id = int_param(params.get("group"))
    org_id = page.organisation.id
    if group_id is not None:
        group = require_group(page.db, page.scope, group_id)
        query = StatsQuery(org_id, date_from, date_to, group_ids=[group.id], include_total=False)
    else:
        query = StatsQuery(org_id, date_from, date_to, group_ids=page.group_ids())
    rows = daily_stats(page.db, query) if period == "daily" else weekly_stats(page.db, query)
    names = dict(page.db.execute(select(Group.external_id, Group.name).where(group_visible(page.scope))).all())
    all_label = page.t("stats_total") if page.scope.whole_org else page.t("stats_total_mine")
    for row in rows:
        row["group_name"] = names.get(row["group"], row["group"]) if row["group"] is not None else all_label
    form = {"period": period, "from": date_from.isoformat(), "to": date_to.isoformat(), "group": group_id}
    return form, rows


@router.get("/stats")
def stats_page(page: ConsolePage) -> Response:
    form, rows = stats_rows(page)
    groups = page.db.execute(select(Group.id, Group.name).where(group_visible(page.scope)).order_by(Group.name)).all()
    columns = DAILY_COLUMNS if form["period"] == "daily" else WEEKLY_COLUMNS
    return page.render(
        "stats.html",
        "stats",
        {
            "form": form,
            "rows": rows[:SHOWN_ROWS],
            "row_total": len(rows),
            "columns": [c for c in columns if c not in ("group", "group_name")],
            "groups": groups,
            "shown": SHOWN_ROWS,
        },
    )


@router.get("/stats/export")
def stats_export(page: ConsolePage) -> Response:
    form, rows = stats_rows(page)
    fmt = page.request.query_params.get("format", "csv")
    columns = DAILY_COLUMNS if form["period"] == "daily" else WEEKLY_COLUMNS
    name = f"qunyun-{form['period']}-{form['from']}-{form['to']}"
    headers = {"Cache-Control": "no-store"}
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        # A byte-order mark so Excel opens the UTF-8 file with the Chinese names intact.
        headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return Response(("\ufeff" + out.getvalue()).encode(), media_type="text/csv; charset=utf-8", headers=headers)
    if fmt == "xlsx":
        headers["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
        return Response(_xlsx(form["period"], columns, rows), media_type=XLSX, headers=headers)
    raise InvalidInput("format must be csv or xlsx", field="format")


def _xlsx(period: str, columns: list[str], rows: list[dict[str, Any]]) -> bytes:
    from openpyxl import Workbook  # imported on use: only exports need it

    book = Workbook(write_only=True)
    sheet = book.create_sheet(period)
    sheet.append(columns)
    for row in rows:
        values = []
        for column in columns:
            value = row.get(column)
            # gmv is a decimal string in the contract; a number in a spreadsheet.
            values.append(float(value) if column == "gmv" and value is not None else value)
        sheet.append(values)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

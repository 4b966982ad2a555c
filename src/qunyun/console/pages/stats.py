"""Daily and weekly stats tables, and their CSV and Excel exports (the `qunyun stats` rows,
limited to the groups the staff member may see).

The exports are for people: headers and sheet names in the console's language, ratios as
percentages, money with thousands separators, "—" for a ratio without a base. No text cell can
become a formula (group names come from owners and platform events): CSV cells that a
spreadsheet would run get a leading quote, XLSX strings are written as strings. The machine
contract with metric names and decimal ratios is `qunyun stats --format csv|json`.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from qunyun.analytics import stats
from qunyun.analytics.render import FORMULA_START, neutralise
from qunyun.console.labels import NO_VALUE, money, percent
from qunyun.console.web import ConsolePage, int_param
from qunyun.errors import InvalidInput
from qunyun.groups.service import group_choices, group_names_by_external_id
from qunyun.locale import Msg, Translator

router = APIRouter()
SHOWN_ROWS = 2000  # the page shows this many rows; the exports have all of them
DAILY_COLUMNS = ["date", "group", "group_name", "joins", "left", "actives", "members", "active_ratio"]
WEEKLY_COLUMNS = [
    "week", "group", "group_name", "joins", "left", "actives", "members", "active_ratio",
    "converted", "conversion_ratio", "gmv", "converted_wow",
]  # fmt: skip
RATIOS = ("active_ratio", "conversion_ratio", "converted_wow")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _day(value: str | None, default: date, field: str) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(Msg("display.err_not_a_date", field=field, value=value[:40]), field=field) from exc


def ratio_shown(row: dict[str, Any], column: str) -> float | None:
    """A ratio as the console shows it: none ("—", not 0 %) when its base is empty — no members
    that day or week — or, for the week-on-week change, when the previous week had none."""
    if column in ("active_ratio", "conversion_ratio") and not row.get("members"):
        return None
    value = row.get(column)
    return None if value is None else float(value)


def cell_text(row: dict[str, Any], column: str) -> str:
    """A metric cell of the stats table, as text."""
    if column in RATIOS:
        return percent(ratio_shown(row, column))
    if column == "gmv":
        return "¥" + money(row.get(column))
    value = row.get(column)
    return NO_VALUE if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def column_title(t: Translator, column: str) -> str:
    """An export header in the console's language."""
    if column in ("date", "week"):
        return t(f"col_{column}")
    if column in ("group", "group_name", "gmv"):
        return t(f"display.col_{column}")
    return t(f"m_{column}")


def stats_rows(page: ConsolePage) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The form's values and the rows they select, with each group's name added."""
    params = page.request.query_params
    period = params.get("period", "daily")
    if period not in ("daily", "weekly"):
        raise InvalidInput(Msg("display.err_period"), field="period")
    today = page.today()
    default_from = today - timedelta(days=13) if period == "daily" else today - timedelta(weeks=7)
    date_from = _day(params.get("from"), default_from, "from")
    date_to = _day(params.get("to"), today, "to")
    group_id = int_param(params.get("group"))
    read = stats.daily if period == "daily" else stats.weekly
    # One group (NotFound unless the staff member sees it), or every group they see with the
    # all-groups total over them.
    if group_id is not None:
        rows = read(page.db, page.scope, date_from, date_to, [group_id], include_total=False)
    else:
        rows = read(page.db, page.scope, date_from, date_to)
    names = group_names_by_external_id(page.db, page.scope)
    all_label = page.t("stats_total") if page.scope.whole_org else page.t("stats_total_mine")
    for row in rows:
        row["group_name"] = names.get(row["group"], row["group"]) if row["group"] is not None else all_label
    form = {"period": period, "from": date_from.isoformat(), "to": date_to.isoformat(), "group": group_id}
    return form, rows


@router.get("/stats")
def stats_page(page: ConsolePage) -> Response:
    form, rows = stats_rows(page)
    groups = group_choices(page.db, page.scope, pinyin_order=False)
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
            "cell": cell_text,
        },
    )


@router.get("/stats/export")
def stats_export(page: ConsolePage) -> Response:
    form, rows = stats_rows(page)
    fmt = page.request.query_params.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise InvalidInput(Msg("display.err_format"), field="format")
    columns = DAILY_COLUMNS if form["period"] == "daily" else WEEKLY_COLUMNS
    titles = [column_title(page.t, c) for c in columns]
    name = f"qunyun-{form['period']}-{form['from']}-{form['to']}"
    headers = {"Cache-Control": "no-store"}
    if fmt == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        # A byte-order mark so Excel opens the UTF-8 file with the Chinese names intact.
        return Response(
            ("\ufeff" + _csv(columns, titles, rows)).encode(), media_type="text/csv; charset=utf-8", headers=headers
        )
    headers["Content-Disposition"] = f'attachment; filename="{name}.xlsx"'
    sheet_name = page.t(f"display.sheet_{form['period']}")
    return Response(_xlsx(sheet_name, columns, titles, rows), media_type=XLSX, headers=headers)


def _csv(columns: list[str], titles: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    # CRLF as Excel writes it; it also makes the writer quote a name with a carriage return.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(titles)
    for row in rows:
        values: list[Any] = []
        for column in columns:
            if column in RATIOS:
                values.append(percent(ratio_shown(row, column)))
            elif column == "gmv":
                values.append(money(row.get(column)))
            else:
                value = row.get(column)
                values.append("" if value is None else neutralise(value))
        writer.writerow(values)
    return out.getvalue()


def _xlsx(sheet_name: str, columns: list[str], titles: list[str], rows: list[dict[str, Any]]) -> bytes:
    from openpyxl import Workbook  # imported on use: only exports need it
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name[:31])
    sheet.freeze_panes = "A2"
    for i, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = 24 if column == "group_name" else 14

    def text(value: str) -> WriteOnlyCell:
        # Always a string cell, never a formula (openpyxl reads a leading "=" as one); a cell
        # that would start a formula also gets Excel's quote prefix, so it stays text if edited.
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        if value.startswith(FORMULA_START):
            cell.quotePrefix = True
        return cell

    def number(value: float, number_format: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = number_format
        return cell

    def cell(row: dict[str, Any], column: str) -> Any:
        if column in RATIOS:
            ratio = ratio_shown(row, column)
            # A number the spreadsheet can sum and sort, shown as a percentage.
            return text(NO_VALUE) if ratio is None else number(ratio, "0.0%")
        value = row.get(column)
        if column == "gmv" and value is not None:
            return number(float(value), "#,##0.00")  # a decimal string in the contract
        return text(value) if isinstance(value, str) else value

    sheet.append([text(title) for title in titles])
    for row in rows:
        sheet.append([cell(row, column) for column in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

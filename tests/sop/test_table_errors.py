"""Every bad cell of an SOP table is reported with its row (as the spreadsheet numbers it, the
header being row 1) and its column (by its header), all of them at once, and nothing is read."""

from __future__ import annotations

import io
from datetime import date, datetime, time

import pytest
from openpyxl import Workbook

from qunyun.errors import InvalidInput
from qunyun.sop.table import (
    Problem,
    TableFormat,
    TableInvalid,
    format_materials,
    parse_materials,
    read_table,
    write_table,
)
from qunyun.sop.types import Executor, Material, MaterialKind, Phase, PlanKind, StepSpec

HEADER = ["阶段", "天数", "时间", "事项", "详情", "话术", "素材", "执行人", "需截图"]
GOOD = ["营前", "D-7", "10:00", "调查问卷", "发问卷", "各位好，{group_name}", "", "机器人", "否"]


def _csv(*rows: list[str], header: list[str] = HEADER) -> bytes:
    import csv

    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue().encode("utf-8")


def _problems(data: bytes, name: str = "t.csv") -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(TableInvalid) as caught:
        read_table(data, name)
    return [(p.row, p.column, p.problem.key) for p in caught.value.problems]


def _row(**cells: str) -> list[str]:
    row = list(GOOD)
    for name, value in cells.items():
        row[HEADER.index(name)] = value
    return row


@pytest.mark.parametrize(
    ("column", "value", "key"),
    [
        ("时间", "25:00", "sop_table.bad_time"),
        ("时间", "8点", "sop_table.bad_time"),
        ("时间", "08:00:30", "sop_table.bad_time"),
        ("时间", "", "sop_table.bad_time"),
        ("天数", "第三天", "sop_table.bad_day"),
        ("天数", "D+400", "sop_table.day_range"),
        ("天数", "", "sop_table.no_day"),
        ("阶段", "营中期", "sop_table.bad_phase"),
        ("事项", "", "sop_table.required"),
        ("事项", "长" * 51, "sop_table.too_long"),
        ("话术", "你好 {nickname}", "sop_table.script_variable"),
        ("话术", "一个 { 括号", "sop_table.script_brace"),
        ("话术", "", "sop_table.bot_needs_content"),
        ("素材", "链接:qiji.example.com", "sop_table.material_line"),
        ("素材", "图片:", "sop_table.material_line"),
        ("素材", "图片:a b.jpg", "sop_table.material_line"),
        ("素材", "文件:标题|a|b", "sop_table.material_line"),
        ("素材", "文本:坏的\\x转义", "sop_table.material_line"),
        ("执行人", "店长", "sop_table.bad_executor"),
        ("执行人", "", "sop_table.required"),
        ("需截图", "也许", "sop_table.bad_flag"),
    ],
)
def test_a_bad_cell_names_its_row_and_column(column: str, value: str, key: str) -> None:
    data = _csv(GOOD, GOOD, _row(**{column: value}))
    assert _problems(data) == [(4, column, key)]


def test_every_problem_is_reported_and_nothing_is_read() -> None:
    data = _csv(_row(时间="8:61"), GOOD, _row(执行人="店长", 需截图="?"), _row(话术="{x}"))
    with pytest.raises(TableInvalid) as caught:
        read_table(data, "sop.csv")
    error = caught.value
    assert isinstance(error, InvalidInput) and error.status_code == 422 and error.field == "file"
    assert [(p.row, p.column) for p in error.problems] == [(2, "时间"), (4, "执行人"), (4, "需截图"), (5, "话术")]
    assert error.lines("zh")[0] == "第 2 行「时间」列：「8:61」不是时间：请写成 HH:MM，如 08:30"
    assert (
        error.lines("en")[1] == 'row 4, column "执行人": "店长" is not an executor: 机器人, 群主, 管理员 or 运营'
        " (bot, owner, admin, operator)"
    )
    assert error.localized("zh") == "SOP 表格有 4 处错误，没有导入任何内容"
    body = error.as_dict("zh")
    assert body["code"] == "invalid_input"
    assert body["detail"]["problems"][3] == {
        "row": 5,
        "column": "话术",
        "message": "第 5 行「话术」列：变量 {x} 不存在；可用的变量："
        "{group_name}, {member_count}, {date}, {weekday}, {owner_name}, {next_activity}, {plan_name}, {day}",
    }


def test_the_column_is_named_as_the_file_writes_it() -> None:
    header = [*HEADER[:5], "Script", *HEADER[6:]]
    assert _problems(_csv(_row(话术="{x}"), header=header)) == [(2, "Script", "sop_table.script_variable")]


def test_problems_of_the_header() -> None:
    assert _problems(
        _csv(GOOD, header=["阶段", "天数", "时间", "事项", "详情", "素材", "执行人", "需截图", "时间"])
    ) == [
        (1, "时间", "sop_table.duplicate_column"),
        (1, None, "sop_table.missing_column"),
    ]
    assert _problems(b"a,b\n1,2\n") == [(1, None, "sop_table.no_header")]
    assert _problems(_csv()) == [(None, None, "sop_table.no_steps")]
    assert _problems(_csv([*GOOD, "多出来的"])) == [(2, None, "sop_table.unnamed_column")]


def test_day_and_date_and_phases() -> None:
    header = ["阶段", "天数", "日期", *HEADER[2:]]
    row = [*GOOD[:2], "2026-03-02", *GOOD[2:]]
    assert _problems(_csv(row, header=header)) == [(2, None, "sop_table.day_and_date")]
    assert _problems(_csv(["", "", "2026-02-30", *GOOD[2:]], header=header)) == [(2, "日期", "sop_table.bad_date")]
    daily = ["阶段", *HEADER[2:]]
    assert _problems(_csv(["营前", *GOOD[2:]], header=daily)) == [(2, "阶段", "sop_table.phase_in_daily")]


def test_files_that_are_no_table() -> None:
    with pytest.raises(InvalidInput) as caught:
        read_table(b"x", "sop.xls")
    assert caught.value.msg is not None and caught.value.msg.key == "sop_table.unknown_format"
    with pytest.raises(InvalidInput) as caught:
        read_table(b"not a zip", "sop.xlsx")
    assert caught.value.msg is not None and caught.value.msg.key == "sop_table.bad_xlsx"
    with pytest.raises(InvalidInput) as caught:
        read_table(b"\xff\xff\x81", "sop.csv")
    assert caught.value.msg is not None and caught.value.msg.key == "sop_table.encoding"
    with pytest.raises(InvalidInput) as caught:
        read_table(_csv(*[GOOD] * 501), "sop.csv")
    assert caught.value.msg is not None and caught.value.msg.key == "sop_table.too_many_rows"


# --- what is accepted ---------------------------------------------------------------------


def test_encodings_and_separators() -> None:
    text = "\n".join(",".join(row) for row in (HEADER, GOOD))
    expected = read_table(text.encode("utf-8"), "a.csv").steps
    assert read_table(text.encode("utf-8-sig"), "a.csv").steps == expected
    assert read_table(text.encode("gbk"), "a.csv").steps == expected  # Excel on a Chinese Windows
    tabbed = text.replace(",", "\t")
    assert read_table(tabbed.encode("utf-16"), "a.txt").steps == expected  # Excel's "Unicode text"
    assert read_table(text.replace(",", ";").encode(), "a.csv").steps == expected


def test_forms_a_person_writes() -> None:
    rows = [
        _row(天数="-3", 时间="8:05", 执行人="运营", 需截图="是", 阶段=""),
        _row(天数="d+3", 时间="２０：００", 执行人="owner", 需截图="Y", 阶段="营中两周"),
        _row(天数="0", 时间="23:59:00", 执行人="群主", 需截图="", 阶段="after"),
    ]
    steps = read_table(_csv(*rows), "t.csv").steps
    assert [(s.day, s.at, s.executor, s.evidence_required, s.phase) for s in steps] == [
        (-3, time(8, 5), Executor.OPERATOR, True, None),
        (3, time(20, 0), Executor.OWNER, True, Phase.DURING),
        (0, time(23, 59), Executor.OWNER, False, Phase.AFTER),
    ]


def test_excel_cells_as_excel_types_them() -> None:
    """Times as ``datetime.time``, days as floats, dates as datetimes, flags as booleans; a
    title row above the header; a date merged over the rows of its day."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["骑迹训练营 SOP"])
    sheet.append(["阶段", "天数", "日期", "时间", "事项", "详情", "话术", "执行人", "需截图", "负责人"])
    sheet.append(["营前", 3.0, None, time(8, 0), "预热", None, "你好", "机器人", False, "小王"])
    sheet.append(["营中", None, datetime(2026, 3, 2), datetime(1899, 12, 30, 9, 30), 1, "", "打卡", "运营", True, None])
    sheet.append(["营中", None, None, 0.5, "直播", "", "直播开始", "机器人", 0, 7.0])
    sheet.merge_cells("C4:C5")
    out = io.BytesIO()
    book.save(out)
    table = read_table(out.getvalue(), "sop.xlsx")
    assert table.kind is PlanKind.CAMPAIGN
    assert table.rows == [3, 4, 5]
    assert [(s.day, s.on, s.at, s.category, s.evidence_required, s.extra) for s in table.steps] == [
        (3, None, time(8, 0), "预热", False, {"负责人": "小王"}),
        (None, date(2026, 3, 2), time(9, 30), "1", True, {}),
        (None, date(2026, 3, 2), time(12, 0), "直播", False, {"负责人": "7"}),
    ]


def test_excel_rows_are_numbered_as_excel_shows_them() -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["说明：每天的推送"])
    sheet.append([])
    sheet.append(["时间", "事项", "详情", "话术", "执行人"])
    sheet.append(["08:00", "早安语", "", "早安", "机器人"])
    sheet.append(["9:70", "内容推送", "", "干货", "机器人"])
    out = io.BytesIO()
    book.save(out)
    assert _problems(out.getvalue(), "sop.xlsx") == [(5, "时间", "sop_table.bad_time")]


def test_materials_cell() -> None:
    cell = "图片: https://x/a.jpg\n链接：报名页 | https://x/s?a=1\n小程序:商城|wx12/pages/i\n文件:https://x/f.pdf\n注意:明天开营\ntext:a\\|b\\nc"
    assert parse_materials(cell) == (
        Material(MaterialKind.IMAGE, "https://x/a.jpg"),
        Material(MaterialKind.LINK, "https://x/s?a=1", "报名页"),
        Material(MaterialKind.MINIPROGRAM, "wx12/pages/i", "商城"),
        Material(MaterialKind.FILE, "https://x/f.pdf"),
        Material(MaterialKind.TEXT, "注意:明天开营"),
        Material(MaterialKind.TEXT, "a|b\nc"),
    )
    assert format_materials(parse_materials(cell)).split("\n") == [
        "图片:https://x/a.jpg",
        "链接:报名页|https://x/s?a=1",
        "小程序:商城|wx12/pages/i",
        "文件:https://x/f.pdf",
        "注意:明天开营",
        "文本:a\\|b\\nc",
    ]
    assert format_materials([Material(MaterialKind.TEXT, "图片:不是图片")]) == "文本:图片:不是图片"


def test_a_csv_cell_a_spreadsheet_would_run_stays_text() -> None:
    step = StepSpec(at=time(8), category="=SUM(A1)", script="- 第一点\n- 第二点", detail="'=引号", prompt="@所有人")
    data = write_table(PlanKind.DAILY, [step], TableFormat.CSV)
    assert "'=SUM(A1)" in data.decode("utf-8-sig") and "''=引号" in data.decode("utf-8-sig")
    assert read_table(data, "a.csv").steps == [step]


def test_problem_messages() -> None:
    from qunyun.locale import Msg

    assert Problem(3, "时间", Msg("sop_table.required")).msg.render("zh") == "第 3 行「时间」列：不能为空"
    assert Problem(3, None, Msg("sop_table.day_and_date")).msg.render("en") == (
        'row 3: fill in either "天数" (day) or "日期" (date), not both'
    )
    assert Problem(None, None, Msg("sop_table.no_steps")).msg.render("zh") == "表格里没有任何步骤"


def test_the_limits_are_the_services() -> None:
    """A cell the service would refuse is reported by the table, with its row and column."""
    from qunyun.sop import service
    from qunyun.sop.table import DAY_RANGE, LIMITS, MAX_ROWS, Column

    assert (MAX_ROWS, DAY_RANGE) == (service.MAX_STEPS, service.DAY_RANGE)
    assert (LIMITS[Column.CATEGORY], LIMITS[Column.TITLE]) == (service.CATEGORY_LIMIT, service.TITLE_LIMIT)
    for column in (Column.DETAIL, Column.SCRIPT, Column.PROMPT):
        assert LIMITS[column] == service.TEXT_LIMIT


def test_excel_formatting_below_the_table_is_no_row() -> None:
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["时间", "事项", "详情", "话术", "执行人"])
    sheet.append(["08:00", "早安语", "", "早安", "机器人"])
    sheet.cell(5000, 1).font = Font(bold=True)  # a column formatted far down
    out = io.BytesIO()
    book.save(out)
    assert len(read_table(out.getvalue(), "sop.xlsx").steps) == 1
    for _ in range(510):
        sheet.append(["08:00", "早安语", "", "早安", "机器人"])
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(InvalidInput) as caught:
        read_table(out.getvalue(), "sop.xlsx")
    assert caught.value.msg is not None and caught.value.msg.key == "sop_table.too_many_rows"

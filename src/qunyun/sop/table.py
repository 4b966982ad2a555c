"""The SOP table (issue 12, point 5): an operator's spreadsheet of steps, read from and written to
Excel (.xlsx) or CSV.

Columns by their header, in any order: ``阶段`` (optional), ``天数`` or ``日期`` (a campaign; a table
without either is a daily plan), ``时间``, ``事项``, ``详情``, ``话术``, ``素材`` (optional),
``执行人``, ``需截图`` (optional); besides them ``标题`` and ``互动话题`` for a step's title and
interaction prompt, and any other column, which is kept as the step's ``extra`` and written back.

Reading is all or nothing: every bad cell is a :class:`Problem` naming its row as the spreadsheet
shows it and its column by its header, and one :class:`TableInvalid` lists them all. Writing
gives the same columns, so that reading what was written gives the same steps, and writing those
again gives the same file. The ``素材`` cell holds one material a line (see :func:`parse_materials`).
"""

from __future__ import annotations

import csv
import enum
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.sop.types import (
    EXECUTOR_LABELS,
    PHASE_LABELS,
    SCRIPT_VARIABLES,
    Executor,
    Material,
    MaterialKind,
    Phase,
    PlanKind,
    StepSpec,
)
from qunyun.texttemplate import TemplateError, fill

# --- the columns ---------------------------------------------------------------------------


class Column(enum.StrEnum):
    """A column the table knows; the value is its header as written (and exported)."""

    PHASE = "阶段"
    DAY = "天数"
    DATE = "日期"
    TIME = "时间"
    CATEGORY = "事项"
    DETAIL = "详情"
    SCRIPT = "话术"
    MATERIALS = "素材"
    EXECUTOR = "执行人"
    EVIDENCE = "需截图"
    TITLE = "标题"
    PROMPT = "互动话题"


# Other headers read as the same column (English, and the words of seed 002's sheets).
ALIASES: dict[str, Column] = {
    "phase": Column.PHASE,
    "day": Column.DAY,
    "date": Column.DATE,
    "time": Column.TIME,
    "category": Column.CATEGORY,
    "detail": Column.DETAIL,
    "具体事项": Column.DETAIL,
    "script": Column.SCRIPT,
    "materials": Column.MATERIALS,
    "executor": Column.EXECUTOR,
    "evidence": Column.EVIDENCE,
    "title": Column.TITLE,
    "prompt": Column.PROMPT,
}
REQUIRED = (Column.TIME, Column.CATEGORY, Column.DETAIL, Column.SCRIPT, Column.EXECUTOR)

# The service's limits (sop/service.py), so that the table names the cell rather than the
# service refusing the whole plan; a test keeps the two in step.
MAX_ROWS = 500
DAY_RANGE = (-60, 365)
LIMITS: dict[Column | None, int] = {
    Column.CATEGORY: 50,
    Column.TITLE: 200,
    Column.DETAIL: 4000,
    Column.SCRIPT: 4000,
    Column.PROMPT: 4000,
    Column.MATERIALS: 4000,
    None: 500,  # another column's cell
}

EVIDENCE_YES = {"是", "需要", "要", "y", "yes", "true", "1", "√", "✓", "✔"}
EVIDENCE_NO = {"否", "不需要", "不要", "n", "no", "false", "0", "×", "✗", "", "-", "无"}
YES, NO = "是", "否"


class TableFormat(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


def format_of(filename: str) -> TableFormat:
    """The format a file name's suffix names; ``InvalidInput`` for any other."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in ("xlsx", "xlsm"):
        return TableFormat.XLSX
    if suffix in ("csv", "txt", "tsv"):
        return TableFormat.CSV
    raise InvalidInput(Msg("sop_table.unknown_format", name=filename), field="file")


# --- problems ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """What is wrong with one cell (``row`` and ``column``), a row, or the whole file."""

    row: int | None
    column: str | None
    problem: Msg

    @property
    def msg(self) -> Msg:
        if self.row is not None and self.column is not None:
            return Msg("sop_table.at_cell", row=self.row, column=self.column, problem=self.problem)
        if self.row is not None:
            return Msg("sop_table.at_row", row=self.row, problem=self.problem)
        return self.problem


class TableInvalid(InvalidInput):
    """A table with bad cells: nothing of it is imported; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(Msg("sop_table.invalid", count=len(self.problems)), field="file")

    def lines(self, lang: str) -> list[str]:
        return [problem.msg.render(lang) for problem in self.problems]

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        body = super().as_dict(lang)
        body["detail"] = {
            "problems": [{"row": p.row, "column": p.column, "message": p.msg.render(lang)} for p in self.problems]
        }
        return body


class _CellError(Exception):
    def __init__(self, problem: Msg) -> None:
        super().__init__(problem.key)
        self.problem = problem


# --- materials ----------------------------------------------------------------------------

MATERIAL_LABELS: dict[MaterialKind, str] = {
    MaterialKind.TEXT: "文本",
    MaterialKind.IMAGE: "图片",
    MaterialKind.LINK: "链接",
    MaterialKind.MINIPROGRAM: "小程序",
    MaterialKind.FILE: "文件",
}
_MATERIAL_KINDS: dict[str, MaterialKind] = {
    **{label: kind for kind, label in MATERIAL_LABELS.items()},
    **{kind.value: kind for kind in MaterialKind},
}
_MATERIAL_LINE = re.compile(r"^\s*([^:：\s]+)\s*[:：](.*)$", re.S)
_ESCAPES = {"\\": "\\", "n": "\n", "|": "|"}


def _unescape(payload: str) -> list[str]:
    """``payload`` split at unescaped ``|``, with ``\\\\``, ``\\n`` and ``\\|`` resolved."""
    parts, current, chars = [], [], iter(payload)
    for ch in chars:
        if ch == "\\":
            following = next(chars, "")
            if following not in _ESCAPES:
                raise _CellError(Msg("sop_table.material_escape", escape="\\" + following))
            current.append(_ESCAPES[following])
        elif ch == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")


def parse_materials(cell: str) -> tuple[Material, ...]:
    """The ``素材`` cell: one material a line, ``种类:值`` or ``种类:标题|值`` with 种类 one of
    文本, 图片, 链接, 小程序, 文件 (or text, image, link, miniprogram, file); a line without one is
    a text. After the kind, ``\\n``, ``\\|`` and ``\\\\`` stand for a line break, a bar and a
    backslash. Links are http(s) URLs; image, link and file references have no spaces."""
    materials: list[Material] = []
    for number, raw in enumerate(cell.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        match = _MATERIAL_LINE.match(line)
        kind = _MATERIAL_KINDS.get(match.group(1).lower()) if match else None
        if match is None or kind is None:
            materials.append(Material(MaterialKind.TEXT, line))
            continue
        try:
            parts = [part.strip() for part in _unescape(match.group(2).strip())]
        except _CellError as exc:
            raise _CellError(Msg("sop_table.material_line", line=number, problem=exc.problem)) from None
        if len(parts) > 2:
            raise _CellError(Msg("sop_table.material_line", line=number, problem=Msg("sop_table.material_bars")))
        title, value = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        problem = _material_problem(kind, value)
        if problem is not None:
            raise _CellError(Msg("sop_table.material_line", line=number, problem=problem))
        materials.append(Material(kind, value, title))
    return tuple(materials)


def _material_problem(kind: MaterialKind, value: str) -> Msg | None:
    if not value:
        return Msg("sop_table.material_empty", kind=MATERIAL_LABELS[kind])
    if kind is MaterialKind.TEXT:
        return None
    if any(ch.isspace() for ch in value):
        return Msg("sop_table.material_spaces", kind=MATERIAL_LABELS[kind])
    if kind is MaterialKind.LINK and not re.match(r"^https?://[^/]", value, re.I):
        return Msg("sop_table.material_link", value=value)
    return None


def format_materials(materials: Iterable[Material]) -> str:
    """The ``素材`` cell of ``materials``: a text without title, line break, bar, backslash or a
    leading kind word is written as it is, everything else with its kind."""
    lines = []
    for material in materials:
        value = material.value
        plain = (
            material.kind is MaterialKind.TEXT
            and not material.title
            and value == value.strip()
            and not any(ch in value for ch in "\n\\|")
            and not ((match := _MATERIAL_LINE.match(value)) is not None and match.group(1).lower() in _MATERIAL_KINDS)
        )
        if plain:
            lines.append(value)
        else:
            payload = f"{_escape(material.title)}|{_escape(value)}" if material.title else _escape(value)
            lines.append(f"{MATERIAL_LABELS[material.kind]}:{payload}")
    return "\n".join(lines)


# --- cells --------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_DAY = re.compile(r"^(?:D\s*)?([+-]?)\s*(\d{1,6})$", re.I)
_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def _text(value: Any) -> str:
    """A cell as text: line breaks as ``\\n``, no control characters, no surrounding space."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date() if value.time() == time(0) else value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, time):
        value = value.strftime("%H:%M")
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text).strip()


def _plain(value: Any) -> str:
    """A cell holding a value of a fixed form (time, day, flag): full-width forms folded."""
    return unicodedata.normalize("NFKC", _text(value)).strip()


def _time(value: Any) -> time:
    if isinstance(value, datetime):
        if value.year > 1900:  # a whole date and time, not Excel's time-of-day on its epoch
            raise _CellError(Msg("sop_table.bad_time", value=_text(value)))
        value = value.time()
    if isinstance(value, time):
        seconds = round(value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6)
    elif isinstance(value, float | int) and not isinstance(value, bool) and 0 <= value < 1:
        seconds = round(value * 86400)  # a time cell read as the fraction of a day
    else:
        match = _TIME.match(_plain(value))
        if match is None:
            raise _CellError(Msg("sop_table.bad_time", value=_text(value)))
        hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise _CellError(Msg("sop_table.bad_time", value=_text(value)))
        seconds = hour * 3600 + minute * 60 + second
    if seconds % 60 or seconds >= 86400:
        raise _CellError(Msg("sop_table.bad_time", value=_text(value)))
    return time(seconds // 3600, seconds // 60 % 60)


def _day(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not float(value).is_integer():
            raise _CellError(Msg("sop_table.bad_day", value=_text(value)))
        day = int(value)
    else:
        match = _DAY.match(_plain(value))
        if match is None:
            raise _CellError(Msg("sop_table.bad_day", value=_text(value)))
        day = int(match.group(2)) * (-1 if match.group(1) == "-" else 1)
    if not DAY_RANGE[0] <= day <= DAY_RANGE[1]:
        low, high = (format_day(d) for d in DAY_RANGE)
        raise _CellError(Msg("sop_table.day_range", value=_text(value), low=low, high=high))
    return day


def format_day(day: int) -> str:
    return f"D{day:+d}" if day else "D0"


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        if value.time() != time(0):
            raise _CellError(Msg("sop_table.bad_date", value=_text(value)))
        value = value.date()
    if not isinstance(value, date):
        match = _DATE.match(_plain(value))
        try:
            if match is None:
                raise ValueError
            value = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise _CellError(Msg("sop_table.bad_date", value=_text(value))) from None
    if not 2000 <= value.year <= 2100:
        raise _CellError(Msg("sop_table.bad_date", value=_text(value)))
    return value


_PHASE_SPANS = {Phase.BEFORE: "营前一周", Phase.DURING: "营中两周", Phase.AFTER: "营后一周"}  # seed 002's words


def _phase(value: Any) -> Phase | None:
    text = _plain(value)
    if not text:
        return None
    for phase, label in PHASE_LABELS.items():
        if text in (label, _PHASE_SPANS[phase]) or text.lower() == phase.value:
            return phase
    raise _CellError(Msg("sop_table.bad_phase", value=text))


def _executor(value: Any) -> Executor:
    text = _plain(value)
    for executor, label in EXECUTOR_LABELS.items():
        if text == label or text.lower() == executor.value:
            return executor
    if not text:
        raise _CellError(Msg("sop_table.required"))
    raise _CellError(Msg("sop_table.bad_executor", value=text))


def _evidence(value: Any) -> bool:
    text = _plain(value).lower()
    if text in EVIDENCE_YES:
        return True
    if text in EVIDENCE_NO:
        return False
    raise _CellError(Msg("sop_table.bad_flag", value=_text(value)))


_SAMPLE = dict.fromkeys(SCRIPT_VARIABLES, "")


def _script(text: str) -> str:
    try:
        fill(text, _SAMPLE)
    except TemplateError as exc:
        if exc.stray_brace:
            raise _CellError(Msg("sop_table.script_brace", position=exc.position)) from None
        allowed = ", ".join(f"{{{name}}}" for name in SCRIPT_VARIABLES)
        raise _CellError(Msg("sop_table.script_variable", variable=exc.token, allowed=allowed)) from None
    return text


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table as read: the plan kind its columns make, its steps, and each step's row."""

    kind: PlanKind
    steps: list[StepSpec]
    rows: list[int] = field(default_factory=list)


def read_table(data: bytes, filename: str) -> Table:
    """The steps of a table file (its format by ``filename``'s suffix); :class:`TableInvalid`
    listing every bad cell, or ``InvalidInput`` for a file that is no table at all."""
    fmt = format_of(filename)
    rows = _xlsx_rows(data) if fmt is TableFormat.XLSX else _csv_rows(data)
    return parse_rows(rows)


def _csv_rows(data: bytes) -> list[tuple[int, list[Any]]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")  # Excel's "Unicode text"
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("gb18030")  # Excel's CSV on a Chinese Windows
            except UnicodeDecodeError:
                raise InvalidInput(Msg("sop_table.encoding"), field="file") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first.count)
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return [(number, [_unquote(cell) for cell in record]) for number, record in enumerate(records, start=1)]
    except csv.Error as exc:
        raise InvalidInput(Msg("sop_table.bad_csv", detail=str(exc)), field="file") from None


def _unquote(cell: str) -> str:
    """A CSV cell as written: the export's quote that keeps a spreadsheet from reading text as a
    formula is taken off again (see :func:`_quote`)."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in _QUOTED else cell


_FORMULA_START = ("=", "+", "-", "@")
_QUOTED = ("=", "+", "-", "@", "'")


def _quote(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: ``'`` before a formula's first character, and
    before a ``'`` that :func:`_unquote` would take off."""
    if cell.startswith(_FORMULA_START) or (cell[:1] == "'" and cell[1:2] in _QUOTED):
        return "'" + cell
    return cell


def _xlsx_rows(data: bytes) -> list[tuple[int, list[Any]]]:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError, TypeError):
        raise InvalidInput(Msg("sop_table.bad_xlsx"), field="file") from None
    sheet = book.worksheets[0]
    # A cell merged over several rows (one date for the day's items) counts in each of them.
    merged: dict[tuple[int, int], Any] = {}
    for area in sheet.merged_cells.ranges:
        value = sheet.cell(area.min_row, area.min_col).value
        for row in range(area.min_row, min(area.max_row, sheet.max_row) + 1):
            for col in range(area.min_col, min(area.max_col, 64) + 1):
                merged[(row, col)] = value
    rows: list[tuple[int, list[Any]]] = []
    for number, record in enumerate(sheet.iter_rows(values_only=True), start=1):
        values = [merged.get((number, col), value) for col, value in enumerate(record, start=1)]
        if any(value is not None for value in values):
            rows.append((number, values))
            if len(rows) > MAX_ROWS + 10:  # a header and a few title rows above it
                raise InvalidInput(Msg("sop_table.too_many_rows", limit=MAX_ROWS), field="file")
    book.close()
    return rows


def _header(rows: list[tuple[int, list[Any]]]) -> int | None:
    """The index of the header row: the first with the 时间 and 事项 columns (a title row or two
    above it is left out)."""
    for index, (_, values) in enumerate(rows[:10]):
        columns = {_column(value) for value in values}
        if Column.TIME in columns and Column.CATEGORY in columns:
            return index
    return None


def _column(value: Any) -> Column | None:
    text = _plain(value)
    try:
        return Column(text)
    except ValueError:
        return ALIASES.get(text.lower())


def parse_rows(rows: list[tuple[int, list[Any]]]) -> Table:
    """The steps of a table given as ``(row number, cell values)``; see :func:`read_table`."""
    start = _header(rows)
    if start is None:
        raise TableInvalid([Problem(1, None, Msg("sop_table.no_header"))])
    header_row, header = rows[start]
    problems: list[Problem] = []
    known: dict[Column, int] = {}
    extra: dict[str, int] = {}
    for index, value in enumerate(header):
        name = _text(value)
        column = _column(value)
        if not name:
            continue
        if (column is not None and column in known) or name in extra:
            problems.append(Problem(header_row, name, Msg("sop_table.duplicate_column")))
        elif column is not None:
            known[column] = index
        else:
            extra[name] = index
    for column in REQUIRED:
        if column not in known:
            problems.append(Problem(header_row, None, Msg("sop_table.missing_column", column=column.value)))
    campaign = Column.DAY in known or Column.DATE in known
    titles = {index: _text(header[index]) for index in (*known.values(), *extra.values())}
    steps: list[StepSpec] = []
    numbers: list[int] = []
    body = [(n, values) for n, values in rows[start + 1 :] if any(_text(v) for v in values)]
    if len(body) > MAX_ROWS:
        raise InvalidInput(Msg("sop_table.too_many_rows", limit=MAX_ROWS), field="file")
    if problems:
        raise TableInvalid(problems)  # with the header wrong, the rows cannot be read
    for number, values in body:
        for index, value in enumerate(values):
            if index not in titles and _text(value):
                problems.append(Problem(number, None, Msg("sop_table.unnamed_column", index=index + 1)))
        step = _step(number, values, known, extra, titles, campaign, problems)
        if step is not None:
            steps.append(step)
            numbers.append(number)
    if not body and not problems:
        problems.append(Problem(None, None, Msg("sop_table.no_steps")))
    if problems:
        raise TableInvalid(problems)
    return Table(PlanKind.CAMPAIGN if campaign else PlanKind.DAILY, steps, numbers)


def _step(
    number: int,
    values: list[Any],
    known: dict[Column, int],
    extra: dict[str, int],
    titles: dict[int, str],
    campaign: bool,
    problems: list[Problem],
) -> StepSpec | None:
    before = len(problems)

    def cell(column: Column) -> Any:
        index = known.get(column)
        return values[index] if index is not None and index < len(values) else None

    def read(column: Column, parse: Any, default: Any = None) -> Any:
        value = cell(column)
        try:
            return parse(value)
        except _CellError as exc:
            problems.append(Problem(number, titles[known[column]], exc.problem))
            return default

    def text(column: Column, *, required: bool = False) -> str:
        value = _text(cell(column))
        index = known.get(column)
        if index is None:
            return value
        if required and not value:
            problems.append(Problem(number, titles[index], Msg("sop_table.required")))
        limit = LIMITS[column]
        if len(value) > limit:
            problems.append(Problem(number, titles[index], Msg("sop_table.too_long", limit=limit, length=len(value))))
        return value

    at = read(Column.TIME, _time)
    category = text(Column.CATEGORY, required=True)
    detail = text(Column.DETAIL)
    script = text(Column.SCRIPT)
    if script:
        read(Column.SCRIPT, lambda value: _script(script))
    materials: tuple[Material, ...] = ()
    if Column.MATERIALS in known:
        raw = text(Column.MATERIALS)
        materials = read(Column.MATERIALS, lambda value: parse_materials(raw), ())
    executor = read(Column.EXECUTOR, _executor, Executor.BOT)
    evidence = read(Column.EVIDENCE, _evidence, False) if Column.EVIDENCE in known else False
    phase = read(Column.PHASE, _phase) if Column.PHASE in known else None
    if phase is not None and not campaign:
        problems.append(Problem(number, titles[known[Column.PHASE]], Msg("sop_table.phase_in_daily")))
    day = on = None
    if campaign:
        day_value = _text(cell(Column.DAY)) if Column.DAY in known else ""
        date_value = _text(cell(Column.DATE)) if Column.DATE in known else ""
        if day_value and date_value:
            problems.append(Problem(number, None, Msg("sop_table.day_and_date")))
        elif day_value:
            day = read(Column.DAY, _day)
        elif date_value:
            on = read(Column.DATE, _date)
        else:
            name = titles[known[Column.DAY]] if Column.DAY in known else titles[known[Column.DATE]]
            problems.append(Problem(number, name, Msg("sop_table.no_day")))
    if executor is Executor.BOT and not script and not materials and Column.SCRIPT in known:
        problems.append(Problem(number, titles[known[Column.SCRIPT]], Msg("sop_table.bot_needs_content")))
    others: dict[str, str] = {}
    for name, index in extra.items():
        value = _text(values[index]) if index < len(values) else ""
        if len(value) > LIMITS[None]:
            problems.append(Problem(number, name, Msg("sop_table.too_long", limit=LIMITS[None], length=len(value))))
        elif value:
            others[name] = value
    title, prompt = text(Column.TITLE), text(Column.PROMPT)
    if prompt:
        read(Column.PROMPT, lambda value: _script(prompt))
    if len(problems) > before:
        return None
    return StepSpec(
        at=at,
        category=category,
        title=title,
        detail=detail,
        script=script,
        materials=materials,
        prompt=prompt,
        executor=executor,
        evidence_required=evidence,
        phase=phase,
        day=day,
        on=on,
        extra=others,
    )


# --- writing ------------------------------------------------------------------------------


def columns_for(kind: PlanKind, steps: Sequence[StepSpec]) -> list[str]:
    """The headers a plan's table has: the contract's columns in their order (阶段 and 天数 or
    日期 for a campaign), then 标题 and 互动话题 when a step has one, then the steps' other columns."""
    headers: list[str] = []
    if kind is PlanKind.CAMPAIGN:
        headers.append(Column.PHASE)
        dated = any(step.on is not None for step in steps)
        if not dated or any(step.day is not None for step in steps):
            headers.append(Column.DAY)
        if dated:
            headers.append(Column.DATE)
    headers += [Column.TIME, Column.CATEGORY, Column.DETAIL, Column.SCRIPT, Column.MATERIALS]
    headers += [Column.EXECUTOR, Column.EVIDENCE]
    if any(step.title for step in steps):
        headers.append(Column.TITLE)
    if any(step.prompt for step in steps):
        headers.append(Column.PROMPT)
    for step in steps:
        for name in step.extra:
            if name not in headers and name.strip() and _column(name) is None:
                headers.append(name)
    return [str(h) for h in headers]


def _cells(step: StepSpec) -> dict[str, str]:
    return {
        **step.extra,
        Column.PHASE: PHASE_LABELS[step.phase] if step.phase is not None else "",
        Column.DAY: format_day(step.day) if step.day is not None else "",
        Column.DATE: step.on.isoformat() if step.on is not None else "",
        Column.TIME: step.at.strftime("%H:%M"),
        Column.CATEGORY: step.category,
        Column.DETAIL: step.detail,
        Column.SCRIPT: step.script,
        Column.MATERIALS: format_materials(step.materials),
        Column.EXECUTOR: EXECUTOR_LABELS[step.executor],
        Column.EVIDENCE: YES if step.evidence_required else NO,
        Column.TITLE: step.title,
        Column.PROMPT: step.prompt,
    }


def table_rows(kind: PlanKind, steps: Sequence[StepSpec]) -> list[list[str]]:
    """The table of a plan as text cells, the header first."""
    headers = columns_for(kind, steps)
    rows = [headers]
    for step in steps:
        cells = _cells(step)
        rows.append([cells.get(header, "") for header in headers])
    return rows


def write_table(kind: PlanKind, steps: Sequence[StepSpec], fmt: TableFormat) -> bytes:
    """The table file of a plan's steps: CSV in UTF-8 with a BOM (Excel opens it as such), or
    an Excel workbook of text cells."""
    rows = table_rows(kind, steps)
    if fmt is TableFormat.CSV:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        for row in rows:
            writer.writerow([_quote(cell) for cell in row])
        return out.getvalue().encode("utf-8-sig")
    return _xlsx(rows)


def _xlsx(rows: list[list[str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet("SOP")
    sheet.freeze_panes = "A2"
    widths = {Column.DETAIL: 30, Column.SCRIPT: 48, Column.MATERIALS: 36, Column.PROMPT: 24}
    for index, header in enumerate(rows[0], start=1):
        sheet.column_dimensions[get_column_letter(index)].width = widths.get(header, 12)  # type: ignore[call-overload]
    bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")

    def text(value: str, *, header: bool = False) -> WriteOnlyCell:
        # Always a string cell, never a formula; one that would start a formula is also marked
        # as text with Excel's quote prefix, so it stays text when edited.
        cell = WriteOnlyCell(sheet, value=value or None)
        if value:
            cell.data_type = "s"
            cell.quotePrefix = value.startswith(_FORMULA_START)
        cell.alignment = wrap  # a script's lines shown as lines
        if header:
            cell.font = bold
        return cell

    sheet.append([text(value, header=True) for value in rows[0]])
    for row in rows[1:]:
        sheet.append([text(value) for value in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()

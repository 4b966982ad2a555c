"""The SOP table round-trips: reading what was written gives the same steps, in CSV and Excel,
and writing those again gives the same CSV bytes and the same Excel cell values."""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from openpyxl import load_workbook

from qunyun.sop.table import TableFormat, read_table, write_table
from qunyun.sop.types import DAILY_CATEGORIES, Executor, MaterialKind, Phase, PlanKind, StepSpec
from tests.sop.strategies import plans

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sop"


def _cells(data: bytes) -> list[list[object]]:
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_steps_round_trip_through_csv(plan: tuple[PlanKind, list[StepSpec]]) -> None:
    kind, steps = plan
    data = write_table(kind, steps, TableFormat.CSV)
    table = read_table(data, "plan.csv")
    assert table.kind is kind
    assert table.steps == steps
    assert write_table(table.kind, table.steps, TableFormat.CSV) == data


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans())
def test_steps_round_trip_through_excel(plan: tuple[PlanKind, list[StepSpec]]) -> None:
    kind, steps = plan
    data = write_table(kind, steps, TableFormat.XLSX)
    table = read_table(data, "plan.xlsx")
    assert table.kind is kind
    assert table.steps == steps
    assert _cells(write_table(table.kind, table.steps, TableFormat.XLSX)) == _cells(data)


def test_the_daily_rhythm_table() -> None:
    """The seeds' day (000 §二.三): 08:00 to 20:00 every one to two hours, their categories."""
    table = read_table((FIXTURES / "daily_rhythm.csv").read_bytes(), "daily_rhythm.csv")
    assert table.kind is PlanKind.DAILY
    times = [step.at.strftime("%H:%M") for step in table.steps]
    assert times == ["08:00", "09:30", "11:00", "12:30", "14:00", "16:00", "18:00", "20:00"]
    assert {step.category for step in table.steps} == set(DAILY_CATEGORIES)
    first = table.steps[0]
    assert first.script.startswith("早安，{group_name}的骑友们！\n今天是{date} {weekday}")
    assert first.prompt == "回复「打卡」接龙，说说今天的骑行计划"
    assert all(step.day is None and step.phase is None for step in table.steps)
    active = table.steps[4]
    assert (active.category, active.executor, active.evidence_required) == ("活跃活动", Executor.OPERATOR, True)
    goods = table.steps[2]
    assert [(m.kind, m.title) for m in goods.materials] == [
        (MaterialKind.IMAGE, ""),
        (MaterialKind.MINIPROGRAM, "骑迹商城"),
    ]
    assert table.rows[:3] == [2, 3, 4]  # as a spreadsheet numbers them, though a script spans lines of the file


def test_the_28_day_campaign_table() -> None:
    """Seed 002's cycle: 营前一周 (D-7…D-1), 营中两周 (D0…D+13), 营后一周 (D+14…D+20)."""
    table = read_table((FIXTURES / "campaign_28d.csv").read_bytes(), "campaign_28d.csv")
    assert table.kind is PlanKind.CAMPAIGN
    days = [step.day for step in table.steps]
    assert days == sorted(days) and days[0] == -7 and days[-1] == 20
    for step in table.steps:
        assert step.day is not None
        expected = Phase.BEFORE if step.day < 0 else Phase.DURING if step.day < 14 else Phase.AFTER
        assert step.phase is expected
    assert {step.executor for step in table.steps} == set(Executor)


def test_the_fixtures_are_as_the_export_writes_them() -> None:
    """A table round-trips unchanged: import, export, and the file is the same, byte for byte."""
    for name in ("daily_rhythm.csv", "campaign_28d.csv"):
        data = (FIXTURES / name).read_bytes()
        table = read_table(data, name)
        assert write_table(table.kind, table.steps, TableFormat.CSV) == data
        excel = write_table(table.kind, table.steps, TableFormat.XLSX)
        assert read_table(excel, "t.xlsx").steps == table.steps
        rows = _cells(excel)
        assert rows[0][:3] == (["时间", "事项", "详情"] if table.kind is PlanKind.DAILY else ["阶段", "天数", "时间"])

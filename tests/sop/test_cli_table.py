"""``qunyun sop import|export``: the JSON is the contract's; a table exported and imported again
is the same plan, and an exported CSV re-exports byte for byte; a bad table prints every problem
by row and column, exits 2 and creates nothing."""

from __future__ import annotations

import io
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.cli_support import lead_scope_of
from qunyun.models import SopPlan
from qunyun.sop.service import plan_steps
from qunyun.sop.types import PlanKind, StepSpec
from qunyun.team.service import create_organisation
from tests.sop.conftest import SopWorld

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sop"
runner = CliRunner()


def _org(db: sessionmaker[Session]) -> int:
    with db() as s:
        org = create_organisation(s, name="骑迹单车", slug="qiji")
        s.commit()
        return org.id


def _import(path: Path, name: str) -> dict[str, int]:
    result = runner.invoke(app, ["sop", "import", str(path), "--org", "qiji", "--name", name, "--format", "json"])
    assert result.exit_code == 0, result.output
    out: dict[str, int] = json.loads(result.stdout)
    return out


def _steps(db: sessionmaker[Session], org_id: int, plan_id: int) -> tuple[PlanKind, list[StepSpec]]:
    with db() as s:
        plan, steps = plan_steps(s, lead_scope_of(org_id), plan_id)
        return PlanKind(plan.kind), steps


def _export(plan_id: int, path: Path) -> None:
    result = runner.invoke(app, ["sop", "export", str(plan_id), "-o", str(path), "--org", "qiji"])
    assert result.exit_code == 0, result.output


def _cells(path: Path) -> list[tuple[object, ...]]:
    sheet = load_workbook(io.BytesIO(path.read_bytes())).worksheets[0]
    return list(sheet.iter_rows(values_only=True))


def test_a_csv_table_round_trips_unchanged(db: sessionmaker[Session], tmp_path: Path) -> None:
    org_id = _org(db)
    for fixture, kind, count in (("daily_rhythm.csv", PlanKind.DAILY, 8), ("campaign_28d.csv", PlanKind.CAMPAIGN, 22)):
        imported = _import(FIXTURES / fixture, fixture)
        assert imported == {"plan": imported["plan"], "steps": count}
        assert _steps(db, org_id, imported["plan"])[0] is kind
        exported = tmp_path / fixture
        _export(imported["plan"], exported)
        assert exported.read_bytes() == (FIXTURES / fixture).read_bytes()


def test_an_excel_table_round_trips_unchanged(db: sessionmaker[Session], tmp_path: Path) -> None:
    org_id = _org(db)
    first = _import(FIXTURES / "campaign_28d.csv", "训练营")
    book = tmp_path / "训练营.xlsx"
    _export(first["plan"], book)
    second = _import(book, "训练营（第二期）")
    assert second["steps"] == 22
    assert _steps(db, org_id, second["plan"]) == _steps(db, org_id, first["plan"])
    again = tmp_path / "again.xlsx"
    _export(second["plan"], again)
    assert _cells(again) == _cells(book)
    assert _cells(book)[0] == ("阶段", "天数", "时间", "事项", "详情", "话术", "素材", "执行人", "需截图")
    assert not list(tmp_path.glob(".*.part"))


def test_a_bad_table_is_refused_whole(db: sessionmaker[Session], tmp_path: Path) -> None:
    _org(db)
    lines = (FIXTURES / "daily_rhythm.csv").read_text(encoding="utf-8-sig").replace("09:30,", "9点半,")
    bad = tmp_path / "bad.csv"
    bad.write_text(lines.replace("运营,是", "店长,是"), encoding="utf-8")
    result = runner.invoke(app, ["sop", "import", str(bad), "--org", "qiji", "--name", "日常", "--format", "json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "SOP 表格有 2 处错误，没有导入任何内容" in result.output
    assert "第 3 行「时间」列：「9点半」不是时间：请写成 HH:MM，如 08:30" in result.output
    assert "第 6 行「执行人」列：「店长」不是执行人：应为 机器人、群主、管理员 或 运营" in result.output
    with db() as s:
        assert s.scalar(select(func.count()).select_from(SopPlan)) == 0


def test_one_line_failures(db: sessionmaker[Session], tmp_path: Path) -> None:
    _org(db)
    plan = _import(FIXTURES / "daily_rhythm.csv", "日常节奏")["plan"]
    taken = runner.invoke(app, ["sop", "import", str(FIXTURES / "daily_rhythm.csv"), "--name", "日常节奏"])
    assert taken.exit_code == 2 and "日常节奏" in taken.output
    unknown = runner.invoke(app, ["sop", "export", str(plan + 100), "-o", str(tmp_path / "x.csv")])
    assert unknown.exit_code == 2 and not (tmp_path / "x.csv").exists()
    pdf = runner.invoke(app, ["sop", "export", str(plan), "-o", str(tmp_path / "x.pdf")])
    assert pdf.exit_code == 2 and "无法识别文件「x.pdf」的格式" in pdf.output
    missing = runner.invoke(app, ["sop", "import", str(tmp_path / "nope.xlsx")])
    assert missing.exit_code == 2
    named = runner.invoke(app, ["sop", "import", str(FIXTURES / "campaign_28d.csv"), "--format", "json"])
    assert named.exit_code == 0, named.output
    with db() as s:
        assert s.scalar(select(SopPlan.name).where(SopPlan.id == json.loads(named.stdout)["plan"])) == "campaign_28d"


def test_an_imported_campaign_is_applied_and_runs(sop_world: SopWorld) -> None:
    """The whole path from the shell: the 28-day table imported, applied to a group from a start
    day, its 22 runs at D-7 … D+20 in the organisation's zone."""
    plan = _import(FIXTURES / "campaign_28d.csv", "骑行训练营")["plan"]
    start = date.today() + timedelta(days=10)
    applied = runner.invoke(
        app, ["sop", "apply", str(plan), "--group", "S1", "--start", start.isoformat(), "--format", "json"]
    )
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout) == {"runs": 22}
    listed = runner.invoke(app, ["sop", "runs", "--group", "S1", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    fire_at = [datetime.fromisoformat(row["fire_at"]) for row in json.loads(listed.stdout)]
    assert fire_at[0] == datetime.combine(start - timedelta(days=7), time(10), ZoneInfo("Asia/Shanghai"))
    assert fire_at[-1] == datetime.combine(start + timedelta(days=20), time(20), ZoneInfo("Asia/Shanghai"))

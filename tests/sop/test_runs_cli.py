"""``qunyun sop apply`` and ``qunyun sop runs``: the JSON and CSV are the contract."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.db.session import unit_of_work
from qunyun.sop import service
from qunyun.sop.cli import app as sop_app
from qunyun.sop.runs_cli import register
from tests.sop.conftest import SopWorld, daily_steps, local, tomorrow

runner = CliRunner()
register(sop_app)  # until qunyun.sop.cli registers them itself (idempotent)


def test_apply_then_list_a_groups_runs(sop_world: SopWorld) -> None:
    with unit_of_work(sop_world.db) as s:
        plan_id = service.create_plan(s, sop_world.scope(), name="日常", kind="daily", steps=daily_steps()).id
    start = tomorrow()
    applied = runner.invoke(
        app, ["sop", "apply", str(plan_id), "--group", "S1", "--start", start.isoformat(), "--format", "json"]
    )
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout) == {"runs": 84}
    listed = runner.invoke(
        app,
        ["sop", "runs", "--group", "S1", "--from", start.isoformat(), "--to", start.isoformat(), "--format", "json"],
    )
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [list(r) for r in rows] == [["run", "plan", "step", "group", "fire_at", "state"]] * 3
    assert [r["fire_at"] for r in rows] == [local(start, h).isoformat() for h in (8, 12, 20)]
    assert rows[0]["fire_at"].endswith("+08:00")
    assert {r["plan"] for r in rows} == {plan_id} and {r["group"] for r in rows} == {"S1"}
    assert {r["state"] for r in rows} == {"planned"}
    as_csv = runner.invoke(
        app, ["sop", "runs", "--group", "S1", "--from", (start + timedelta(days=27)).isoformat(), "--format", "csv"]
    )
    table = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert table[0] == ["run", "plan", "step", "group", "fire_at", "state"] and len(table) == 4
    again = runner.invoke(app, ["sop", "apply", str(plan_id), "--group", "S1", "--format", "json"])
    assert json.loads(again.stdout) == {"runs": 0}


def test_unknown_group_bad_date_and_unknown_plan_are_one_line(sop_world: SopWorld) -> None:
    unknown = runner.invoke(app, ["sop", "runs", "--group", "nope"])
    assert unknown.exit_code == 2 and "nope" in unknown.output
    bad = runner.invoke(app, ["sop", "runs", "--group", "S1", "--from", "03/01"])
    assert bad.exit_code == 2 and "03/01" in bad.output
    missing = runner.invoke(app, ["sop", "apply", "999", "--group", "S1", "--format", "json"])
    assert missing.exit_code != 0 and "999" in missing.output

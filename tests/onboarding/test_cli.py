"""``qunyun onboarding coupons import|show``: the JSON is stable; a bad row names its row and
column and adds nothing; an unknown playbook is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.models import Playbook
from qunyun.models.onboarding import CouponCode
from qunyun.team.service import create_organisation
from qunyun.timeutil import utcnow

runner = CliRunner()


def test_import_and_show_a_pool(db: sessionmaker[Session], tmp_path: Path) -> None:
    with db() as s:
        org = create_organisation(s, name="骑迹单车", slug="qiji")
        s.add(Playbook(org_id=org.id, name="地方骑友群", settings={}, created_at=utcnow()))
        s.commit()
    codes = tmp_path / "codes.csv"
    codes.write_text("券码,面值\nQJ-001,10\nQJ-002,10\nQJ-001,10\n", encoding="utf-8")
    imported = runner.invoke(
        app, ["onboarding", "coupons", "import", str(codes), "--playbook", "地方骑友群", "--format", "json"]
    )
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) == {"added": 2, "duplicates": 1, "free": 2}
    shown = runner.invoke(app, ["onboarding", "coupons", "show", "--playbook", "地方骑友群", "--format", "json"])
    assert json.loads(shown.stdout) == {
        "playbook": "地方骑友群",
        "free": 2,
        "given": 0,
        "missed": 0,
        "empty_task_open": False,
    }
    bad = tmp_path / "bad.txt"
    bad.write_text("QJ-003\nQJ 004\n", encoding="utf-8")
    refused = runner.invoke(app, ["onboarding", "coupons", "import", str(bad), "--playbook", "地方骑友群"])
    assert refused.exit_code == 2 and "第 2 行「1」列的券码含有空格或不可见字符" in refused.output
    unknown = runner.invoke(app, ["onboarding", "coupons", "show", "--playbook", "核心群"])
    assert unknown.exit_code == 2 and "没有名为「核心群」的剧本" in unknown.output
    with db() as s:
        assert s.scalar(select(func.count()).select_from(CouponCode)) == 2

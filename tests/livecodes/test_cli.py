"""`qunyun livecodes create|show` (PRODUCT.md "Command-line contract")."""

from __future__ import annotations

import json
from typing import Any

from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.auth.scope import Scope
from qunyun.cli import app
from qunyun.db.session import unit_of_work
from qunyun.ingestion.service import ingest
from qunyun.livecodes import service
from qunyun.models import Group, Role
from qunyun.team.service import create_organisation
from tests.livecodes.helpers import PNG, Org, scan

_runner = CliRunner()


def cli(*args: str) -> Result:
    return _runner.invoke(app, list(args))


def _json(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


def _org_with_groups(db: sessionmaker[Session]) -> Org:
    with unit_of_work(db) as s:
        org = create_organisation(s, name="Acme", slug="acme")
        events = [
            {
                "id": f"g{i}",
                "ts": "2026-03-01T08:00:00+08:00",
                "kind": "group.created",
                "group": f"G{i}",
                "name": f"群{i}",
            }
            for i in (1, 2)
        ]
        ingest(s, org.id, events, platform="import", source="test")
        lead = Scope(staff_id=0, org_id=org.id, role=Role.LEAD)
        for group in s.scalars(select(Group)):
            service.upload_qr_image(s, lead, group.id, PNG)
        return Org(db, org.id, 0, 0)


def test_create_prints_the_code_and_show_its_figures(db: sessionmaker[Session]) -> None:
    org = _org_with_groups(db)
    out = _json(
        cli(
            "livecodes",
            "create",
            "--org",
            "acme",
            "--name",
            "短信",
            "--groups",
            "G1,G2",
            "--limit",
            "2",
            "--fallback-url",
            "https://example.com/staff",
            "--format",
            "json",
        )
    )
    assert set(out) == {"code", "url"} and out["url"] == f"/c/{out['code']}"
    for _ in range(5):
        scan(org, out["code"])
    shown = _json(cli("livecodes", "show", out["code"], "--format", "json"))
    assert shown == {
        "code": out["code"],
        "scans": 5,
        "visitors": 5,
        "fallback": 1,
        "groups": [
            {"group": "G1", "routed": 2, "limit": 2, "joined": 0},
            {"group": "G2", "routed": 2, "limit": 2, "joined": 0},
        ],
    }


def test_refusals_are_one_line_naming_what_is_wrong(db: sessionmaker[Session]) -> None:
    _org_with_groups(db)
    unknown = cli("livecodes", "create", "--name", "x", "--groups", "G1,G9", "--format", "json")
    assert unknown.exit_code != 0 and "G9" in unknown.output
    bad_channel = cli("livecodes", "create", "--name", "x", "--groups", "G1", "--channel", "nope")
    assert bad_channel.exit_code != 0 and "nope" in bad_channel.output
    bad_url = cli("livecodes", "create", "--name", "x", "--groups", "G1", "--fallback-url", "ftp://x")
    assert bad_url.exit_code != 0 and "--fallback-url" in bad_url.output
    missing = cli("livecodes", "show", "zzzzzzzz", "--format", "json")
    assert missing.exit_code != 0 and "zzzzzzzz" in missing.output

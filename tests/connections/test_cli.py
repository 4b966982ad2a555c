"""`qunyun connections …` (PRODUCT.md "Command-line contract"): add prints {"id", "platform",
"callback_path"} with --format json; secrets from the command line, the environment, a file or
standard input, never printed; list, test, disable, enable; rotate-key; events import --connection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.models import AuditLog, Connection, Group

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

_runner = CliRunner()


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
    return _runner.invoke(app, list(args), input=stdin, env=env)


@pytest.fixture
def orgs(db: sessionmaker[Session]) -> dict[str, int]:
    from qunyun.team.service import create_organisation

    with db() as s:
        ids = {slug: create_organisation(s, name=slug, slug=slug).id for slug in ("acme", "rival")}
        s.commit()
    return ids


def _json(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return json.loads(result.stdout)


def test_add_prints_the_contract(orgs: dict[str, int], db: sessionmaker[Session]) -> None:
    out = _json(cli("connections", "add", "simulator", "--org", "acme", "--name", "sandbox", "--format", "json"))
    assert set(out) == {"id", "platform", "callback_path"}
    assert out["platform"] == "simulator" and out["callback_path"] == f"/hooks/simulator/{out['id']}"
    with db() as s:
        row = s.get(Connection, out["id"])
        assert row is not None and row.org_id == orgs["acme"] and row.status == "active"
        audit = s.scalars(select(AuditLog).where(AuditLog.action == "connection.add")).one()
        assert audit.staff_id is None and audit.target_id == str(out["id"])


def test_secrets_from_the_environment_a_file_and_standard_input_are_never_printed(
    orgs: dict[str, int], db: sessionmaker[Session], tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("tok3nValue\n", encoding="utf-8")
    result = cli(
        "connections", "add", "wecom", "--org", "acme", "--name", "企业微信",
        "--set", "corp_id=ww0123456789abcdef", "--set", "agent_id=1000002", "--api-base", "http://127.0.0.1:9",
        "--secret", "secret=env:WECOM_SECRET",
        "--secret", f"token=file:{tmp_path / 'token'}",
        "--secret", "aes_key=-",
        "--format", "json",
        stdin=AES_KEY + "\n",
        env={"WECOM_SECRET": "app-secret-value-123"},
    )  # fmt: skip
    out = _json(result)
    assert out["platform"] == "wecom"
    # Stored, with the reason it cannot be used yet on standard error.
    assert "gettoken" in result.stderr or "40013" in result.stderr  # WeCom refused or unreachable
    listed = _json(cli("connections", "list", "--org", "acme", "--format", "json"))
    assert listed[0]["has_secrets"] == {"secret": True, "token": True, "aes_key": True}
    assert listed[0]["status"] == "error"
    for output in (result.output, json.dumps(listed)):
        for value in ("app-secret-value-123", "tok3nValue", AES_KEY):
            assert value not in output
    from qunyun.connections.secrets import decrypt

    with db() as s:
        row = s.get(Connection, out["id"])
        assert row is not None
        assert decrypt(row.secrets) == {"secret": "app-secret-value-123", "token": "tok3nValue", "aes_key": AES_KEY}


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["wecom", "--set", "corp_id=ww0123456789abcdef"], {}, "secrets.secret"),
        (["wecom", "--secret", "A-TYPED-SECRET"], {}, "settings.corp_id"),
        (["simulator", "--secret", "A-TYPED-SECRET"], {}, "--secret"),
        (["simulator", "--secret", "webhook_secret=env:NOPE_NOT_SET"], {}, "NOPE_NOT_SET"),
        (["myspace"], {}, "myspace"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(
    orgs: dict[str, int], args: list[str], env: dict[str, str], expected: str
) -> None:
    result = cli("connections", "add", *args, "--org", "acme", "--name", "x", env=env)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output
    assert "A-TYPED-SECRET" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_names_are_unique(orgs: dict[str, int]) -> None:
    assert cli("connections", "add", "simulator", "--org", "acme", "--name", "one").exit_code == 0
    again = cli("connections", "add", "simulator", "--org", "acme", "--name", "one")
    assert again.exit_code == 2 and "one" in again.stderr


def test_list_test_disable_enable(orgs: dict[str, int]) -> None:
    added = _json(cli("connections", "add", "simulator", "--org", "acme", "--name", "s", "--format", "json"))
    theirs = _json(cli("connections", "add", "simulator", "--org", "rival", "--name", "s", "--format", "json"))
    cid = str(added["id"])
    assert _json(cli("connections", "disable", cid, "--org", "acme", "--format", "json"))["status"] == "disabled"
    assert _json(cli("connections", "test", cid, "--org", "acme", "--format", "json"))["status"] == "disabled"
    assert _json(cli("connections", "enable", cid, "--org", "acme", "--format", "json"))["status"] == "active"
    table = cli("connections", "list", "--org", "acme")
    assert table.exit_code == 0 and f"/hooks/simulator/{cid}" in table.stdout
    # Another organisation's connection is not found.
    other = cli("connections", "disable", str(theirs["id"]), "--org", "acme")
    assert other.exit_code == 2 and str(theirs["id"]) in other.stderr


def test_rotate_key(orgs: dict[str, int], db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    from qunyun.config import get_settings
    from qunyun.connections.secrets import SecretsUnreadable, decrypt

    secret = "hook-secret-12345"
    cli("connections", "add", "simulator", "--org", "acme", "--name", "a", "--secret", f"webhook_secret={secret}")
    cli("connections", "add", "simulator", "--org", "rival", "--name", "b", "--secret", f"webhook_secret={secret}")
    cli("connections", "add", "simulator", "--org", "rival", "--name", "c")  # no secrets: nothing to rotate
    old_key = get_settings().resolved_secret_key()
    new_key = "a-brand-new-secret-key-that-is-long-enough-9876543210"
    try:
        monkeypatch.setenv("QUNYUN_SECRET_KEY", new_key)
        get_settings.cache_clear()
        with db() as s, pytest.raises(SecretsUnreadable):
            decrypt(s.scalars(select(Connection.secrets).where(Connection.name == "a")).one())
        failed = cli("connections", "rotate-key")  # the old key is not configured: nothing opens
        assert failed.exit_code == 2 and "QUNYUN_PREVIOUS_SECRET_KEYS" in failed.stderr
        monkeypatch.setenv("QUNYUN_PREVIOUS_SECRET_KEYS", old_key)
        get_settings.cache_clear()
        rotated = cli("connections", "rotate-key")
        assert rotated.exit_code == 0 and "2" in rotated.stderr
        monkeypatch.delenv("QUNYUN_PREVIOUS_SECRET_KEYS")
        get_settings.cache_clear()
        with db() as s:
            stored = s.scalars(select(Connection.secrets).where(Connection.secrets != "")).all()
            assert [decrypt(v) for v in stored] == [{"webhook_secret": secret}] * 2
            audits = s.scalars(select(AuditLog.org_id).where(AuditLog.action == "connection.rotate_key")).all()
            assert sorted(audits) == sorted(orgs.values())
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_events_import_into_a_connection(orgs: dict[str, int], db: sessionmaker[Session], tmp_path: Path) -> None:
    added = _json(cli("connections", "add", "simulator", "--org", "acme", "--name", "sandbox", "--format", "json"))
    theirs = _json(cli("connections", "add", "simulator", "--org", "rival", "--name", "x", "--format", "json"))
    path = tmp_path / "events.jsonl"
    event = {"id": "e1", "ts": "2026-03-02T09:00:00+08:00", "kind": "group.created", "group": "g1", "name": "一群"}
    path.write_text(json.dumps(event, ensure_ascii=False) + "\n", encoding="utf-8")
    refused = cli("events", "import", str(path), "--org", "acme", "--connection", str(theirs["id"]))
    assert refused.exit_code == 2 and str(theirs["id"]) in refused.stderr
    result = cli("events", "import", str(path), "--org", "acme", "--connection", str(added["id"]))
    assert result.exit_code == 0, result.output
    with db() as s:
        group = s.scalars(select(Group).where(Group.org_id == orgs["acme"])).one()
        assert group.platform == "simulator"
        assert group.connection_id == added["id"]


def test_each_platform_is_added_with_its_named_options(orgs: dict[str, int], db: sessionmaker[Session]) -> None:
    wecom = _json(
        cli(
            "connections", "add", "wecom", "--org", "acme", "--name", "企微",
            "--corp-id", "ww0123456789abcdef", "--secret", "app-secret-value-123", "--token", "tok3nValue",
            "--aes-key", AES_KEY, "--api-base", "http://127.0.0.1:9", "--format", "json",
        )
    )  # fmt: skip
    assert wecom == {"id": wecom["id"], "platform": "wecom", "callback_path": f"/hooks/wecom/{wecom['id']}"}
    telegram = _json(
        cli(
            "connections", "add", "telegram", "--org", "acme", "--name", "tg",
            "--bot-token", "123456:" + "A" * 35, "--polling", "--api-base", "http://127.0.0.1:9", "--format", "json",
        )
    )  # fmt: skip
    matrix = _json(
        cli(
            "connections", "add", "matrix", "--org", "acme", "--name", "mx", "--homeserver", "http://127.0.0.1:9",
            "--as-token", "as-token-value", "--hs-token", "hs-token-value", "--user-id", "@bot:localhost",
            "--format", "json",
        )
    )  # fmt: skip
    with db() as s:
        from qunyun.connections.secrets import decrypt

        rows = {row.platform: row for row in s.scalars(select(Connection).where(Connection.org_id == orgs["acme"]))}
        assert rows["wecom"].id == wecom["id"] and rows["wecom"].settings["api_base"] == "http://127.0.0.1:9"
        assert decrypt(rows["wecom"].secrets) == {
            "secret": "app-secret-value-123",
            "token": "tok3nValue",
            "aes_key": AES_KEY,
        }
        assert rows["telegram"].id == telegram["id"] and rows["telegram"].settings["mode"] == "polling"
        assert rows["matrix"].id == matrix["id"] and rows["matrix"].settings["mode"] == "appservice"
        assert decrypt(rows["matrix"].secrets) == {"as_token": "as-token-value", "hs_token": "hs-token-value"}
    missing = cli("connections", "add", "matrix", "--org", "acme", "--name", "m2", "--homeserver", "http://h.example")
    assert missing.exit_code == 2 and "secrets.access_token" in missing.stderr

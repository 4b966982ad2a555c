"""The CLI as a new user meets it: an expected failure is one clear line (in the configured
language) and a non-zero exit, never a traceback; --org may be left out when there is one
organisation; from another directory the command uses, and names, the project's database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from qunyun.cli import app
from tests.analytics.helpers import created, import_events, sh
from tests.analytics.helpers import join as joined

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _env(**values: str) -> dict[str, str]:
    """The environment of a fresh ``qunyun`` process: the test database's settings removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUNYUN_")}
    env["QUNYUN_SECRET_KEY"] = "test-secret-key-that-is-long-enough-0123456789"
    env.update(values)
    return env


def qunyun(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qunyun.cli", *args], env=_env(**env), cwd=cwd, capture_output=True, text=True
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def assert_one_line(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    return one_line(result.stderr)


STATS = ("stats", "daily", "--from", "2026-03-01", "--to", "2026-03-02")


def test_no_schema_is_one_line_that_says_run_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    missing = qunyun(*STATS, QUNYUN_DATABASE_URL=url)
    assert missing.returncode == 1
    assert "qunyun db upgrade" in one_line(missing.stderr)
    assert not (tmp_path / "fresh.db").exists()  # asking does not create the file
    # An empty file (no tables) and a schema older than the code say so too.
    (tmp_path / "fresh.db").touch()
    empty = qunyun(*STATS, QUNYUN_DATABASE_URL=url, QUNYUN_DEFAULT_LANGUAGE="en")
    assert empty.returncode == 1
    assert one_line(empty.stderr).startswith("error: no schema in sqlite:///") and "run `qunyun db upgrade`" in (
        empty.stderr
    )
    assert qunyun("db", "upgrade", "0001", QUNYUN_DATABASE_URL=url).returncode == 0
    old = qunyun(*STATS, QUNYUN_DATABASE_URL=url)
    assert old.returncode == 1
    line = one_line(old.stderr)
    assert "0001" in line and "qunyun db upgrade" in line and "错误" in line  # Chinese by default
    # --debug (or QUNYUN_DEBUG=1) shows the traceback of the same failure.
    debug = qunyun("--debug", *STATS, QUNYUN_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_unreachable_database_names_the_url_without_its_password() -> None:
    url = "postgresql://qunyun:s3cret-pw@127.0.0.1:9/qunyun"  # port 9 (discard): nothing listens
    done = qunyun(*STATS, QUNYUN_DATABASE_URL=url, QUNYUN_DEFAULT_LANGUAGE="en")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith("error: cannot reach the database postgresql://qunyun:***@127.0.0.1:9/qunyun")
    assert "s3cret-pw" not in done.stderr


def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    done = qunyun("db", "status", QUNYUN_TIME_ZONE="Mars/Olympus", QUNYUN_DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    assert done.returncode == 1
    assert "QUNYUN_TIME_ZONE" in one_line(done.stderr)


def test_bad_options_missing_files_and_unknown_organisations_are_one_line(db: object, tmp_path: Path) -> None:
    bad_format = assert_one_line(runner.invoke(app, [*STATS, "--format", "xml"]))
    assert "--format" in bad_format and "xml" in bad_format
    assert "--to" in assert_one_line(runner.invoke(app, ["stats", "daily", "--from", "2026-03-01", "--to", "x"]))
    assert "--days" in assert_one_line(runner.invoke(app, ["demo", "--days", "0"]))
    missing = tmp_path / "no-such.jsonl"
    assert "no-such.jsonl" in assert_one_line(runner.invoke(app, ["events", "import", str(missing)]))
    password_file = tmp_path / "no-such-password"
    reset = runner.invoke(app, ["staff", "reset-password", "lead", "--password-file", str(password_file)])
    line = assert_one_line(reset)
    assert str(password_file) in line and "找不到文件" in line
    assert "nope" in assert_one_line(runner.invoke(app, [*STATS, "--org", "nope"]))
    add = runner.invoke(app, ["org", "add-staff", "nope", "someone", "--password", "x" * 12])
    assert "nope" in assert_one_line(add)


def test_a_bug_still_shows_its_traceback(db: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only expected failures are shortened: anything else reaches the user as it is."""
    import qunyun.cli_support

    def broken() -> list[str]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(qunyun.cli_support, "organisation_slugs", broken)
    result = runner.invoke(app, list(STATS))
    assert isinstance(result.exception, ZeroDivisionError)


def test_org_may_be_left_out_when_there_is_one_organisation(db: object, tmp_path: Path) -> None:
    events = [
        created("e1", sh("03-01", "08:00:00"), "g1", capacity=200),
        joined("e2", sh("03-01", "09:00:00"), "g1", "m1", channel="sms", scene="qr"),
    ]
    import_events(tmp_path, events, "--org", "solo")
    only = runner.invoke(app, [*STATS, "--format", "json"])
    assert only.exit_code == 0, only.output
    assert '"joins":1' in only.stdout.replace(" ", "")
    # A second import without --org goes to the only organisation too (no stray "default").
    import_events(tmp_path, [created("e3", sh("03-01", "10:00:00"), "g2", capacity=100)])
    assert runner.invoke(app, ["org", "create", "other"]).exit_code == 0
    several = runner.invoke(app, list(STATS))
    line = assert_one_line(several)
    assert "--org" in line and "other, solo" in line
    for args in (["events", "import", str(tmp_path / "events-0.jsonl")], ["stats", "weekly", *STATS[2:]]):
        assert "other, solo" in assert_one_line(runner.invoke(app, args))
    assert runner.invoke(app, [*STATS, "--org", "solo"]).exit_code == 0


def test_from_another_directory_the_project_database_is_used_and_named(tmp_path: Path) -> None:
    done = qunyun("db", "status", cwd=tmp_path)
    project_db = (ROOT / "var" / "qunyun.db").as_posix()
    assert f"sqlite:///{project_db}" in done.stderr.splitlines()[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "var").exists()
    # An explicit database is named the same way, without its password; db upgrade names it too.
    fresh = tmp_path / "elsewhere.db"
    upgraded = qunyun("db", "upgrade", cwd=tmp_path, QUNYUN_DATABASE_URL=f"sqlite:///{fresh}")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stderr.splitlines()[0] == f"数据库：sqlite:///{fresh.as_posix()}"
    english = {"QUNYUN_DATABASE_URL": f"sqlite:///{fresh}", "QUNYUN_DEFAULT_LANGUAGE": "en"}
    status = qunyun("db", "status", cwd=tmp_path, **english)
    assert status.returncode == 0, status.stderr
    assert status.stderr.splitlines()[0] == f"database: sqlite:///{fresh.as_posix()}"
    assert "schema at revision" in status.stderr


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (OSError(28, "No space left on device", "/srv/qunyun/var/qunyun.db"), "磁盘空间已满"),
        (PermissionError(13, "Permission denied", "/srv/qunyun/events.jsonl"), "没有权限"),
        ("database or disk is full", "磁盘空间已满"),
        ("attempt to write a readonly database", "没有权限"),
        ("database is locked", "正忙"),
    ],
)
def test_disk_full_permission_and_busy_database_are_one_line(
    db: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: object, expected: str
) -> None:
    """The disk and the permissions cannot be taken away from a test run as root: the importer is
    made to fail the way the operating system and SQLite do."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    import qunyun.ingestion.importer

    def failing(*args: object, **kwargs: object) -> None:
        if isinstance(failure, OSError):
            raise failure
        raise OperationalError("INSERT INTO events …", {}, sqlite3.OperationalError(str(failure)))

    monkeypatch.setattr(qunyun.ingestion.importer, "import_file", failing)
    path = tmp_path / "events.jsonl"
    path.write_text("")
    line = assert_one_line(runner.invoke(app, ["events", "import", str(path)]), code=1)
    assert expected in line


def test_from_another_directory_the_projects_env_file_is_read(tmp_path: Path) -> None:
    # A copy of the source checkout, so that its .env is not the real one: every other test (and
    # the other test processes of a parallel run) reads the real checkout's settings meanwhile.
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "src" / "qunyun", checkout / "src" / "qunyun")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = {"QUNYUN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "PYTHONPATH": str(checkout / "src")}
    (checkout / ".env").write_text("QUNYUN_DEFAULT_LANGUAGE=en\n", encoding="utf-8")
    status = qunyun("db", "status", cwd=elsewhere, **database)
    assert status.stderr.splitlines()[0].startswith("database: "), status.stderr
    # One in the working directory wins over the project's.
    (elsewhere / ".env").write_text("QUNYUN_DEFAULT_LANGUAGE=zh\n", encoding="utf-8")
    status = qunyun("db", "status", cwd=elsewhere, **database)
    assert status.stderr.splitlines()[0].startswith("数据库："), status.stderr

"""Settings, the SQLite engine settings, and the set-up and schema commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.config import Settings
from qunyun.db.session import make_engine

ROOT = Path(__file__).resolve().parents[2]


def test_production_refuses_a_missing_or_placeholder_secret_key() -> None:
    for key in ("", "change-me", "short-but-not-placeholder"):
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(env="production", secret_key=key)
    assert Settings(env="production", secret_key="x" * 40).secret_key == "x" * 40


def test_development_generates_the_secret_key_once_into_var(tmp_path: Path) -> None:
    settings = Settings(env="development", secret_key="", var_dir=tmp_path)
    first = settings.resolved_secret_key()
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert Settings(env="development", secret_key="", var_dir=tmp_path).resolved_secret_key() == first


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Settings(time_zone="Mars/Olympus")


def test_default_database_is_a_sqlite_file_in_var(tmp_path: Path) -> None:
    settings = Settings(database_url="", var_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.as_posix()}/qunyun.db"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_db_upgrade_builds_an_empty_sqlite_file_from_migrations(tmp_path: Path) -> None:
    env = {**os.environ, "QUNYUN_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "QUNYUN_DEFAULT_LANGUAGE": "en"}
    done = subprocess.run(
        [sys.executable, "-m", "qunyun.cli", "db", "upgrade"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    head = done.stderr.split("schema at revision ")[1].strip()
    assert head.startswith("00")
    engine = make_engine(env["QUNYUN_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    engine.dispose()


def test_setup_creates_one_lead_and_prints_a_login_that_works(db: object) -> None:
    from sqlalchemy import select

    from qunyun.auth.passwords import verify_password
    from qunyun.db.session import unit_of_work
    from qunyun.models import Staff

    runner = CliRunner()
    first = runner.invoke(app, ["setup", "--username", "boss"])
    assert first.exit_code == 0, first.output
    password = first.stderr.split("密码")[1].split()[0]
    with unit_of_work(write=False) as session:
        lead = session.scalars(select(Staff)).one()
        assert (lead.username, lead.role) == ("boss", "lead")
        assert verify_password(lead.password_hash, password)
    again = runner.invoke(app, ["setup"])
    assert again.exit_code == 0
    assert "无需初始化" in again.stderr

"""`qunyun serve --no-access-log`: no line per request (for ingest-heavy servers); on by default."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from qunyun.cli import app


def test_the_access_log_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: calls.append(kwargs))
    runner = CliRunner()

    assert runner.invoke(app, ["serve", "--job-threads", "0"]).exit_code == 0
    assert runner.invoke(app, ["serve", "--job-threads", "0", "--no-access-log"]).exit_code == 0
    assert runner.invoke(app, ["serve", "--workers", "2", "--job-threads", "0", "--no-access-log"]).exit_code == 0

    assert [kwargs["access_log"] for kwargs in calls] == [True, False, False]

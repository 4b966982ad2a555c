"""`qunyun serve [--workers N] [--job-threads N]`: N server processes, and where the job threads run."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.models import JobStatus
from qunyun.worker.runner import IMPORTS_ENV
from tests.worker.handlers import RECORD
from tests.worker.support import Factory, add_job, get_job


def job_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("qunyun-worker-")]


def test_several_server_processes_leave_the_job_threads_to_the_parent(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Factory, org_id: int
) -> None:
    import uvicorn

    monkeypatch.setenv(IMPORTS_ENV, "tests.worker.handlers")
    job_id = add_job(db, RECORD, {"org_id": org_id})
    calls: list[tuple[Any, dict[str, Any]]] = []

    def run(target: Any, **kwargs: Any) -> None:
        # While uvicorn would supervise its server processes, the parent runs the jobs.
        calls.append((target, kwargs))
        assert job_threads() == ["qunyun-worker-0", "qunyun-worker-1"]
        deadline = time.monotonic() + 30
        while get_job(db, job_id).status != JobStatus.DONE and time.monotonic() < deadline:
            time.sleep(0.05)

    monkeypatch.setattr(uvicorn, "run", run)
    result = CliRunner().invoke(app, ["serve", "--workers", "3", "--job-threads", "2"])

    assert result.exit_code == 0, result.output
    [(target, kwargs)] = calls
    # Each server process builds its own app, without job threads.
    assert (target, kwargs["factory"], kwargs["workers"]) == ("qunyun.api.app:create_app", True, 3)
    assert get_job(db, job_id).status == JobStatus.DONE
    assert job_threads() == []  # stopped when the servers stopped


def test_one_server_process_runs_the_job_threads_itself(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: calls.append((target, kwargs)))
    runner = CliRunner()

    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert runner.invoke(app, ["serve", "--job-threads", "0"]).exit_code == 0

    assert [(type(target), "workers" in kwargs) for target, kwargs in calls] == [(FastAPI, False)] * 2
    assert job_threads() == []  # the app's lifespan (never started here) owns them


def test_serve_needs_at_least_one_server_process(database_url: str) -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "0"])
    assert result.exit_code == 2

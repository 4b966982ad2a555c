"""Four worker processes drain 2,000 jobs from one database, and each job runs exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.session import unit_of_work
from qunyun.models import AuditLog, Job, JobRun, Organisation
from qunyun.timeutil import utcnow
from qunyun.worker.queue import enqueue_many
from qunyun.worker.runner import IMPORTS_ENV
from tests.worker.handlers import EXECUTION_LOG_ENV, RECORD

REPO = Path(__file__).resolve().parents[2]
JOBS = 2000
PROCESSES = 4
TIMEOUT = 180


def test_four_worker_processes_run_each_job_exactly_once(
    database_url: str, db: sessionmaker[Session], tmp_path: Path
) -> None:
    with unit_of_work(db) as s:
        org = Organisation(name="Exactly once", slug="exactly-once", created_at=utcnow())
        s.add(org)
        s.flush()
        org_id = org.id

    executions = tmp_path / "executions"
    executions.mkdir()
    env = {
        **os.environ,
        "QUNYUN_DATABASE_URL": database_url,
        IMPORTS_ENV: "tests.worker.handlers",
        EXECUTION_LOG_ENV: str(executions),
    }
    logs = [(tmp_path / f"worker{i}.log").open("w+") for i in range(PROCESSES)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "qunyun.cli", "worker", "--concurrency", "2", "--batch", "8", "--name", f"proc{i}"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for i, log in enumerate(logs)
    ]
    deadline = time.monotonic() + TIMEOUT
    try:
        # Every process is up and polling before the jobs arrive: on a busy machine the first
        # one to start could otherwise drain them all alone before the others have started.
        while not all("started 2 job worker(s)" in (tmp_path / f"worker{i}.log").read_text() for i in range(PROCESSES)):
            assert all(proc.poll() is None for proc in procs), "a worker exited before the jobs came"
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        with unit_of_work(db) as s:
            # A few milliseconds per job, so that the workers interleave.
            enqueue_many(s, [(RECORD, {"org_id": org_id, "sleep_ms": 2}, org_id)] * JOBS)
        with db() as s:
            job_ids = set(s.scalars(select(Job.id).where(Job.kind == RECORD)))
        assert len(job_ids) == JOBS
        while not _all_done(db):
            assert time.monotonic() < deadline, "the jobs were not all done in time"
            time.sleep(0.2)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)  # finish the job in hand, then exit
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = []
    for log in logs:
        log.seek(0)
        output.append(log.read())
        log.close()
    assert [p.returncode for p in procs] == [0] * PROCESSES, "\n".join(output)

    with db() as s:
        statuses = Counter(s.scalars(select(Job.status).where(Job.kind == RECORD)))
        attempts = set(s.scalars(select(Job.attempts).where(Job.kind == RECORD)))
        effect_counts = Counter(s.scalars(select(AuditLog.target_id)))
        job_runs = s.execute(
            select(JobRun.job_id, JobRun.worker, JobRun.outcome, JobRun.started_at, JobRun.finished_at)
            .where(JobRun.job_id.in_(select(Job.id).where(Job.kind == RECORD)))
            .order_by(JobRun.job_id, JobRun.started_at)
        ).all()
        assert s.scalar(select(func.count()).select_from(Job).where(Job.locked_by.is_not(None))) == 0

    assert statuses == {"done": JOBS}
    assert attempts == {1}
    # Each job's effect committed exactly once …
    assert effect_counts == Counter({str(i): 1 for i in job_ids})
    # … and its handler ran exactly once, counted outside the database where nothing rolls back.
    ran = Counter(int(line) for path in executions.iterdir() for line in path.read_text().split())
    assert ran == Counter(dict.fromkeys(job_ids, 1))
    # One successful run per job, and no two runs of one job overlapped.
    assert Counter((job_id, outcome) for job_id, _, outcome, _, _ in job_runs) == Counter(
        {(i, "done"): 1 for i in job_ids}
    )
    for earlier, later in pairwise(job_runs):
        if earlier.job_id == later.job_id:
            assert earlier.finished_at <= later.started_at
    processes = Counter(worker.rsplit(":", 1)[0] for _, worker, _, _, _ in job_runs)
    assert len(processes) > 1, processes


def _all_done(db: sessionmaker[Session]) -> bool:
    with db() as s:
        return not s.scalar(select(func.count()).select_from(Job).where(Job.kind == RECORD, Job.status != "done"))

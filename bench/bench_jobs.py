"""Job throughput on PostgreSQL: `qunyun worker --burst` processes against a bare SKIP LOCKED loop.

6,000 trivial jobs (`--jobs`; each writes one small row, bench/jobs_handlers.py) are drained by
1 and by 4 `qunyun worker --burst` processes. The baseline, measured in the same run on the same `jobs`
table, is a bare loop in as many processes: claim up to `--batch` due jobs with
`FOR UPDATE SKIP LOCKED LIMIT n`, issue the INSERT per job, mark them done, commit — one
transaction per batch, no leases kept, no run history, no savepoints, no typed payloads. The
workers' handler issues that very INSERT through the same driver call, so that the ratio measures
the queue; a second worker figure writes the row through SQLAlchemy Core instead (what a typical
handler's database layer adds). Then the jobs as two-phase jobs (prepare, a call that does
nothing, record writes the row).

Throughput counts the jobs finished while every process was at work (see `drained`), so process
start-up and the tail are left out of both sides alike. Every configuration runs `--rounds` times,
each worker figure next to its baseline, and the medians are shown: the machine is shared, and
its load drifts within seconds. Reproduce: `.venv/bin/python -m bench.bench_jobs`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import psycopg

from bench.common import QUNYUN, ROOT, fresh_pg, run_cli
from bench.jobs_handlers import INSERT_SQL, TOUCH, TOUCH_CORE, TOUCH_TWO_PHASE

DATABASE = "qunyun_bench_jobs"
MICROS = 1_000_000


@dataclass
class Figure:
    label: str
    processes: int
    jobs: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0


def prepare(url: str, kind: str, jobs: int) -> int:
    """Empty the queue and the rows of earlier runs, then enqueue ``jobs`` jobs of ``kind``."""
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE job_runs, jobs, audit_log RESTART IDENTITY")
        org_id = conn.execute("SELECT id FROM organisations WHERE slug = 'bench-jobs'").fetchone()
        if org_id is None:
            org_id = (create_organisation(url),)
        now = time.time_ns() // 1000
        columns = "org_id, kind, payload, status, priority, run_at, attempts, max_attempts, created_at"
        with conn.cursor() as cur, cur.copy(f"COPY jobs ({columns}) FROM STDIN") as copy:
            for n in range(jobs):
                payload = json.dumps({"org_id": org_id[0], "n": n})
                copy.write_row((org_id[0], kind, payload, "queued", 0, now, 0, 5, now))
        conn.execute("ANALYZE jobs")
    # The periodic jobs of the current buckets are done already: the workers run the bench's jobs only, as
    # the bare loop does (else a few real jobs of the domains run among them).
    schedule_periodic_done(url)
    return int(org_id[0])


def schedule_periodic_done(url: str) -> None:
    from sqlalchemy import update
    from sqlalchemy.orm import sessionmaker

    from qunyun.db.session import make_engine, unit_of_work
    from qunyun.models import Job, JobStatus
    from qunyun.worker.runner import load_handler_modules
    from qunyun.worker.scheduler import schedule_due

    load_handler_modules()
    engine = make_engine(url)
    try:
        with unit_of_work(sessionmaker(bind=engine)) as session:
            schedule_due(session)
            session.execute(update(Job).where(Job.key.is_not(None)).values(status=JobStatus.DONE.value))
    finally:
        engine.dispose()


def create_organisation(url: str) -> int:
    from sqlalchemy.orm import sessionmaker

    from qunyun.db.session import make_engine, unit_of_work
    from qunyun.team.service import create_organisation

    engine = make_engine(url)
    try:
        with unit_of_work(sessionmaker(bind=engine)) as session:
            return create_organisation(session, name="Bench jobs", slug="bench-jobs").id
    finally:
        engine.dispose()


FINISHED_BY_WORKER = (
    "SELECT r.worker, r.finished_at FROM job_runs r JOIN jobs j ON j.id = r.job_id"
    " WHERE j.kind = %s AND r.outcome = 'done'"
)
FINISHED_BY_BARE_LOOP = "SELECT locked_by, finished_at FROM jobs WHERE kind = %s AND status = 'done'"


def drained(url: str, kind: str, jobs: int, finished: str) -> tuple[int, float]:
    """Jobs finished while every process was at work, and over how many seconds: from the moment
    the last process to start finished its first job to the moment the first to stop finished its
    last (one process: first to last job), so that start-up and the tail are left out alike.
    Checks that every job is done, once."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(finished, (kind,)).fetchall()
        written = conn.execute("SELECT count(*), count(DISTINCT target_id) FROM audit_log").fetchone()
    assert written is not None
    if len(rows) != jobs or written != (jobs, jobs):
        raise RuntimeError(f"{len(rows)} of {jobs} jobs done, {written[0]} rows written for {written[1]} jobs")
    spans: dict[str, list[int]] = {}
    for worker, at in rows:
        spans.setdefault(worker, []).append(at)
    start = max(min(ats) for ats in spans.values())
    end = min(max(ats) for ats in spans.values())
    counted = sum(1 for _, at in rows if start <= at <= end)
    return counted, float(end - start) / MICROS


def run_processes(commands: list[list[str]], env: dict[str, str]) -> None:
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE) for cmd in commands]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(proc.args)} failed: {err.decode()[-2000:]}")


def workers(url: str, kind: str, jobs: int, processes: int, batch: int) -> Figure:
    prepare(url, kind, jobs)
    env = {**os.environ, "QUNYUN_DATABASE_URL": url, "QUNYUN_WORKER_IMPORTS": "bench.jobs_handlers"}
    env["QUNYUN_ENV"] = "development"
    run_processes(
        [[*QUNYUN, "worker", "--burst", "--batch", str(batch), "--name", f"bench{i}"] for i in range(processes)], env
    )
    return Figure(kind, processes, *drained(url, kind, jobs, FINISHED_BY_WORKER))


def bare(url: str, jobs: int, processes: int, batch: int) -> Figure:
    prepare(url, TOUCH, jobs)
    run_processes(
        [[sys.executable, "-m", "bench.bench_jobs", "--bare-loop", url, "--batch", str(batch)]] * processes,
        dict(os.environ),
    )
    return Figure("bare SKIP LOCKED loop", processes, *drained(url, TOUCH, jobs, FINISHED_BY_BARE_LOOP))


def bare_loop(url: str, batch: int) -> None:
    """The baseline: claim, write, mark done, one transaction per batch, until nothing is due."""
    me = f"bare:{os.getpid()}"
    with psycopg.connect(url) as conn:
        while True:
            with conn.transaction():
                now = time.time_ns() // 1000
                claimed = conn.execute(
                    "UPDATE jobs SET status = 'running', locked_by = %s, attempts = attempts + 1"
                    " WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= %s"
                    " ORDER BY priority DESC, run_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING id, payload",
                    (me, now, batch),
                ).fetchall()
                for _, payload in claimed:
                    conn.execute(
                        INSERT_SQL,
                        (payload["org_id"], str(payload["n"]), json.dumps({"n": payload["n"]}), time.time_ns() // 1000),
                    )
                # locked_by stays: it tells which process finished the job (see drained).
                conn.execute(
                    "UPDATE jobs SET status = 'done', finished_at = %s WHERE id = ANY(%s)",
                    (time.time_ns() // 1000, [job_id for job_id, _ in claimed]),
                )
            if not claimed:
                return


def one_round(url: str, jobs: int, batch: int) -> dict[str, Figure]:
    """Every configuration once, each worker figure next to its baseline (the machine's load
    drifts: a ratio compares two runs a few seconds apart)."""
    figures: dict[str, Figure] = {}
    for processes in (1, 4):
        figures[f"ours{processes}"] = workers(url, TOUCH, jobs, processes, batch)
        figures[f"bare{processes}"] = bare(url, jobs, processes, batch)
        figures[f"core{processes}"] = workers(url, TOUCH_CORE, jobs, processes, batch)
    figures["two_phase4"] = workers(url, TOUCH_TWO_PHASE, jobs, 4, batch)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=6_000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="runs of every configuration; medians are shown")
    parser.add_argument("--bare-loop", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        bare_loop(args.bare_loop, args.batch)
        return
    url = fresh_pg(DATABASE)
    if url is None:
        print("PostgreSQL is not reachable (QUNYUN_BENCH_PG_ADMIN): nothing measured")
        return
    run_cli(["db", "upgrade"], url)
    load_before = os.getloadavg()
    rounds = [one_round(url, args.jobs, args.batch) for _ in range(args.rounds)]
    load_after = os.getloadavg()

    def rate(key: str) -> float:
        return statistics.median(r[key].rate for r in rounds)

    def ratio(ours: str, baseline: str) -> float:
        return statistics.median(r[ours].rate / r[baseline].rate for r in rounds)

    print(f"\n{args.jobs:,} trivial jobs (one row each), batches of {args.batch}, PostgreSQL, median of {args.rounds}")
    print(f"{'':32} {'processes':>9} {'jobs/s':>9} {'ratio':>7}  (ratios per round)")
    rows = [
        ("bare SKIP LOCKED loop", 1, "bare1", None),
        ("qunyun worker", 1, "ours1", "bare1"),
        ("qunyun worker, Core INSERT", 1, "core1", "bare1"),
        ("bare SKIP LOCKED loop", 4, "bare4", None),
        ("qunyun worker", 4, "ours4", "bare4"),
        ("qunyun worker, Core INSERT", 4, "core4", "bare4"),
        ("qunyun worker, two-phase", 4, "two_phase4", "bare4"),
    ]
    for label, processes, key, baseline in rows:
        line = f"{label:32} {processes:>9} {rate(key):>9,.0f}"
        if baseline is not None:
            each = " ".join(f"{r[key].rate / r[baseline].rate:.2f}" for r in rounds)
            line += f" {ratio(key, baseline):>7.2f}  ({each})"
        print(line)
    print("ratio: the median, over the rounds, of the worker's rate over the bare loop's with as many")
    print("processes in the same round (goal: at least 0.5)")
    print(f"load average (1, 5, 15 min): {_load(load_before)} before, {_load(load_after)} after")


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)


if __name__ == "__main__":
    main()

"""SOP runs on PostgreSQL: materialization, and the lateness of runs all due in one minute.

1. **Materialization**: `--groups` groups (10,000) on a simulator connection get a daily plan of
   8 slots (the seeds' rhythm, 08:00-20:00) through `sop.runs.apply_many`: 28 days × 8 slots per
   group, 2.24 M runs inserted in bulk. Printed: seconds and runs per second.
2. **Dispatch lateness**: the first run of every group (`--due`, 10,000) is moved to the next
   minute boundary; 4 `qunyun worker` processes, started before it, claim them (`sop.fire_due`),
   fire them in chunks (`sop.fire`: render, request the send under `sop:run:<id>`) and send them
   through the simulator (`connectors.perform`, two-phase). Lateness per run: handed on
   (`fired_at`) and sent (the action's `sent` transition) minus the due time; p50, p99, max,
   and whether all were sent within 60 s. Goal: all within 60 s, p99 under 30 s.
3. **Baseline**, in the same run over the same rows (reset to planned and due at the next
   minute): 4 processes of a bare loop — claim up to 32 due planned runs with
   `SELECT … FOR UPDATE SKIP LOCKED`, mark them sent, commit — and its lateness.

Cost per run, from the worker processes themselves (``QUNYUN_WORKER_IMPORTS`` loads this module
in each, which counts from the due time on): SQL statements per run (by kind with
``--statements``) and CPU seconds per run of the 4 processes together (fire and perform). Wall
figures depend on the machine's load: the load average is printed with them.

The 2.24 M other runs stay in the table (due later), as they would be. Reproduce:
`.venv/bin/python -m bench.bench_sop` (`--groups 1000` for a quick look).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import psycopg

from bench.common import QUNYUN, ROOT, fresh_pg, run_cli

DATABASE = "qunyun_bench_sop"
MICROS = 1_000_000
SLOTS = [(8, 0, "早安语"), (9, 30, "内容推送"), (11, 0, "商品推送"), (12, 30, "品牌宣传")]
SLOTS += [(14, 0, "活跃活动"), (16, 0, "新品预告"), (18, 0, "内容推送"), (20, 0, "晚安语")]
WORKERS = 4
BATCH = 32
PROBE_ENV = "QUNYUN_BENCH_SOP_PROBE"  # "<due epoch seconds>:<output file>" in a worker process


def setup(url: str, groups: int) -> tuple[int, int, list[int]]:
    """An organisation, its simulator connection (whose simulated world has every group), the
    groups and the daily plan. Returns (org, plan, group ids)."""
    from sqlalchemy import insert, select
    from sqlalchemy.orm import sessionmaker

    from qunyun.auth.scope import Scope
    from qunyun.connections.service import default_connection
    from qunyun.db.session import make_engine, unit_of_work
    from qunyun.models import Group, Role
    from qunyun.sop import service
    from qunyun.sop.types import StepSpec
    from qunyun.team.service import create_organisation, create_staff
    from qunyun.worker.runner import load_handler_modules

    load_handler_modules()
    engine = make_engine(url)
    try:
        with unit_of_work(sessionmaker(bind=engine)) as session:
            org = create_organisation(session, name="Bench SOP", slug="bench-sop")
            lead = create_staff(session, org.id, username="bench-lead", password="password-123", role="lead")
            connection = default_connection(session, org.id, "simulator")
            externals = [f"g{n}" for n in range(groups)]
            connection.settings = {"groups": externals}
            now = datetime.now(UTC)
            session.execute(
                insert(Group),
                [
                    {
                        "org_id": org.id,
                        "platform": "simulator",
                        "external_id": ext,
                        "name": f"骑友{n}群",
                        "connection_id": connection.id,
                        "capacity": 500,
                        "status": "active",
                        "member_count": 100,
                        "tier": "normal",
                        "region": "",
                        "created_at": now,
                    }
                    for n, ext in enumerate(externals)
                ],
            )
            steps = [
                StepSpec(at=clock(h, m), category=c, script=f"{{group_name}}的朋友们，{c}（{{date}}{{weekday}}）")
                for h, m, c in SLOTS
            ]
            scope = Scope(staff_id=lead.id, org_id=org.id, role=Role.LEAD)
            plan = service.create_plan(session, scope, name="日常节奏", kind="daily", steps=steps)
            ids = list(session.scalars(select(Group.id).where(Group.org_id == org.id).order_by(Group.id)))
            return org.id, plan.id, ids
    finally:
        engine.dispose()


def materialize(url: str, org_id: int, plan_id: int, group_ids: list[int], start: date) -> tuple[int, float]:
    from sqlalchemy.orm import sessionmaker

    from qunyun.auth.scope import Scope
    from qunyun.db.session import make_engine, unit_of_work
    from qunyun.models import Role
    from qunyun.sop.runs import apply_many

    engine = make_engine(url)
    try:
        started = time.perf_counter()
        with unit_of_work(sessionmaker(bind=engine)) as session:
            made = apply_many(session, Scope(staff_id=0, org_id=org_id, role=Role.LEAD), plan_id, group_ids, start)
        return made, time.perf_counter() - started
    finally:
        engine.dispose()


def next_minute(lead_seconds: float) -> datetime:
    """The first minute boundary at least ``lead_seconds`` away (workers are up by then)."""
    now = datetime.now(UTC) + timedelta(seconds=lead_seconds)
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def make_due(url: str, due: datetime, count: int) -> list[int]:
    """The first run of ``count`` groups (their first slot) made due at ``due``; the rest of their
    runs stay later. Earlier outcomes are cleared. Returns the run ids."""
    from sqlalchemy.orm import sessionmaker

    from qunyun.db.session import make_engine, unit_of_work
    from qunyun.sop.runs import schedule_minutes

    at = int(due.timestamp() * MICROS)
    with psycopg.connect(url) as conn:
        # DELETE, not TRUNCATE … CASCADE: sop_runs refers to outbound_actions and would go with them.
        conn.execute("UPDATE sop_runs SET action_id = NULL WHERE action_id IS NOT NULL")
        for table in ("outbound_action_transitions", "staff_tasks", "outbound_actions", "job_runs", "jobs"):
            conn.execute(f"DELETE FROM {table}")
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT ON (group_id) id FROM sop_runs ORDER BY group_id, due_at, id LIMIT %s", (count,)
            )
        ]
        conn.execute(
            "UPDATE sop_runs SET due_at = %s, fire_at = %s, state = 'planned', fired_at = NULL, text = NULL,"
            " reason = '' WHERE id = ANY(%s)",
            (at, at, ids),
        )
        conn.execute("ANALYZE sop_runs")
    engine = make_engine(url)
    try:
        with unit_of_work(sessionmaker(bind=engine)) as session:
            schedule_minutes(session, [at])
            _periodic_done(session)
    finally:
        engine.dispose()
    return ids


def _periodic_done(session: object) -> None:
    """The periodic jobs of the current buckets count as done, but the SOP's own minute jobs: the
    workers do the bench's work only."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from qunyun.models import Job
    from qunyun.worker.scheduler import schedule_due

    assert isinstance(session, Session)
    schedule_due(session)
    session.execute(update(Job).where(Job.key.is_not(None), Job.kind != "sop.fire_due").values(status="done"))


def lateness(url: str, ids: list[int], due: datetime, *, sent: bool) -> list[float]:
    """Seconds from due to handed on (``fired_at``), or to the action's ``sent``."""
    at = int(due.timestamp() * MICROS)
    with psycopg.connect(url) as conn:
        if sent:
            rows = conn.execute(
                "SELECT t.at FROM sop_runs r JOIN outbound_action_transitions t ON t.action_id = r.action_id"
                " WHERE r.id = ANY(%s) AND t.to_state = 'sent'",
                (ids,),
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT fired_at FROM sop_runs WHERE id = ANY(%s) AND fired_at IS NOT NULL", (ids,)
            ).fetchall()
    return sorted((r[0] - at) / MICROS for r in rows)


def wait_for(url: str, ids: list[int], due: datetime, *, sent: bool, timeout: float) -> None:
    deadline = due.timestamp() + timeout
    while time.time() < deadline:
        if len(lateness(url, ids, due, sent=sent)) >= len(ids):
            return
        time.sleep(1)


def install_probe(spec: str) -> None:
    """In a worker process: count its SQL statements (by their first words) and its CPU seconds
    from the due time on, and write them to a JSON file when the process exits."""
    from sqlalchemy import Engine, event

    due_text, out = spec.split(":", 1)
    due = float(due_text)
    kinds: Counter[str] = Counter()
    started: list[float] = []  # the process's CPU time at its first statement after the due time

    def before(conn: object, cursor: object, statement: str, params: object, context: object, many: bool) -> None:
        if time.time() < due:
            return
        if not started:
            started.append(time.process_time())
        kinds[_statement_kind(statement)] += 1

    event.listen(Engine, "before_cursor_execute", before)

    def write() -> None:
        cpu = time.process_time() - started[0] if started else 0.0
        with open(out, "w") as f:
            json.dump({"cpu": cpu, "statements": dict(kinds)}, f)

    atexit.register(write)


def _statement_kind(statement: str) -> str:
    """A statement's verb and first table (``UPDATE jobs``, ``SELECT sop_runs``…)."""
    text = " ".join(statement.split())
    verb = text.split(" ", 1)[0].upper()
    if verb == "WITH":
        match = re.search(r"\)\s*(INSERT INTO|UPDATE|DELETE FROM|SELECT .*? FROM)\s+(\w+)", text, re.I)
        return f"WITH … {match.group(1).split()[0].upper()} {match.group(2)}" if match else "WITH"
    match = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", text, re.I)
    return f"{verb} {match.group(1)}" if match else verb


if os.environ.get(PROBE_ENV):
    install_probe(os.environ[PROBE_ENV])


def ours(url: str, count: int, probes: list[str]) -> dict[str, list[float]]:
    due = next_minute(20)
    ids = make_due(url, due, count)
    env = {**os.environ, "QUNYUN_DATABASE_URL": url, "QUNYUN_ENV": "development"}
    env["QUNYUN_WORKER_IMPORTS"] = ",".join(filter(None, [env.get("QUNYUN_WORKER_IMPORTS"), "bench.bench_sop"]))
    procs = [
        subprocess.Popen(
            [*QUNYUN, "worker", "--batch", str(BATCH), "--name", f"bench-sop-{i}"],
            cwd=ROOT,
            env={**env, PROBE_ENV: f"{due.timestamp()}:{probes[i]}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(WORKERS)
    ]
    try:
        wait_for(url, ids, due, sent=True, timeout=600)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    return {"handed": lateness(url, ids, due, sent=False), "sent": lateness(url, ids, due, sent=True)}


def costs(probes: list[str]) -> tuple[float, Counter[str]]:
    """The workers' CPU seconds and statements (by kind) from the due time on, all together."""
    cpu = 0.0
    kinds: Counter[str] = Counter()
    for path in probes:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            print(f"  (no probe figures from {path}: the worker did not exit cleanly)")
            continue
        cpu += data["cpu"]
        kinds.update(data["statements"])
    return cpu, kinds


def bare(url: str, count: int) -> dict[str, list[float]]:
    due = next_minute(5)
    ids = make_due(url, due, count)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.bench_sop", "--bare-loop", url, "--until", str(due.timestamp() + 300)]
        )
        for _ in range(WORKERS)
    ]
    try:
        wait_for(url, ids, due, sent=False, timeout=300)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    return {"handed": lateness(url, ids, due, sent=False)}


def bare_loop(url: str, until: float) -> None:
    """The baseline: claim up to BATCH due planned runs with SKIP LOCKED, mark them sent, commit."""
    with psycopg.connect(url) as conn:
        while time.time() < until:
            with conn.transaction():
                now = time.time_ns() // 1000
                claimed = conn.execute(
                    "SELECT id FROM sop_runs WHERE state = 'planned' AND fire_at <= %s"
                    " ORDER BY fire_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (now, BATCH),
                ).fetchall()
                if claimed:
                    conn.execute(
                        "UPDATE sop_runs SET state = 'sent', fired_at = %s WHERE id = ANY(%s)",
                        (time.time_ns() // 1000, [r[0] for r in claimed]),
                    )
            if not claimed:
                time.sleep(0.2)


def describe(values: list[float], expected: int) -> str:
    if not values:
        return "none"
    p50 = statistics.median(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    within = sum(1 for v in values if v <= 60)
    return (
        f"{len(values):,}/{expected:,} done, p50 {p50:.1f} s, p99 {p99:.1f} s, max {values[-1]:.1f} s, "
        f"{within:,} within 60 s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=None, help="runs due in the minute (default: one per group)")
    parser.add_argument("--statements", action="store_true", help="print the workers' statements by kind")
    parser.add_argument("--bare-loop", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--until", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_loop:
        bare_loop(args.bare_loop, args.until)
        return
    url = fresh_pg(DATABASE)
    if url is None:
        print("PostgreSQL is not reachable (QUNYUN_BENCH_PG_ADMIN): nothing measured")
        return
    run_cli(["db", "upgrade"], url)
    load_before = os.getloadavg()
    org_id, plan_id, group_ids = setup(url, args.groups)
    start = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)
    made, seconds = materialize(url, org_id, plan_id, group_ids, start)
    print(f"\nmaterialization: {args.groups:,} groups × 28 days × {len(SLOTS)} slots = {made:,} runs")
    print(f"  {seconds:.1f} s, {made / seconds:,.0f} runs/s")
    count = args.due or args.groups
    probes = [str(ROOT / "var" / "bench" / f"sop-probe-{i}.json") for i in range(WORKERS)]
    os.makedirs(ROOT / "var" / "bench", exist_ok=True)
    for path in probes:
        if os.path.exists(path):
            os.remove(path)
    load_dispatch = os.getloadavg()
    figures = ours(url, count, probes)
    cpu, kinds = costs(probes)
    baseline = bare(url, count)
    print(f"\ndispatch: {count:,} runs due in one minute, {WORKERS} processes, PostgreSQL")
    print(f"  qunyun workers, handed on : {describe(figures['handed'], count)}")
    print(f"  qunyun workers, sent      : {describe(figures['sent'], count)}")
    print(f"  bare SKIP LOCKED loop     : {describe(baseline['handed'], count)}")
    print("  goal: all sent within 60 s, p99 under 30 s")
    statements = sum(kinds.values())
    print(f"  load average during dispatch (1 min): {load_dispatch[0]:.1f} at its start")
    print(
        f"  cost per run (4 worker processes, fire + perform): {statements / count:.1f} statements, "
        f"{cpu / count * 1000:.2f} ms CPU ({statements:,} statements, {cpu:.1f} s CPU in all)"
    )
    if args.statements:
        for kind, n in kinds.most_common():
            print(f"    {n / count:6.2f}/run  {kind}")
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min): {_load(load_before)} before, {_load(load_after)} after")


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.1f}" for x in load)


if __name__ == "__main__":
    main()

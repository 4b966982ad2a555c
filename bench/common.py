"""Helpers shared by the benchmarks: fresh databases, timed CLI runs, the figures file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
QUNYUN = [sys.executable, "-m", "qunyun.cli"]
PG_ADMIN = os.environ.get("QUNYUN_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_pg(name: str) -> str | None:
    """Create an empty PostgreSQL database ``name``; None when PostgreSQL is not reachable."""
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError:
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def run_cli(args: list[str], url: str, *, stdout: int | None = subprocess.DEVNULL) -> float:
    """Run ``qunyun ARGS`` against ``url``; returns wall seconds. Raises on failure."""
    env = {**os.environ, "QUNYUN_DATABASE_URL": url, "QUNYUN_ENV": "development"}
    started = time.perf_counter()
    proc = subprocess.run([*QUNYUN, *args], env=env, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"qunyun {' '.join(args)} failed: {proc.stderr.decode()[-2000:]}")
    return elapsed


def free_port() -> int:
    """A free TCP port on loopback for a server under test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def generated_sqlite(name: str, *, events: int, groups: int, members: int, days: int) -> str:
    """The URL of a SQLite database holding ``events`` generated events (bench/events_gen.py),
    imported through ``qunyun events import``; the file and the database are kept in var/bench
    and reused by later runs with the same sizes."""
    from bench.events_gen import write

    work = ROOT / "var" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"events-{events}-{groups}-{members}-{days}.jsonl"
    if not path.exists():
        write(path, events, groups=groups, members=members, days=days)
    url = f"sqlite:///{work / name}"
    if not (work / name).exists():
        run_cli(["db", "upgrade"], url)
        seconds = run_cli(["events", "import", str(path), "--quiet"], url)
        print(f"loaded {events:,} events in {seconds:.1f}s")
    return url


def bench_connection(
    url: str, platform: str, name: str, settings: dict[str, Any], secrets: dict[str, str], *, lead: bool = False
) -> tuple[int, int, int | None]:
    """A migrated database at ``url`` with an organisation "bench" and one active connection of
    ``platform`` (secrets encrypted as the product stores them); with ``lead``, a lead "lead1"
    too. Returns (organisation id, connection id, lead's staff id or None)."""
    os.environ["QUNYUN_DATABASE_URL"] = url
    os.environ.setdefault("QUNYUN_SECRET_KEY", "bench-secret-key-that-is-long-enough-0123456789")
    from qunyun.connections.secrets import encrypt
    from qunyun.db.migrate import upgrade
    from qunyun.db.session import get_engine, unit_of_work
    from qunyun.models import Connection
    from qunyun.team.service import create_organisation, create_staff
    from qunyun.timeutil import utcnow

    upgrade(get_engine())
    with unit_of_work() as s:
        org = create_organisation(s, name="bench", slug="bench")
        staff = create_staff(s, org.id, username="lead1", password="password-1", role="lead") if lead else None
        now = utcnow()
        row = Connection(
            org_id=org.id,
            platform=platform,
            name=name,
            settings=settings,
            secrets=encrypt(secrets),
            status="active",
            created_at=now,
            updated_at=now,
        )
        s.add(row)
        s.flush()
        return org.id, row.id, staff.id if staff is not None else None

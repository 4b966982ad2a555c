"""Ingest figure: `qunyun events import` of N mixed events on SQLite and PostgreSQL.

Prints events/s and the ratio to a bare ``executemany`` of the same rows into one table,
measured in the same run on the same database engine (the baseline does no validation, no
dedupe, no derived state: it is the floor cost of getting the rows into the database).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import time
from pathlib import Path

import orjson
import psycopg

from bench.common import ROOT, fresh_pg, run_cli
from bench.events_gen import write

BARE_COLUMNS = "id, ts, kind, grp, member, msg_type, text, channel, scene, reason, ord, amount"


def _rows(path: Path) -> list[tuple[object, ...]]:
    rows = []
    with path.open("rb") as f:
        for line in f:
            e = orjson.loads(line)
            rows.append(
                (
                    e["id"],
                    e["ts"],
                    e["kind"],
                    e.get("group"),
                    e.get("member"),
                    e.get("msg_type"),
                    e.get("text"),
                    e.get("channel"),
                    e.get("scene"),
                    e.get("reason"),
                    e.get("order"),
                    e.get("amount"),
                )
            )
    return rows


def bare_sqlite(rows: list[tuple[object, ...]], db: Path) -> float:
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"CREATE TABLE bare ({BARE_COLUMNS.replace(',', ' ,')} , PRIMARY KEY (id))")
    placeholders = ",".join("?" * 12)
    started = time.perf_counter()
    conn.execute("BEGIN")
    for i in range(0, len(rows), 20000):
        conn.executemany(f"INSERT INTO bare VALUES ({placeholders})", rows[i : i + 20000])
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def bare_pg(rows: list[tuple[object, ...]], url: str) -> float:
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE bare ({' text, '.join(BARE_COLUMNS.split(', '))} text, PRIMARY KEY (id))")
        conn.commit()
        placeholders = ",".join(["%s"] * 12)
        started = time.perf_counter()
        with conn.cursor() as cur:
            for i in range(0, len(rows), 20000):
                cur.executemany(f"INSERT INTO bare VALUES ({placeholders})", rows[i : i + 20000])
        conn.commit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--members", type=int, default=60_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating; medians are shown")
    args = parser.parse_args()
    work = ROOT / "var" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"events-{args.events}-{args.groups}-{args.members}-{args.days}.jsonl"
    if not path.exists():
        count = write(path, args.events, groups=args.groups, members=args.members, days=args.days)
        print(f"generated {count:,} events into {path}")
    rows = _rows(path)
    n = len(rows)
    results = []

    def sqlite_pair() -> tuple[float, float]:
        sqlite_db = work / "ingest.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{sqlite_db}"
        run_cli(["db", "upgrade"], url)
        ours = run_cli(["events", "import", str(path), "--quiet"], url)
        return n / ours, n / bare_sqlite(rows, work / "bare.db")

    def pg_pair() -> tuple[float, float] | None:
        pg = fresh_pg("qunyun_bench_ingest")
        if pg is None:
            return None
        run_cli(["db", "upgrade"], pg)
        ours = run_cli(["events", "import", str(path), "--quiet"], pg)
        return n / ours, n / bare_pg(rows, pg)

    def median_of(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
        ratios = sorted(a / b for a, b in pairs)
        return (
            statistics.median(a for a, _ in pairs),
            statistics.median(b for _, b in pairs),
            ratios[len(ratios) // 2],
        )

    results.append(("SQLite", *median_of([sqlite_pair() for _ in range(args.repeat)])))
    if not args.skip_pg:
        first = pg_pair()
        if first is None:
            print("PostgreSQL not reachable: skipped")
        else:
            pairs = [first] + [p for p in (pg_pair() for _ in range(args.repeat - 1)) if p]
            results.append(("PostgreSQL", *median_of(pairs)))

    print(f"\nIngest {n:,} mixed events ({args.groups} groups, {args.members:,} members, {args.days} days)")
    print(f"(median of {args.repeat} alternating runs each; ratio = median of the per-run ratios)")
    print(f"{'database':<12}{'qunyun import ev/s':>20}{'bare executemany ev/s':>24}{'ratio':>8}")
    for name, ours_rate, bare_rate, ratio in results:
        print(f"{name:<12}{ours_rate:>20,.0f}{bare_rate:>24,.0f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()

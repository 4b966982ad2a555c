"""Ingest figure: `qunyun events import` of N mixed events on SQLite and PostgreSQL.

Prints events/s and the ratio to the fastest bare load of the same rows into one table,
measured in the same run on the same database engine: ``executemany`` on SQLite, ``COPY`` on
PostgreSQL (the baseline does no validation, no dedupe, no derived state: it is the floor cost
of getting the rows into the database).

The stream ends now, so its messages (all carry text) fall inside the text retention window
(``QUNYUN_MESSAGE_TEXT_RETENTION_DAYS``, 30 by default; keep ``--days`` below it) and the
import stores their text, as it would for a live community.

``--baseline-source DIR`` also imports with ``qunyun`` from another checkout's ``DIR/src`` (e.g.
an earlier revision unpacked with ``git archive``), alternating with this one's, to compare
before and after a change on the same data; ``--source DIR`` replaces this checkout's.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
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
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY bare ({BARE_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def recent_start(days: int) -> datetime:
    """The start of a stream of ``days`` days that ends about now (to the hour, so a rerun within
    the hour reuses the file)."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(days=days)


def texts_stored(url: str) -> int:
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT count(*) FROM message_texts").fetchone()[0])
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM message_texts").fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--members", type=int, default=60_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating; medians are shown")
    parser.add_argument("--source", type=Path, help="run qunyun from DIR/src (another checkout)")
    parser.add_argument(
        "--baseline-source", type=Path, help="also import with qunyun from DIR/src, alternating, for before/after"
    )
    args = parser.parse_args()
    work = ROOT / "var" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    start = recent_start(args.days)
    path = work / f"events-{args.events}-{args.groups}-{args.members}-{args.days}-{start:%Y%m%d%H}.jsonl"
    if not path.exists():
        for old in work.glob(f"events-{args.events}-{args.groups}-{args.members}-{args.days}-*.jsonl"):
            old.unlink()
        count = write(path, args.events, groups=args.groups, members=args.members, days=args.days, start=start)
        print(f"generated {count:,} events into {path}")
    rows = _rows(path)
    n = len(rows)
    sources: list[tuple[str, Path | None]] = [("qunyun import", args.source)]
    if args.baseline_source:
        sources.append(("baseline import", args.baseline_source))
    texts: list[int] = []

    def ours(url: str, source: Path | None) -> float:
        """events/s of one import by qunyun from ``source`` (None: this checkout)."""
        if source is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = str(source.resolve() / "src")
        try:
            run_cli(["db", "upgrade"], url)
            seconds = run_cli(["events", "import", str(path), "--quiet"], url)
        finally:
            os.environ.pop("PYTHONPATH", None)
        texts.append(texts_stored(url))
        return n / seconds

    def sqlite_run() -> list[float]:
        rates = []
        for _, source in sources:
            sqlite_db = work / "ingest.db"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{sqlite_db}{suffix}").unlink(missing_ok=True)
            rates.append(ours(f"sqlite:///{sqlite_db}", source))
        return [*rates, n / bare_sqlite(rows, work / "bare.db")]

    def pg_run() -> list[float] | None:
        rates = []
        for _, source in sources:
            pg = fresh_pg("qunyun_bench_ingest")
            if pg is None:
                return None
            rates.append(ours(pg, source))
        assert pg is not None
        return [*rates, n / bare_pg(rows, pg)]

    results: list[tuple[str, str, float, float, float]] = []

    def summarise(database: str, runs: list[list[float]]) -> None:
        bare = statistics.median(r[-1] for r in runs)
        for k, (label, _) in enumerate(sources):
            ratios = sorted(r[k] / r[-1] for r in runs)
            results.append((database, label, statistics.median(r[k] for r in runs), bare, ratios[len(ratios) // 2]))

    summarise("SQLite", [sqlite_run() for _ in range(args.repeat)])
    if not args.skip_pg:
        pg_runs = [r for r in (pg_run() for _ in range(args.repeat)) if r is not None]
        if pg_runs:
            summarise("PostgreSQL", pg_runs)
        else:
            print("PostgreSQL not reachable: skipped")

    print(f"\nIngest {n:,} mixed events ({args.groups} groups, {args.members:,} members, {args.days} days)")
    print(f"(median of {args.repeat} alternating runs each; ratio = median of the per-run ratios;")
    print(f" message texts stored per import: {min(texts):,} to {max(texts):,})")
    print(f"{'database':<12}{'':<17}{'events/s':>10}{'bare load rows/s':>18}{'ratio':>8}   bare load")
    for database, label, rate, bare, ratio in results:
        how = "COPY" if database == "PostgreSQL" else "executemany"
        print(f"{database:<12}{label:<17}{rate:>10,.0f}{bare:>18,.0f}{ratio:>8.2f}   {how}")


if __name__ == "__main__":
    main()

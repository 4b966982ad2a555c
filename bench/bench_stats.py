"""Stats figure: `qunyun stats daily` over 90 days x 5,000 groups.

The data goes in through `qunyun events import` (the real pipeline). The baseline, measured in
the same run on the same database, is what a system without rollups would do: aggregate the
event log itself (per group and day: distinct joiners, leavers and posters).
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path

from bench.common import generated_sqlite, run_cli


def naive_from_log(db: Path) -> float:
    conn = sqlite3.connect(db)
    started = time.perf_counter()
    conn.execute(
        "SELECT group_id, day, count(DISTINCT CASE WHEN kind = 2 THEN member_id END),"
        " count(DISTINCT CASE WHEN kind = 3 THEN member_id END),"
        " count(DISTINCT CASE WHEN kind = 4 THEN member_id END)"
        " FROM events WHERE kind IN (2, 3, 4) GROUP BY group_id, day"
    ).fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=5000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--events", type=int, default=1_600_000)
    parser.add_argument("--members", type=int, default=200_000)
    args = parser.parse_args()
    url = generated_sqlite(
        f"stats-{args.groups}-{args.days}.db",
        events=args.events,
        groups=args.groups,
        members=args.members,
        days=args.days,
    )
    db = Path(url.removeprefix("sqlite:///"))
    work = db.parent
    first, last = "2026-01-05", "2026-04-04"  # 90 days from the generator's start
    total = run_cli(["stats", "daily", "--from", first, "--to", last, "--format", "json"], url)
    out = work / "per-group.json"
    with out.open("wb") as f:
        per_group = run_cli(
            ["stats", "daily", "--from", first, "--to", last, "--per-group", "--format", "json"],
            url,
            stdout=f.fileno(),
        )
    rows = out.read_bytes().count(b'"date"')
    weekly = run_cli(["stats", "weekly", "--from", first, "--to", last, "--per-group", "--format", "json"], url)
    startup = run_cli(["--help"], url)
    naive = naive_from_log(db)
    print(f"\nStats over {args.days} days x {args.groups:,} groups (SQLite, wall time of the command)")
    print(f"  qunyun --help (interpreter start-up)          {startup:6.2f} s")
    print(f"  stats daily, all-groups rows                   {total:6.2f} s")
    print(f"  stats daily --per-group ({rows:,} rows)      {per_group:6.2f} s")
    print(f"  stats weekly --per-group                       {weekly:6.2f} s")
    print(f"  baseline: aggregate the event log (no rollups) {naive:6.2f} s")
    print(f"  ratio per-group daily / baseline               {per_group / naive:6.2f}")


if __name__ == "__main__":
    main()

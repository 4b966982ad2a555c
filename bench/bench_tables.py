"""Console tables figure: the member and group lists sorted by a header click (names in pinyin
order, through SQLite's Python collation or PostgreSQL's ICU) against the default order, on the
demo community, one client in process.

The baseline, measured in the same run on the same database, is the member list in its default
order (newest first), so each ratio is what a sort adds to a page.

    .venv/bin/python -m bench.bench_tables --members 20000 [--pg]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

PASSWORD = "bench-tables-password"
PAGES = [
    ("/members", "members, default (newest first) — baseline"),
    ("/members?sort=name", "members by name (pinyin)"),
    ("/members?sort=name&page=40", "members by name, page 40"),
    ("/members?sort=region", "members by home region (pinyin)"),
    ("/members?sort=age", "members by age"),
    ("/groups", "groups by name (pinyin), default"),
    ("/groups?sort=members", "groups by members"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--pg", action="store_true", help="on PostgreSQL (a fresh qunyun_bench_tables)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.pg:
            from bench.common import fresh_pg

            url = fresh_pg("qunyun_bench_tables")
            if url is None:
                raise SystemExit("PostgreSQL is not reachable")
        else:
            url = f"sqlite:///{Path(tmp) / 'tables.db'}"
        os.environ["QUNYUN_DATABASE_URL"] = url
        run(args.members, args.repeat, url)


def run(members: int, repeat: int, url: str) -> None:
    from fastapi.testclient import TestClient

    from qunyun.api.app import create_app
    from qunyun.db.migrate import upgrade
    from qunyun.db.session import get_engine
    from qunyun.simulate.demo import load_demo

    upgrade(get_engine())
    started = time.perf_counter()
    demo = load_demo(password=PASSWORD, members=members)
    print(f"demo ({members} members) loaded in {time.perf_counter() - started:.1f} s on {url.split(':')[0]}")
    with TestClient(create_app()) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        client.post("/login", data={"username": demo.lead_username, "password": PASSWORD, "csrf_token": token[1]})
        medians: dict[str, float] = {}
        for path, _ in PAGES:
            assert client.get(path).status_code == 200, path  # warm-up (and the pinyin key cache)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                response = client.get(path)
                times.append(time.perf_counter() - t0)
                assert response.status_code == 200, path
            medians[path] = statistics.median(times)
    base = medians[PAGES[0][0]]
    print(f"{'page':<48} {'median ms':>10} {'ratio':>7}")
    for path, label in PAGES:
        print(f"{label:<48} {medians[path] * 1000:>10.1f} {medians[path] / base:>6.2f}x")


if __name__ == "__main__":
    main()

"""Console figure: p95 latency of the overview, group list and group detail pages on the demo
community, under a bounded loopback load (a few concurrent clients, one server process).

The server is `qunyun serve` in its own process, as `make run` starts it. The baseline, measured
under the same load in the same run, is `/healthz` (one trivial query through the same stack),
so the ratio shows what the pages add over the framework and the database round trip.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import QUNYUN, ROOT

PASSWORD = "bench-console-password"


def load(db: Path, members: int | None) -> tuple[str, int]:
    """Load the demo into ``db`` (in this process); returns the lead's username and a group id."""
    os.environ["QUNYUN_DATABASE_URL"] = f"sqlite:///{db}"
    from qunyun.db.migrate import upgrade
    from qunyun.db.session import get_engine
    from qunyun.simulate.demo import load_demo

    upgrade(get_engine())
    started = time.perf_counter()
    demo = load_demo(password=PASSWORD, members=members)
    print(f"demo loaded in {time.perf_counter() - started:.1f} s", flush=True)
    from sqlalchemy import text

    with get_engine().connect() as conn:
        group_id = conn.execute(text("SELECT id FROM groups ORDER BY member_count DESC LIMIT 1")).scalar_one()
    get_engine().dispose()
    return demo.lead_username, int(group_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def login(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)})
    assert client.cookies.get("qunyun_session"), "login failed"
    return client


def measure(clients: list[httpx.Client], path: str, requests: int) -> list[float]:
    """``requests`` GETs of ``path`` spread over the clients running concurrently; ms each."""

    def run(client: httpx.Client, n: int) -> list[float]:
        out = []
        for _ in range(n):
            started = time.perf_counter()
            response = client.get(path)
            out.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        return out

    share = requests // len(clients)
    with ThreadPoolExecutor(len(clients)) as pool:
        parts = pool.map(run, clients, [share] * len(clients))
    return [ms for part in parts for ms in part]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=None, help="demo size (default: the demo's)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=200, help="per page")
    args = parser.parse_args()
    work = ROOT / "var" / "bench" / "console"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "console.db"
    lead, group_id = load(db, args.members)

    port = _free_port()
    env = {**os.environ, "QUNYUN_DATABASE_URL": f"sqlite:///{db}", "QUNYUN_VAR_DIR": str(work)}
    env["QUNYUN_ENV"] = "development"
    server = subprocess.Popen(
        [*QUNYUN, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        pages = {"overview": "/", "group list": "/groups", "group detail": f"/groups/{group_id}"}
        all_clients = [login(base, lead) for _ in range(max(args.concurrency))]
        for path in [*pages.values(), "/healthz"]:
            measure(all_clients, path, len(all_clients) * 3)  # warm up
        for concurrency in args.concurrency:
            clients = all_clients[:concurrency]
            baseline = measure(clients, "/healthz", args.requests)
            print(f"\n{concurrency} concurrent client(s), {args.requests} requests per page, one server process")
            print(f"{'page':<14} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p95/baseline':>13}")
            base_p95 = p95(baseline)
            for name, path in pages.items():
                values = measure(clients, path, args.requests)
                print(
                    f"{name:<14} {statistics.median(values):>8.1f} {p95(values):>8.1f} {max(values):>8.1f}"
                    f" {p95(values) / base_p95:>13.1f}"
                )
            print(
                f"{'baseline':<14} {statistics.median(baseline):>8.1f} {base_p95:>8.1f} {max(baseline):>8.1f}"
                f" {'1.0':>13}  (/healthz)"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

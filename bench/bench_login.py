"""Login-lock figure: latency of single-event posts by a lead while failed logins run in loops.

Against a real `qunyun serve` process on SQLite over loopback. Phase 1 (the baseline) measures
posts of one event each by a lead with a bearer token, alone. Phase 2 repeats them while
``--loops`` threads send failed logins back to back, every one with a fresh unknown username and,
through the trusted loopback proxy, a fresh X-Forwarded-For address, so that no throttle limit
stops them and each attempt runs its argon2 check and writes its failure record (the worst case
for the database). The server's RSS is sampled throughout.

``--server-src DIR`` runs the server from another checkout (e.g. a worktree of an older commit)
to compare; the database is prepared by this checkout's migrations.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import QUNYUN, ROOT, free_port, rss_mb

PASSWORD = "bench-login-password"


def prepare(db: Path) -> None:
    """A migrated database with one organisation and its lead."""
    os.environ["QUNYUN_DATABASE_URL"] = f"sqlite:///{db}"
    from qunyun.db.migrate import upgrade
    from qunyun.db.session import get_engine, unit_of_work
    from qunyun.team.service import create_staff, ensure_organisation

    upgrade(get_engine())
    with unit_of_work() as s:
        org_id = ensure_organisation(s, "bench", name="Bench 社群")
        create_staff(s, org_id, username="lead", password=PASSWORD, role="lead")
    get_engine().dispose()


class Posts:
    """Single-event posts by the lead; latency in ms and status counts."""

    def __init__(self, base: str, token: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {token}"})
        self.ids = itertools.count()

    def run(self, n: int) -> tuple[list[float], Counter[int]]:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        for _ in range(n):
            i = next(self.ids)
            event = {
                "id": f"bench-{i}",
                "ts": datetime.now(UTC).isoformat(),
                "kind": "member.joined",
                "group": "bench-group",
                "member": f"bench-member-{i}",
            }
            started = time.perf_counter()
            response = self.client.post("/api/v1/events", json=[event])
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[response.status_code] += 1
        return latencies, statuses


def failed_login_loop(base: str, loop: int, stop: threading.Event, statuses: Counter[int]) -> None:
    with httpx.Client(base_url=base, timeout=120) as client:
        for n in itertools.count():
            if stop.is_set():
                return
            forwarded = f"10.{loop}.{(n >> 8) & 255}.{n & 255}"
            response = client.post(
                "/api/v1/auth/tokens",
                json={"username": f"guess-{loop}-{n}", "password": "not the password"},
                headers={"X-Forwarded-For": forwarded},
            )
            statuses[response.status_code] += 1


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def row(name: str, values: list[float], statuses: Counter[int], baseline: float) -> str:
    med = statistics.median(values)
    codes = " ".join(f"{code}×{count}" for code, count in sorted(statuses.items()))
    mean = statistics.fmean(values)
    return f"{name:<28} {med:>9.1f} {mean:>9.1f} {p99(values):>9.1f} {med / baseline:>8.1f}  {codes}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=500, help="event posts per phase")
    parser.add_argument("--loops", type=int, default=4, help="concurrent failed-login loops")
    parser.add_argument("--server-src", type=Path, default=None, help="run the server from this checkout")
    args = parser.parse_args()
    work = ROOT / "var" / "bench" / "login"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "login.db"
    prepare(db)

    port = free_port()
    env = {**os.environ, "QUNYUN_DATABASE_URL": f"sqlite:///{db}", "QUNYUN_VAR_DIR": str(work)}
    env["QUNYUN_ENV"] = "development"
    # The loops stand for many clients behind a proxy on loopback (fresh address per attempt).
    env["QUNYUN_TRUSTED_PROXIES"] = "127.0.0.1"
    cwd = ROOT
    if args.server_src is not None:
        env["PYTHONPATH"] = str(args.server_src.resolve() / "src")
        cwd = args.server_src.resolve()
    server = subprocess.Popen(
        [*QUNYUN, "serve", "--host", "127.0.0.1", "--port", str(port), "--job-threads", "0"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        login = httpx.post(f"{base}/api/v1/auth/tokens", json={"username": "lead", "password": PASSWORD})
        assert login.status_code == 201, login.text
        posts = Posts(base, login.json()["token"])
        posts.run(20)  # warm up
        baseline, base_statuses = posts.run(args.posts)
        rss_idle = rss_mb(server.pid)

        login_statuses: Counter[int] = Counter()
        loops = [
            threading.Thread(target=failed_login_loop, args=(base, i, stop, login_statuses), daemon=True)
            for i in range(args.loops)
        ]
        for thread in loops:
            thread.start()
        rss_peak = rss_idle

        def sample() -> None:
            nonlocal rss_peak
            while not stop.is_set():
                rss_peak = max(rss_peak, rss_mb(server.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        while sum(login_statuses.values()) < args.loops:  # the loops are up and running
            time.sleep(0.05)
        started = time.perf_counter()
        loaded, load_statuses = posts.run(args.posts)
        elapsed = time.perf_counter() - started
        stop.set()
        for thread in [*loops, sampler]:
            thread.join()

        base_median = statistics.median(baseline)
        print(f"\nsingle-event posts by a lead, {args.posts} per phase, one `qunyun serve` process, SQLite")
        print(f"{'phase':<28} {'p50 ms':>9} {'mean ms':>9} {'p99 ms':>9} {'p50/base':>8}  statuses")
        print(row("alone (baseline)", baseline, base_statuses, base_median))
        print(row(f"with {args.loops} failed-login loops", loaded, load_statuses, base_median))
        attempts = sum(login_statuses.values())
        codes = " ".join(f"{code}×{count}" for code, count in sorted(login_statuses.items()))
        print(f"failed logins meanwhile: {attempts} in {elapsed:.1f} s ({attempts / elapsed:.0f}/s): {codes}")
        print(f"server RSS: {rss_idle:.0f} MB after the baseline, {rss_peak:.0f} MB peak under load")
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

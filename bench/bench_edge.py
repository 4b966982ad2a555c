"""The server's edge under abuse and load, against a real `qunyun serve` process on loopback.

(a) body size: unauthenticated 16 MB and 100 MB posts to /api/v1/events and /api/v1/groups;
    time to the 401/413 and the server's RSS, against one small authorized post (the baseline).
(b) burst: ``--clients`` concurrent clients for ``--seconds`` on the console overview (a logged-in
    session) and on POST /api/v1/events, on SQLite and (when reachable) PostgreSQL: status codes
    (no 500 allowed), p50/p99 latency, /healthz latency during the burst, and the time until the
    server answers normally after the burst; baseline = the same request at concurrency 1.

    .venv/bin/python -m bench.bench_edge --seconds 60 --clients 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import ssl
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from bench.common import QUNYUN, ROOT, free_port, fresh_pg, rss_mb

PASSWORD = "bench-edge-password"


def prepare(url: str) -> None:
    """A migrated database with one organisation, its lead and one group."""
    env = {**os.environ, "QUNYUN_DATABASE_URL": url}
    code = (
        "from qunyun.db.migrate import upgrade\n"
        "from qunyun.db.session import get_engine, unit_of_work\n"
        "from qunyun.team.service import create_staff, ensure_organisation\n"
        "upgrade(get_engine())\n"
        "with unit_of_work() as s:\n"
        "    org_id = ensure_organisation(s, 'bench', name='Bench 社群')\n"
        f"    create_staff(s, org_id, username='lead', password={PASSWORD!r}, role='lead')\n"
    )
    subprocess.run([QUNYUN[0], "-c", code], env=env, check=True, cwd=ROOT)


class Server:
    def __init__(self, url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "QUNYUN_DATABASE_URL": url, "QUNYUN_ENV": "development"}
        self.proc = subprocess.Popen(
            [*QUNYUN, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--job-threads", "0"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def api_token(base: str) -> str:
    r = httpx.post(base + "/api/v1/auth/tokens", json={"username": "lead", "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    return str(r.json()["token"])


def console_cookie(base: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as c:
        page = c.get("/login")
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match
        c.post("/login", data={"username": "lead", "password": PASSWORD, "csrf_token": match.group(1)})
        return str(c.cookies["qunyun_session"])


def event_body(n: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"edge-{n}-{time.monotonic_ns()}",
            "ts": "2026-03-05T10:00:00+08:00",
            "kind": "message.posted",
            "group": "bench-g1",
            "member": f"bench-m{n % 500}",
            "msg_type": "text",
        }
    ]


# -- (a) body size -------------------------------------------------------------------------------


def body_size(server: Server, token: str) -> None:
    print("\n(a) bodies, SQLite; RSS of the server process")
    started = time.perf_counter()
    r = httpx.post(
        server.base + "/api/v1/events", json=event_body(0), headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    baseline = time.perf_counter() - started
    print(
        f"  baseline: small authorized post  {r.status_code}  {baseline * 1000:7.1f} ms  "
        f"RSS {rss_mb(server.proc.pid):.0f} MB"
    )
    for path in ("/api/v1/events", "/api/v1/groups"):
        for size in (16 * 1024 * 1024, 100 * 1024 * 1024):
            body = b"{}\n" * (size // 3)
            for chunked in (False, True):
                content: bytes | object = (
                    body if not chunked else (body[i : i + 65536] for i in range(0, len(body), 65536))
                )
                started = time.perf_counter()
                try:
                    r = httpx.post(
                        server.base + path,
                        content=content,  # type: ignore[arg-type]
                        headers={"Content-Type": "application/x-ndjson"},
                        timeout=120,
                    )
                    status = str(r.status_code)
                except httpx.HTTPError as exc:  # the server may close the connection mid-upload
                    status = type(exc).__name__
                elapsed = time.perf_counter() - started
                mode = "chunked" if chunked else "length "
                print(
                    f"  anonymous {size // (1024 * 1024):3d} MB {mode} {path:16s} {status:>5}  "
                    f"{elapsed * 1000:7.1f} ms ({elapsed / baseline:5.1f}x)  RSS {rss_mb(server.proc.pid):.0f} MB"
                )


# -- (b) burst -----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one(client: httpx.AsyncClient, kind: str, n: int) -> httpx.Response:
    if kind == "overview":
        return await client.get("/")
    return await client.post("/api/v1/events", json=event_body(n))


async def burst(
    base: str, kind: str, headers: dict[str, str], cookies: dict[str, str], clients: int, seconds: float
) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers, cookies=cookies, timeout=120) as c:
        # Baseline: the same request at concurrency 1.
        base_lat = []
        for i in range(20):
            t = time.perf_counter()
            await one(c, kind, i)
            base_lat.append(time.perf_counter() - t)
        baseline = statistics.median(base_lat)
        statuses: Counter[str] = Counter()
        latencies: list[float] = []
        health: list[float] = []

        # One client (one connection) per simulated user, as real users are: a single shared
        # client with 1,000 connections spends the load generator's CPU managing its own pool
        # (seen as most of one core), which then shows up as server latency.
        tls = ssl.create_default_context()  # made once: each client would load the CA bundle
        own = [
            httpx.AsyncClient(base_url=base, headers=headers, cookies=cookies, timeout=120, verify=tls)
            for _ in range(clients)
        ]
        stop_at = time.monotonic() + seconds

        async def worker(w: int) -> None:
            n = w * 1_000_000
            while time.monotonic() < stop_at:
                n += 1
                t = time.perf_counter()
                retry_after = 0.0
                try:
                    response = await one(own[w], kind, n)
                    statuses[str(response.status_code)] += 1
                    if response.status_code == 503:
                        retry_after = float(response.headers.get("retry-after", "1"))
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t)
                if retry_after:
                    # A well-behaved client (or a person) comes back after Retry-After.
                    await asyncio.sleep(min(retry_after, max(0.0, stop_at - time.monotonic())))

        async def prober() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=60) as h:
                while time.monotonic() < stop_at:
                    t = time.perf_counter()
                    try:
                        await h.get("/healthz")
                        health.append(time.perf_counter() - t)
                    except httpx.HTTPError:
                        health.append(float("inf"))
                    await asyncio.sleep(0.25)

        tasks = [asyncio.create_task(worker(w)) for w in range(clients)]
        probe = asyncio.create_task(prober())
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()  # in-flight requests are abandoned, as impatient clients do
        await asyncio.gather(*tasks, return_exceptions=True)
        await probe
        await asyncio.gather(*(client.aclose() for client in own))
    ended = time.perf_counter()
    # Recovery: a fresh client, the same request, until it is served normally (200).
    async with httpx.AsyncClient(base_url=base, headers=headers, cookies=cookies, timeout=60) as fresh:
        while True:
            try:
                if (await one(fresh, kind, 0)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    recovery = time.perf_counter() - ended
    total = sum(statuses.values())
    codes = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
    print(
        f"  {kind:9s} {clients} clients {seconds:.0f}s: {total} answers ({total / seconds:.0f}/s)  [{codes}]\n"
        f"      p50 {pct(latencies, 0.5) * 1000:8.1f} ms  p99 {pct(latencies, 0.99) * 1000:8.1f} ms  "
        f"baseline {baseline * 1000:6.1f} ms (p50 {pct(latencies, 0.5) / baseline:6.1f}x)\n"
        f"      /healthz during burst: p50 {pct(health, 0.5) * 1000:.1f} ms, "
        f"max {max(health, default=0) * 1000:.1f} ms; "
        f"normal answer {recovery:.2f} s after the burst; 500s: {statuses.get('500', 0)}"
    )


def load(url: str, label: str, clients: int, seconds: float) -> None:
    prepare(url)
    server = Server(url)
    try:
        token = api_token(server.base)
        cookie = console_cookie(server.base)
        if label == "SQLite":
            body_size(server, token)
        print(f"\n(b) burst, {label}")
        asyncio.run(burst(server.base, "overview", {}, {"qunyun_session": cookie}, clients, seconds))
        asyncio.run(burst(server.base, "events", {"Authorization": f"Bearer {token}"}, {}, clients, seconds))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        load(f"sqlite:///{Path(tmp) / 'edge.db'}", "SQLite", args.clients, args.seconds)
    if not args.no_pg:
        url = fresh_pg("qunyun_e1_bench")
        if url is None:
            print("\nPostgreSQL not reachable: skipped")
        else:
            load(url, "PostgreSQL", args.clients, args.seconds)


if __name__ == "__main__":
    main()

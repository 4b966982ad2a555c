"""Live code scans: throughput and p50/p99 of ``GET /c/{code}`` at 200 concurrent loopback
clients, on SQLite and PostgreSQL, against a bare Starlette app answering the same redirect in the
same run (``bench/bare_scan.py``).

    python -m bench.bench_scan [--seconds 10] [--rounds 3] [--clients 200] [--rate 500] [--workers 1]
                               [--no-pg] [--no-sqlite]

Every request is a first-time scan (the clients keep no cookie): the full path of a scan — the
cached pool, the group's counter moved by the conditional UPDATE, the scan and the visitor
inserted, the commit — answered with a 302 to the group's invite link. The pool's three groups
have links (as the connector makes them on the simulator and Telegram) and limits too high to
fill during the run. Each client is one keep-alive connection sending one request after another;
a small asyncio client with hand-written HTTP/1.1 keeps the load generator's own cost low.

The servers are ``qunyun serve --workers N --job-threads 0`` and ``uvicorn bench.bare_scan:app
--workers N`` with the same options (log level info, access log on, as ``qunyun serve``), started
in turn ``--rounds`` times. Each round measures back to back (requests per second, and the
server's CPU time per request from /proc) and then at ``--rate`` requests per second in all
(p50/p99 latency, counted from when each request was due: with 200 clients back to back latency
is only 200 / throughput). The medians of the rounds are compared.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import QUNYUN, ROOT, free_port, fresh_pg, run_cli

LINK = "https://t.me/+bench-group-link"
UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.47 NetType/WIFI"


def arrange(url: str) -> str:
    """An organisation, three groups with invite links and a live code over them; its code."""
    from sqlalchemy import update
    from sqlalchemy.orm import sessionmaker

    from qunyun.auth.scope import Scope
    from qunyun.db.session import make_engine, unit_of_work
    from qunyun.livecodes import service
    from qunyun.livecodes.schemas import LiveCodeCreate
    from qunyun.models import Group, LiveCodeGroup, Role
    from qunyun.team.service import create_organisation
    from qunyun.timeutil import utcnow

    engine = make_engine(url)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with unit_of_work(factory) as s:
        org = create_organisation(s, name="Bench", slug="bench")
        groups = []
        for i in range(3):
            group = Group(
                org_id=org.id,
                platform="api",
                external_id=f"bench-{i}",
                name=f"扫码群{i}",
                capacity=500,
                member_count=0,
                status="active",
                created_at=utcnow(),
            )
            s.add(group)
            s.flush()
            groups.append(group.id)
        scope = Scope(staff_id=0, org_id=org.id, role=Role.LEAD)
        row = service.create_live_code(s, scope, LiveCodeCreate(name="bench", group_ids=groups))
        # As if the connector had made a link per group; limits no run can fill.
        s.execute(
            update(LiveCodeGroup)
            .where(LiveCodeGroup.live_code_id == row.id)
            .values(invite_link=LINK, scan_limit=2_000_000_000)
        )
        code = row.code
    engine.dispose()
    return code


class Server:
    def __init__(self, url: str, workers: int, *, bare: bool) -> None:
        self.port = free_port()
        env = {**os.environ, "QUNYUN_DATABASE_URL": url, "QUNYUN_ENV": "development"}
        if bare:
            command = [sys.executable, "-m", "uvicorn", "bench.bare_scan:app", "--port", str(self.port),
                       "--workers", str(workers), "--log-level", "info"]  # fmt: skip
        else:
            command = [*QUNYUN, "serve", "--port", str(self.port), "--workers", str(workers), "--job-threads", "0"]
        self.proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300  # a loaded 2-core machine starts it slowly
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    time.sleep(0.5 * workers)  # the other processes come up too
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server and its processes (Linux /proc)."""
        tick = os.sysconf("SC_CLK_TCK")
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _client(
    port: int,
    path: str,
    until: float,
    measure_from: float,
    out: list[float],
    errors: list[str],
    interval: float | None = None,
    phase: float = 0.0,
) -> None:
    """One keep-alive connection sending ``GET path`` until ``until``: back to back, or with
    ``interval`` one request every ``interval`` seconds from ``phase`` on (latency then counts
    from when the request was due, so a slow answer also delays the next ones' figures)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {UA}\r\n\r\n".encode()
    due = time.perf_counter() + phase
    try:
        while True:
            if interval is not None:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = due
                due += interval
            else:
                started = time.perf_counter()
            if started >= until:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if status != b"302":
                errors.append(status.decode())
            if started >= measure_from:
                out.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _load(
    port: int, path: str, clients: int, seconds: float, warmup: float, rate: float | None
) -> tuple[list[float], list[str]]:
    now = time.perf_counter()
    measure_from, until = now + warmup, now + warmup + seconds
    times: list[float] = []
    errors: list[str] = []
    interval = clients / rate if rate else None
    await asyncio.gather(
        *(
            _client(port, path, until, measure_from, times, errors, interval, (interval or 0) * i / clients)
            for i in range(clients)
        )
    )
    return times, errors


def measure(
    port: int, path: str, clients: int, seconds: float, *, rate: float | None = None, warmup: float = 2.0
) -> dict[str, float]:
    """Requests per second (back to back) or latency at ``rate`` requests per second in all."""
    import uvloop  # uvicorn's loop: the load generator's own cost stays low

    times, errors = uvloop.run(_load(port, path, clients, seconds, warmup, rate))
    times.sort()
    return {
        "rps": len(times) / seconds,
        "p50": times[len(times) // 2] * 1000,
        "p99": times[int(len(times) * 0.99)] * 1000,
        "errors": len(errors),
    }


def scans_stored(url: str) -> int:
    from sqlalchemy import func, select

    from qunyun.db.session import make_engine
    from qunyun.models import LiveCodeScan

    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(LiveCodeScan)).scalar_one()
    engine.dispose()
    return int(n)


def run(label: str, url: str, args: argparse.Namespace) -> None:
    run_cli(["db", "upgrade"], url)
    code = arrange(url)
    path = f"/c/{code}"
    rounds: dict[str, list[dict[str, float]]] = {"bare": [], "qunyun": []}
    latency: dict[str, list[dict[str, float]]] = {"bare": [], "qunyun": []}
    for _ in range(args.rounds):  # alternated, so that the machine's mood is shared
        for name, bare in (("bare", True), ("qunyun", False)):
            server = Server(url, args.workers, bare=bare)
            try:
                cpu = server.cpu_seconds()
                result = measure(server.port, path, args.clients, args.seconds, warmup=0.0)
                result["cpu_ms"] = (server.cpu_seconds() - cpu) * 1000 / max(result["rps"] * args.seconds, 1)
                rounds[name].append(result)
                latency[name].append(measure(server.port, path, args.clients, args.seconds, rate=args.rate))
            finally:
                server.stop()
    stored = scans_stored(url)
    print(
        f"\n{label}: {args.clients} clients, {args.workers} server process(es), "
        f"{args.rounds} rounds of {args.seconds:.0f} s"
    )
    print(
        f"round  server   req/s (back to back)  p50 ms  p99 ms  CPU ms/req  |  at {args.rate:.0f} req/s: p50 ms  p99 ms"
    )
    for i in range(args.rounds):
        for name in ("bare", "qunyun"):
            r, lat = rounds[name][i], latency[name][i]
            bad = int(r["errors"] + lat["errors"])
            print(
                f"{i + 1:>5}  {name:<7} {r['rps']:>10.0f}           {r['p50']:>6.1f}  {r['p99']:>6.1f}  "
                f"{r['cpu_ms']:>10.2f}  |"
                f"                {lat['p50']:>6.1f}  {lat['p99']:>6.1f}" + (f"  ({bad} not 302)" if bad else "")
            )
    med = {n: statistics.median(x["rps"] for x in rounds[n]) for n in rounds}
    lat99 = {n: statistics.median(x["p99"] for x in latency[n]) for n in latency}
    lat50 = {n: statistics.median(x["p50"] for x in latency[n]) for n in latency}
    cpu = {n: statistics.median(x["cpu_ms"] for x in rounds[n]) for n in rounds}
    print(
        f"median: bare {med['bare']:.0f} req/s, qunyun {med['qunyun']:.0f} req/s, "
        f"ratio {med['qunyun'] / med['bare']:.2f}; "
        f"at {args.rate:.0f} req/s p50/p99 bare {lat50['bare']:.1f}/{lat99['bare']:.1f} ms, "
        f"qunyun {lat50['qunyun']:.1f}/{lat99['qunyun']:.1f} ms; server CPU per request bare {cpu['bare']:.2f} ms, "
        f"qunyun {cpu['qunyun']:.2f} ms (ratio {cpu['bare'] / cpu['qunyun']:.2f}); scans stored {stored:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second in all, for the latency")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.no_sqlite:
        work = ROOT / "var" / "bench"
        work.mkdir(parents=True, exist_ok=True)
        db = work / "scan.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        run("SQLite", f"sqlite:///{db}", args)
    if not args.no_pg:
        url = fresh_pg("qunyun_bench_scan")
        if url is None:
            print("PostgreSQL not reachable: skipped")
        else:
            run("PostgreSQL", url, args)


if __name__ == "__main__":
    main()

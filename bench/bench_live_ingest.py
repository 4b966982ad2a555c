"""Live ingest figure: one message per ``POST /api/v1/events``, on PostgreSQL, at 1 k and 1 M events.

A real ``qunyun serve`` (``--workers`` server processes, no job threads) and an integration
token (``qunyun org add-integration``). Two organisations in one database: one holding about
1,000 events, one holding about 1,000,000 (filled by ``qunyun events import``, the fast import
path: COPY into the log, rollups once per import). Both streams end now, so the posts land on a
day that has facts already: the case that used to recount the day.

Per organisation, each post is one ``message.posted`` of a member in a group they belong to
(sampled from the stored memberships), with text, timestamped now:

- latency: one client posting one after another (p50 / p99 of the whole request, client side);
- throughput: ``--clients`` clients posting for ``--seconds`` seconds, each on its own
  keep-alive connection: stored messages per second for the organisation, and the CPU each
  post cost the server's processes, the database's backends and the clients (from /proc), with
  the posts per commit: figures that move far less with the machine's load than posts per second.

Baseline, in the same run on the same data: the same posts against the same server code with
the rollup update of revision ``--baseline-rev`` (the recount of the day's distinct members
on every ingest, before incremental live counts), i.e. this checkout's ``src`` with only
``src/qunyun/ingestion/rollups.py`` taken from that revision. It runs last: the old code does
not keep ``org_day_members``.

    .venv/bin/python -m bench.bench_live_ingest            # ~4 minutes, most of it the 1 M fill
    .venv/bin/python -m bench.bench_live_ingest --profile  # also py-spy of the server (needs py-spy)
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg

from bench.common import PG_ADMIN, QUNYUN, ROOT, free_port, fresh_pg, run_cli
from bench.events_gen import write

WORK = ROOT / "var" / "bench"
# The commit whose rollups.py is the rollup update before incremental live counts (moved there
# verbatim from Ingestor._update_rollups).
BASELINE_REV = "8dcf812"


def stream_file(events: int, groups: int, members: int, days: int) -> Path:
    """Generated events ending about now (to the hour, so a rerun within the hour reuses it)."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    path = WORK / f"live-{events}-{groups}-{members}-{days}-{start:%Y%m%d%H}.jsonl"
    if not path.exists():
        for old in WORK.glob(f"live-{events}-{groups}-{members}-{days}-*.jsonl"):
            old.unlink()
        write(path, events, groups=groups, members=members, days=days, start=start)
    return path


def qunyun(args: list[str], url: str) -> str:
    env = {**os.environ, "QUNYUN_DATABASE_URL": url, "QUNYUN_ENV": "development"}
    done = subprocess.run([*QUNYUN, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def fill(url: str, slug: str, path: Path) -> tuple[str, list[tuple[str, str]]]:
    """Organisation ``slug`` holding the events of ``path``; its integration token and a sample
    of (group, member) external ids of current memberships."""
    qunyun(["org", "create", slug], url)
    seconds = run_cli(["events", "import", str(path), "--org", slug, "--quiet"], url)
    with psycopg.connect(url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM events e JOIN organisations o ON o.id = e.org_id WHERE o.slug = %s", (slug,)
        ).fetchone()
    stored = count[0] if count else 0
    print(f"{slug}: {stored:,} events imported in {seconds:.1f}s ({stored / seconds:,.0f} events/s)", flush=True)
    return poster(url, slug)


def poster(url: str, slug: str) -> tuple[str, list[tuple[str, str]]]:
    """A new integration token of organisation ``slug`` and a sample of (group, member) external
    ids of its current memberships."""
    with psycopg.connect(url) as conn:
        pairs = conn.execute(
            "SELECT g.external_id, m.external_id FROM membership_spans s JOIN groups g ON g.id = s.group_id"
            " JOIN members m ON m.id = s.member_id JOIN organisations o ON o.id = s.org_id"
            " WHERE o.slug = %s AND s.left_at IS NULL ORDER BY s.member_id LIMIT 5000",
            (slug,),
        ).fetchall()
    token = qunyun(["org", "add-integration", slug, f"bench-live-{time.time_ns()}"], url).splitlines()[-1]
    return token, [(g, m) for g, m in pairs]


def seed_history(url: str, slug: str, events: int) -> None:
    """Add ``events`` historic messages to organisation ``slug`` straight into the log with COPY
    (not through the API: filling 1 M events through ``qunyun events import`` takes many minutes on
    a loaded machine), then recount its rollups from the log (``qunyun stats rebuild``), so the
    rollup tables hold what ~1 M events make of them. Each message is one of a current member in
    their group (from the stored memberships), at a random instant of the last 28 days, with text."""
    from zoneinfo import ZoneInfo

    from qunyun.models.event import EventKind, MsgType

    message, text_type = int(EventKind.MESSAGE_POSTED), int(MsgType.TEXT)
    started = time.perf_counter()
    rng = random.Random(11)
    with psycopg.connect(url) as conn:
        org_id, zone = conn.execute("SELECT id, time_zone FROM organisations WHERE slug = %s", (slug,)).fetchone()
        pairs = conn.execute(
            "SELECT group_id, member_id FROM membership_spans WHERE org_id = %s AND left_at IS NULL", (org_id,)
        ).fetchall()
        tz = ZoneInfo(zone)
        now = int(time.time() * 1_000_000)
        span = 28 * 86_400_000_000
        day_of: dict[int, int] = {}  # hour (µs // 3.6e9) → YYYYMMDD in the organisation's zone
        with conn.cursor() as cur:
            with cur.copy(
                "COPY events (org_id, external_id, kind, ts, day, group_id, member_id, msg_type, length, source)"
                " FROM STDIN"
            ) as copy:
                for i in range(events):
                    ts = now - 3_600_000_000 - rng.randrange(span)
                    hour = ts // 3_600_000_000
                    day = day_of.get(hour)
                    if day is None:
                        local = datetime.fromtimestamp(hour * 3600, UTC).astimezone(tz)
                        day = day_of[hour] = local.year * 10000 + local.month * 100 + local.day
                    group_id, member_id = pairs[int(len(pairs) * rng.random() ** 2)]  # a few post most
                    copy.write_row(
                        (org_id, f"seed-{i}", message, ts, day, group_id, member_id, text_type, 20, "import")
                    )
            cur.execute(
                "INSERT INTO message_texts (event_id, ts, text) SELECT id, ts, 'history message text'"
                " FROM events WHERE org_id = %s AND external_id LIKE 'seed-%%'",
                (org_id,),
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")
    copied = time.perf_counter() - started
    seconds = run_cli(["stats", "rebuild", "--org", slug], url)
    print(
        f"{slug}: {events:,} historic messages copied in {copied:.1f}s, rollups recounted in {seconds:.1f}s", flush=True
    )


def baseline_source(rev: str, source: Path | None) -> Path:
    """This checkout's src (or ``source``'s) with the rollup update of ``rev``."""
    target = WORK / "live-baseline"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(
        (source or ROOT) / "src", target / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    old = subprocess.run(
        ["git", "show", f"{rev}:src/qunyun/ingestion/rollups.py"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    (target / "src" / "qunyun" / "ingestion" / "rollups.py").write_bytes(old)
    return target


def posted(event_id: str, group: str, member: str, text: str) -> dict[str, str]:
    """A text message posted now, as one event of the interchange format."""
    return {
        "id": event_id,
        "ts": datetime.now(UTC).isoformat(),
        "kind": "message.posted",
        "group": group,
        "member": member,
        "msg_type": "text",
        "text": text,
    }


class Server:
    def __init__(
        self, url: str, workers: int, source: Path | None, *, bare: bool = False, access_log: bool = False
    ) -> None:
        self.port = free_port()
        env = {**os.environ, "QUNYUN_DATABASE_URL": url, "QUNYUN_ENV": "development"}
        if source is not None:
            env["PYTHONPATH"] = str(source / "src")
        command = [*QUNYUN, "serve", "--port", str(self.port), "--workers", str(workers), "--job-threads", "0"]
        if not access_log:
            command.append("--no-access-log")  # as the bare app runs
        if bare:
            command = [*QUNYUN[:1], "-m", "uvicorn", "bench.bare_events:app", "--port", str(self.port),
                       "--workers", str(workers), "--no-access-log", "--log-level", "warning"]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300  # a loaded 2-core machine starts it slowly
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Poster:
    """One client: a keep-alive connection posting single messages of one organisation."""

    def __init__(self, port: int, token: str, pairs: list[tuple[str, str]], prefix: str, seed: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.pairs = pairs
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.sent = 0
        self.failed = 0

    def post(self) -> float:
        group, member = self.rng.choice(self.pairs)
        self.sent += 1
        event = posted(f"{self.prefix}-{self.sent}", group, member, "今天骑了 42 公里，明早七点集合")
        started = time.perf_counter()
        self.conn.request("POST", "/api/v1/events?platform=import", orjson.dumps([event]), self.headers)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200 or orjson.loads(body).get("stored") != 1:
            self.failed += 1
        return elapsed


def latency(port: int, token: str, pairs: list[tuple[str, str]], prefix: str, posts: int) -> list[float]:
    poster = Poster(port, token, pairs, prefix, 1)
    for _ in range(30):  # warm-up: connections, caches, the first plans
        poster.post()
    times = sorted(poster.post() for _ in range(posts))
    if poster.failed:
        raise RuntimeError(f"{poster.failed} posts failed")
    return times


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (every thread), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


class CpuMeter:
    """CPU seconds spent during a run by the server's processes, the PostgreSQL backends of the
    bench's database and this process (the clients), read from /proc: per post, figures that
    move far less with the machine's load than posts per second do."""

    def __init__(self, server_pid: int | None, url: str | None) -> None:
        self.server_pid = server_pid
        self.url = url

    def _commits(self) -> int:
        if self.url is None:
            return 0
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
        return int(row[0]) if row else 0

    def _backends(self) -> list[int]:
        if self.url is None:
            return []
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return [int(r[0]) for r in rows]

    def start(self) -> None:
        self.server = {p: cpu_seconds(p) for p in tree(self.server_pid)} if self.server_pid else {}
        self.pg = {p: cpu_seconds(p) for p in self._backends()}
        self.client = time.process_time()
        self.commits = self._commits()

    def stop(self) -> dict[str, float]:
        server = (
            sum(cpu_seconds(p) - self.server.get(p, 0.0) for p in tree(self.server_pid)) if self.server_pid else 0.0
        )
        pg = sum(cpu_seconds(p) - self.pg.get(p, 0.0) for p in self._backends())
        client = time.process_time() - self.client
        time.sleep(1.0)  # a backend reports its commits to pg_stat_database within a second
        self.committed = self._commits() - self.commits - 2  # the meter's own two reads
        return {"server": server, "pg": pg, "client": client}


def throughput(
    port: int,
    token: str,
    pairs: list[tuple[str, str]],
    prefix: str,
    clients: int,
    seconds: float,
    meter: CpuMeter | None = None,
) -> float:
    """Posts per second of ``clients`` clients posting for ``seconds``; with ``meter``, its CPU
    figures per post are printed."""
    posters = [Poster(port, token, pairs, f"{prefix}-{c}", 100 + c) for c in range(clients)]
    stop = time.perf_counter() + seconds
    done = [0] * clients

    def run(c: int) -> None:
        while time.perf_counter() < stop:
            posters[c].post()
            done[c] += 1

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    if meter is not None:
        meter.start()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    failed = sum(p.failed for p in posters)
    if failed:
        raise RuntimeError(f"{failed} posts failed")
    if meter is not None:
        used = meter.stop()
        posts = max(1, sum(done))
        print(
            "  CPU per post: " + ", ".join(f"{k} {v * 1000 / posts:.2f} ms" for k, v in used.items()),
            f"(machine: {sum(used.values()) / elapsed:.2f} of {os.cpu_count()} cores)",
            f"{posts / max(1, meter.committed):.1f} posts per commit" if meter.url else "",
            flush=True,
        )
    return sum(done) / elapsed


PROBED_TABLES = ("member_days", "org_day_members", "group_daily", "org_daily")


def probe(url: str, slug: str, posts: int) -> None:
    """In this process: ``posts`` single-message ``ingest()`` calls for ``slug``, counting the
    statements sent (all, and those of the rollup update) and the rows read from the rollup
    tables per post (pg_stat_user_tables): figures that do not depend on how loaded the machine
    is. Prints one JSON line."""
    os.environ.update(QUNYUN_DATABASE_URL=url, QUNYUN_ENV="development")
    from sqlalchemy import text

    from qunyun.db.session import unit_of_work
    from qunyun.ingestion.service import Ingestor, ingest

    counts = {"all": 0, "rollups": 0}
    in_rollups = [False]

    def counting(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **k: Any) -> Any:
            counts["all"] += 1
            counts["rollups"] += in_rollups[0]
            return fn(*a, **k)

        return wrapper

    for name in ("execute", "executemany", "copy"):
        setattr(psycopg.Cursor, name, counting(getattr(psycopg.Cursor, name)))
    update = Ingestor._update_rollups

    def flagged(self: Ingestor, facts: Any) -> None:
        in_rollups[0] = True
        try:
            return update(self, facts)
        finally:
            in_rollups[0] = False

    setattr(Ingestor, "_update_rollups", flagged)  # noqa: B010 (a method replaced for counting)

    def rows_read() -> dict[str, int]:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            found = conn.execute(
                "SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables"
                " WHERE relname = ANY(%s)",
                (list(PROBED_TABLES),),
            ).fetchall()
            return {name: int(n) for name, n in found}

    with unit_of_work() as session:
        org_id = session.execute(text("SELECT id FROM organisations WHERE slug = :s"), {"s": slug}).scalar_one()
        pairs = session.execute(
            text(
                "SELECT g.external_id, m.external_id FROM membership_spans s JOIN groups g ON g.id = s.group_id"
                " JOIN members m ON m.id = s.member_id WHERE s.org_id = :o AND s.left_at IS NULL LIMIT 2000"
            ),
            {"o": org_id},
        ).all()
    rng = random.Random(3)

    def post(i: int) -> None:
        group, member = rng.choice(pairs)
        event = posted(f"probe-{time.time_ns()}-{i}", group, member, "hi")
        with unit_of_work() as session:
            ingest(session, org_id, [event], platform="import", source="api", live=True)

    for i in range(10):
        post(i)
    counts.update(all=0, rollups=0)
    time.sleep(1.5)  # statistics reach pg_stat at the latest a second after a transaction
    before = rows_read()
    for i in range(posts):
        post(i)
    time.sleep(1.5)
    after = rows_read()
    read = {t: (after.get(t, 0) - before.get(t, 0)) / posts for t in PROBED_TABLES}
    print(
        orjson.dumps({"statements": counts["all"] / posts, "rollups": counts["rollups"] / posts, "read": read}).decode()
    )


def probed(url: str, slug: str, source: Path | None, posts: int) -> dict[str, object]:
    env = {**os.environ}
    if source is not None:
        env["PYTHONPATH"] = str(source / "src")
    done = subprocess.run(
        [*QUNYUN[:1], "-m", "bench.bench_live_ingest", "--probe", url, slug, str(posts)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    result: dict[str, object] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def pct(times: list[float], q: float) -> float:
    return times[min(len(times) - 1, int(q * len(times)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--big", type=int, default=1_000_000, help="events of the large organisation")
    parser.add_argument(
        "--big-import",
        type=int,
        default=20_000,
        help="of those, imported through qunyun events import (the rest are historic messages loaded with COPY)",
    )
    parser.add_argument("--small", type=int, default=1_000, help="events of the small organisation")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--posts", type=int, default=300, help="sequential posts for the latency figures")
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="'none' to skip the baseline")
    parser.add_argument(
        "--access-log", action="store_true", help="serve with uvicorn's access log (for code before --no-access-log)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the server during the 1 M throughput run")
    parser.add_argument("--database", default="qunyun_bench_live", help="PostgreSQL database to (re)create")
    parser.add_argument(
        "--reuse", action="store_true", help="post into the organisations --database holds from an earlier run"
    )
    parser.add_argument("--source", type=Path, help="run qunyun from DIR/src (another checkout) instead")
    parser.add_argument("--probe", nargs=3, metavar=("URL", "SLUG", "POSTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe[0], args.probe[1], int(args.probe[2]))
        return
    if args.source:
        args.source = args.source.resolve()
        os.environ["PYTHONPATH"] = str(args.source / "src")
    WORK.mkdir(parents=True, exist_ok=True)
    if args.reuse:  # the organisations of an earlier run, as they are now (their streams end then)
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{args.database}"
        orgs = {"1k": poster(url, "small"), "1M": poster(url, "big")}
    else:
        found = fresh_pg(args.database)
        if found is None:
            print("PostgreSQL not reachable: skipped")
            return
        url = found
        run_cli(["db", "upgrade"], url)
        orgs = {
            "1k": fill(url, "small", stream_file(args.small, 5, 200, 28)),
            "1M": fill(url, "big", stream_file(min(args.big, args.big_import), 500, 60_000, 28)),
        }
        if args.big > args.big_import:
            seed_history(url, "big", args.big - args.big_import)
    stored = {"1k": f"~{args.small:,}", "1M": f"~{args.big:,}"}  # events of each organisation
    runs: list[tuple[str, Path | None]] = [("incremental (this code)", args.source)]
    if args.baseline_rev != "none":
        runs.append((f"recount ({args.baseline_rev})", baseline_source(args.baseline_rev, args.source)))
    rows = []
    probes: list[tuple[str, str, object, object, dict[str, float]]] = []
    for label, source in runs:
        server = Server(url, args.workers, source, access_log=args.access_log)
        try:
            for size, (token, pairs) in orgs.items():
                prefix = f"{'new' if source is args.source else 'old'}-{size}"
                times = latency(server.port, token, pairs, prefix + "-seq", args.posts)
                profiler = None
                if args.profile and source is args.source and size == "1M":
                    profiler = py_spy(server.proc.pid, args.seconds)
                rate = throughput(
                    server.port,
                    token,
                    pairs,
                    prefix + "-par",
                    args.clients,
                    args.seconds,
                    CpuMeter(server.proc.pid, url),
                )
                if profiler is not None:
                    profiler.wait()
                rows.append((label, size, pct(times, 0.5), pct(times, 0.99), statistics.mean(times) * 1000, rate))
                print(
                    f"{label:<26}{stored[size]:>10}  p50 {rows[-1][2]:.1f} ms  p99 {rows[-1][3]:.1f} ms  {rate:,.0f}/s",
                    flush=True,
                )
        finally:
            server.stop()
        if source is args.source:
            # The rollups kept while posting agree with a recount of the log (exit 1 if not).
            for slug in ("small", "big"):
                qunyun(["stats", "rebuild", "--check", "--org", slug], url)  # exit 1: they differ
                print(f"{slug}: the rollups agree with a recount of the log (qunyun stats rebuild --check)")
        for size in orgs:
            found = probed(url, "small" if size == "1k" else "big", source, 50)
            read = found["read"]
            assert isinstance(read, dict)
            probes.append((label, size, found["statements"], found["rollups"], read))

    bare = Server(url, args.workers, None, bare=True)
    try:
        token, pairs = orgs["1k"]
        bare_rate = throughput(
            bare.port, token, pairs, "bare", args.clients, args.seconds, CpuMeter(bare.proc.pid, None)
        )
    finally:
        bare.stop()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nOne message per POST /api/v1/events, PostgreSQL, {args.workers} server processes (load average {load})")
    print(
        f"latency: 1 client, {args.posts} posts; throughput: {args.clients} clients for {args.seconds:.0f}s"
        " (baseline: bench/bare_events.py, a Starlette app that parses the body and stores nothing)"
    )
    print(f"{'rollup update':<26}{'events':>10}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'posts/s':>10}")
    for label, size, p50, p99, mean, rate in rows:
        ratio = f"({rate / bare_rate:.2f} of bare)"
        print(f"{label:<26}{stored[size]:>10}{p50:>9.1f}{p99:>9.1f}{mean:>9.1f}{rate:>10,.0f}  {ratio}")
    print(f"{'bare Starlette (no work)':<26}{'-':>10}{'':>27}{bare_rate:>10,.0f}  (same clients, same run)")
    print("\nPer post, in-process ingest() of one message (50 posts): statements sent, and rows read per table")
    print(f"{'rollup update':<26}{'events':>10}{'all':>6}{'rollups':>9}  " + "  ".join(PROBED_TABLES))
    for label, size, statements, rollups, read in probes:
        figures = "  ".join(f"{read[t]:>{len(t)},.1f}" for t in PROBED_TABLES)
        print(f"{label:<26}{stored[size]:>10}{statements:>6.1f}{rollups:>9.1f}  {figures}")


def py_spy(pid: int, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy of the server and its worker processes for ``seconds``, as a flat profile."""
    out = WORK / "live-profile.txt"
    spy = shutil.which("py-spy") or str(Path(QUNYUN[0]).parent / "py-spy")
    print(f"profile: {out}")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--duration", str(int(seconds)), "--format", "raw",
         "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


if __name__ == "__main__":
    main()

"""Matrix figures: application-service transactions per second through the webhook inbox on
loopback, against parsing alone; and the latency from a message posted on a real Synapse to its
moderation decision (p50/p99).

From one run on a fresh SQLite database (or PostgreSQL with --pg):

- **parse**: ``MatrixConnector.normalize`` of each transaction alone (nio's event classes and the
  mapping to interchange events), in this process;
- **transactions**: ``PUT /hooks/matrix/{id}/_matrix/app/v1/transactions/{txnId}`` with the
  hs_token, answered by a uvicorn server in this process on loopback (verify, store the raw
  transaction, enqueue its job), ``--clients`` concurrent senders;
- **processing**: the ``hooks.process`` jobs those transactions queued (normalize + live ingest,
  moderation included), drained by one worker;
- **latency**: a Synapse started as the tests start it (``.ci/synapse.sh`` installs it when
  missing), its application service pointed at the same uvicorn server, a worker draining jobs
  in a thread; ``--senders`` accounts each post two messages that the policy flags; the time
  from the post's answer (``PUT …/send``) to the decision's row, per message.

Transactions carry ``--events`` room events each (a realistic mix: 85 % text messages from 500
members in 20 rooms, 10 % joins, 5 % leaves).

    .venv/bin/python -m bench.bench_matrix [--transactions 1000] [--events 10] [--clients 4]
        [--senders 30] [--pg]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import bench_connection, fresh_pg

REPO = Path(__file__).resolve().parents[1]
HS_TOKEN = "hs-bench-token-0123456789abcdef"
AS_TOKEN = "as-bench-token-0123456789abcdef"
SPAM = "加我微信领红包"


def transactions(n: int, per: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = int(time.time() * 1000) - 3_600_000
    out = []
    k = 0
    for t in range(n):
        events = []
        for _ in range(per):
            k += 1
            room = f"!room{rng.randrange(20)}:bench.test"
            who = f"@rider{rng.randrange(500)}:bench.test"
            base = {"event_id": f"$bench{k}", "room_id": room, "sender": who, "origin_server_ts": start + k}
            roll = rng.random()
            if roll < 0.85:
                content = {"msgtype": "m.text", "body": f"今天骑了 {k % 97} 公里"}
                events.append({**base, "type": "m.room.message", "content": content})
            else:
                joined = roll < 0.95
                membership = {"membership": "join" if joined else "leave", "displayname": "骑友"}
                prev = {"membership": "leave" if joined else "join"}
                events.append(
                    {
                        **base,
                        "type": "m.room.member",
                        "state_key": who,
                        "content": membership,
                        "unsigned": {"prev_content": prev},
                    }
                )
        out.append({"txn": f"bench-{t}", "events": events})
    return out


def setup(url: str, homeserver: str, user_id: str) -> tuple[int, int]:
    org_id, connection_id, lead = bench_connection(
        url,
        "matrix",
        "bench appservice",
        {"mode": "appservice", "homeserver": homeserver, "user_id": user_id},
        {"as_token": AS_TOKEN, "hs_token": HS_TOKEN},
        lead=True,
    )
    from qunyun.auth.scope import Scope
    from qunyun.db.session import unit_of_work
    from qunyun.models import Role
    from qunyun.moderation import service as moderation

    assert lead is not None
    with unit_of_work() as s:
        moderation.create_policy(
            s,
            Scope(staff_id=lead, org_id=org_id, role=Role.LEAD),
            name="群规",
            target_type="organisation",
            settings={"rules": [{"name": "广告", "kind": "words"}]},
            words=[{"word": "加我微信", "category": "广告"}],
        )
    return org_id, connection_id


def parse_rate(batch: list[dict[str, Any]]) -> float:
    from qunyun.connectors.matrix.client import MatrixConnector

    connector = MatrixConnector("http://127.0.0.1:9", AS_TOKEN, user_id="@qunyun_as:bench.test")
    started = time.perf_counter()
    for txn in batch:
        connector.normalize({"events": txn["events"]})
    return len(batch) / (time.perf_counter() - started)


class Server:
    """The qunyun app under uvicorn on loopback, in this process."""

    def __init__(self) -> None:
        import uvicorn

        from bench.common import free_port
        from qunyun.api.app import create_app

        self.port = free_port()
        config = uvicorn.Config(create_app(), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def transaction_rate(server: Server, connection_id: int, batch: list[dict[str, Any]], clients: int) -> float:
    base = f"http://127.0.0.1:{server.port}/hooks/matrix/{connection_id}/_matrix/app/v1/transactions/"
    headers = {"Authorization": f"Bearer {HS_TOKEN}", "Content-Type": "application/json"}
    bodies = [(txn["txn"], orjson.dumps({"events": txn["events"]})) for txn in batch]
    chunks = [bodies[i::clients] for i in range(clients)]

    def send(chunk: list[tuple[str, bytes]]) -> None:
        with httpx.Client(timeout=60) as client:
            for txn, body in chunk:
                response = client.put(base + txn, content=body, headers=headers)
                response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    return len(batch) / (time.perf_counter() - started)


def drain(name: str) -> int:
    from qunyun.db.session import get_sessionmaker
    from qunyun.worker.runner import Worker

    worker = Worker(name, factory=get_sessionmaker())
    ran = 0
    while True:
        jobs = worker.claim_batch(64)
        if not jobs:
            return ran
        worker.execute_batch(jobs)
        ran += len(jobs)


def process_rate(count: int) -> float:
    started = time.perf_counter()
    ran = drain("bench-matrix")
    if ran < count:
        raise RuntimeError(f"only {ran} of {count} transactions were processed")
    return count / (time.perf_counter() - started)


def latency(server: Server, connection_id: int, senders: int, hs: Any) -> tuple[list[float], float]:
    """Seconds from each flagged post's answer to its decision row; and Synapse's startup time."""
    from sqlalchemy import select

    from qunyun.db.session import get_sessionmaker
    from qunyun.models import ModerationDecision

    target = f"http://127.0.0.1:{server.port}/hooks/matrix/{connection_id}"
    relay_client = httpx.Client(timeout=60)

    def forward(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        keep = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
        url = target + path + (f"?{query}" if query else "")
        response = relay_client.request(method, url, headers=keep, content=body)
        return response.status_code, response.content

    hs.relay.forward = forward
    hs.start()
    stop = threading.Event()

    def work() -> None:
        from qunyun.worker.runner import Worker

        worker = Worker("bench-matrix-live", factory=get_sessionmaker())
        while not stop.is_set():
            jobs = worker.claim_batch(64)
            if jobs:
                worker.execute_batch(jobs)
            else:
                time.sleep(0.005)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        from qunyun.connectors.actions import CreateGroup
        from qunyun.connectors.matrix.client import MatrixConnector

        connector = MatrixConnector(hs.url, AS_TOKEN, user_id=hs.as_user)
        room = str(connector.perform(CreateGroup(name="bench 群"), "bench-room").external_ref)
        users = [hs.register(f"spam{i}") for i in range(senders)]
        for user in users:
            user.join(room)
        time.sleep(2)  # the joins reach qunyun
        session_factory = get_sessionmaker()
        samples: list[float] = []
        for round_ in range(2):
            for user in users:
                event_id = user.send(room, f"{SPAM} {round_}")
                posted = time.perf_counter()
                deadline = posted + 30
                while time.perf_counter() < deadline:
                    with session_factory() as s:
                        found = s.scalar(
                            select(ModerationDecision.id).where(ModerationDecision.message_ref == event_id)
                        )
                    if found is not None:
                        samples.append(time.perf_counter() - posted)
                        break
                    time.sleep(0.002)
                else:
                    raise RuntimeError(f"no decision for {event_id} within 30 s")
        connector.api.close()
        return samples, hs.startup_seconds
    finally:
        stop.set()
        thread.join(timeout=30)
        hs.stop()
        relay_client.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=1000)
    parser.add_argument("--events", type=int, default=10, help="room events per transaction")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--senders", type=int, default=30, help="accounts posting flagged messages (latency)")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_pg("qunyun_bench_matrix") if args.pg else f"sqlite:///{Path(tmp) / 'bench.db'}"
        if url is None:
            raise SystemExit("PostgreSQL is not reachable")
        os.environ["QUNYUN_VAR_DIR"] = tmp
        sys.path.insert(0, str(REPO))
        from tests.connectors.matrix.homeserver import Homeserver

        hs = Homeserver(Path(tmp) / "synapse")  # its port is chosen now, it starts later
        hs.as_token, hs.hs_token = AS_TOKEN, HS_TOKEN
        _, connection_id = setup(url, hs.url, hs.as_user)
        batch = transactions(args.transactions, args.events)
        parse = parse_rate(batch)
        server = Server()
        try:
            txns = transaction_rate(server, connection_id, batch, args.clients)
            process = process_rate(len(batch))
            samples, startup = latency(server, connection_id, args.senders, hs)
        finally:
            server.stop()
    db = "PostgreSQL" if args.pg else "SQLite"
    per = args.events
    print(f"matrix ({db}, {args.transactions} transactions of {per} events, {args.clients} clients):")
    print(f"  parse alone            {parse:9,.0f} transactions/s ({parse * per:,.0f} events/s)")
    print(
        f"  transactions (HTTP)    {txns:9,.0f} transactions/s ({txns * per:,.0f} events/s;"
        f" {parse / txns:.0f}x slower than parsing)"
    )
    print(f"  processing (jobs)      {process:9,.0f} transactions/s ({process * per:,.0f} events/s)")
    print(f"  synapse startup        {startup:9.1f} s")
    print(
        f"  post → decision        p50 {pct(samples, 0.5) * 1000:.0f} ms, p99 {pct(samples, 0.99) * 1000:.0f} ms"
        f" ({len(samples)} messages, appservice mode)"
    )


if __name__ == "__main__":
    main()

"""Telegram figure: updates per second through the webhook on loopback, against parsing alone.

Three numbers from one run on a fresh SQLite database (or PostgreSQL with --pg):

- **parse**: ``TelegramConnector.normalize`` alone (python-telegram-bot's ``Update.de_json`` and
  the mapping to interchange events), in this process;
- **webhook**: ``POST /hooks/telegram/{id}`` with the secret token, answered by a uvicorn server
  in this process on loopback (verify, store the raw update, enqueue its job), with
  ``--clients`` concurrent senders as Telegram's ``max_connections`` would;
- **process**: the ``hooks.process`` jobs those deliveries queued (normalize + live ingest),
  drained by one worker.

The updates are a realistic mix: 85 % text messages from 500 members in 20 groups, 10 % joins
through invite links, 5 % leaves.

    .venv/bin/python -m bench.bench_telegram [--updates 3000] [--clients 4] [--pg]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import bench_connection, free_port, fresh_pg

TOKEN = "123456789:AAFakeTokenForTheBenchOnly_abcdefghijkl"
SECRET = "bench-secret-token_0123456789"


def updates(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = int(time.time()) - 3600
    out = []
    for i in range(n):
        chat: dict[str, Any] = {"id": -1001000000000 - rng.randrange(20), "title": "跑步打卡群", "type": "supergroup"}
        who = {"id": 5_000_000 + rng.randrange(500), "is_bot": False, "first_name": "跑友", "last_name": str(i % 97)}
        roll = rng.random()
        if roll < 0.85:
            body = {
                "message_id": i + 1,
                "from": who,
                "chat": chat,
                "date": start + i // 10,
                "text": f"今天跑了 {i % 21} 公里",
            }
            out.append({"update_id": 800000000 + i, "message": body})
            continue
        joined = roll < 0.95
        change: dict[str, Any] = {
            "chat": chat,
            "from": who,
            "date": start + i // 10,
            "old_chat_member": {"user": who, "status": "left" if joined else "member"},
            "new_chat_member": {"user": who, "status": "member" if joined else "left"},
        }
        if joined:
            change["invite_link"] = {
                "invite_link": f"https://t.me/+bench{chat['id'] % 1000}",
                "creator": {"id": 123456789, "is_bot": True, "first_name": "qunyun"},
                "creates_join_request": False,
                "is_primary": False,
                "is_revoked": False,
            }
        out.append({"update_id": 800000000 + i, "chat_member": change})
    return out


def setup(url: str) -> tuple[int, int]:
    org_id, connection_id, _ = bench_connection(
        url,
        "telegram",
        "bench bot",
        {"mode": "webhook", "api_base": "http://127.0.0.1:9"},
        {"bot_token": TOKEN, "webhook_secret": SECRET},
    )
    return org_id, connection_id


def parse_rate(batch: list[dict[str, Any]]) -> float:
    from qunyun.connectors.telegram.botapi import BotApi
    from qunyun.connectors.telegram.client import TelegramConnector

    connector = TelegramConnector(BotApi(TOKEN, "http://127.0.0.1:9"))
    started = time.perf_counter()
    for update in batch:
        connector.normalize(update)
    return len(batch) / (time.perf_counter() - started)


def webhook_rate(connection_id: int, batch: list[dict[str, Any]], clients: int) -> float:
    import uvicorn

    from qunyun.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/hooks/telegram/{connection_id}"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    bodies = [orjson.dumps(u) for u in batch]
    chunks = [bodies[i::clients] for i in range(clients)]

    def send(chunk: list[bytes]) -> None:
        with httpx.Client(timeout=60) as client:
            for body in chunk:
                response = client.post(url, content=body, headers=headers)
                response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    elapsed = time.perf_counter() - started
    server.should_exit = True
    thread.join(timeout=10)
    return len(batch) / elapsed


def process_rate(count: int) -> float:
    from qunyun.db.session import get_sessionmaker
    from qunyun.worker.runner import Worker, load_handler_modules

    load_handler_modules()
    worker = Worker("bench-telegram", factory=get_sessionmaker())
    started = time.perf_counter()
    ran = 0
    while True:
        jobs = worker.claim_batch(64)
        if not jobs:
            break
        worker.execute_batch(jobs)
        ran += len(jobs)
    elapsed = time.perf_counter() - started
    if ran < count:
        raise RuntimeError(f"only {ran} of {count} deliveries were processed")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_pg("qunyun_bench_telegram") if args.pg else f"sqlite:///{Path(tmp) / 'bench.db'}"
        if url is None:
            raise SystemExit("PostgreSQL is not reachable")
        os.environ["QUNYUN_VAR_DIR"] = tmp
        _, connection_id = setup(url)
        batch = updates(args.updates)
        parse = parse_rate(batch)
        webhook = webhook_rate(connection_id, batch, args.clients)
        process = process_rate(len(batch))
    db = "PostgreSQL" if args.pg else "SQLite"
    print(f"telegram ({db}, {args.updates} updates, {args.clients} clients):")
    print(f"  parse alone        {parse:10,.0f} updates/s")
    print(f"  webhook (HTTP)     {webhook:10,.0f} updates/s  ({parse / webhook:.0f}x slower than parsing)")
    print(f"  processing (jobs)  {process:10,.0f} updates/s")


if __name__ == "__main__":
    main()

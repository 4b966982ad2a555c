"""WeCom figures: callbacks per second through the webhook on loopback against decrypting alone,
and the time from a burst of callbacks to the joins in the stats.

From one run on a fresh SQLite database (or PostgreSQL with --pg), with the fake WeCom server
(``qunyun.connectors.wecom.fake``) on loopback as the API:

- **decrypt**: signature check + AES-256-CBC decrypt + XML parse of each callback, in this process;
- **webhook**: ``POST /hooks/wecom/{id}`` (verify, decrypt, store, acknowledge) answered by a
  uvicorn server in this process, ``--clients`` concurrent senders;
- **burst → stats**: ``--burst`` join callbacks (one member each, 20 groups) posted as fast as
  the clients go, while one worker drains the ``hooks.process`` jobs (normalize with groupchat/get
  for names and live-code links, live ingest); the time from the first callback sent until the
  last join is counted in ``group_daily`` (the stats).

    .venv/bin/python -m bench.bench_wecom [--callbacks 2000] [--burst 1000] [--clients 4] [--pg]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import bench_connection, free_port, fresh_pg

CORP_ID = "ww1436e0e65a779aee"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
SECRET = "bench-app-secret-0123"
GROUPS = 20


def setup(url: str, api_base: str) -> tuple[int, int]:
    org_id, connection_id, _ = bench_connection(
        url,
        "wecom",
        "bench corp",
        {"corp_id": CORP_ID, "api_base": api_base},
        {"secret": SECRET, "token": TOKEN, "aes_key": AES_KEY},
    )
    return org_id, connection_id


def callbacks(fake: object, n: int, prefix: str) -> list[tuple[dict[str, str], bytes]]:
    from qunyun.connectors.wecom.crypto import WeComCrypto
    from qunyun.connectors.wecom.fake import FakeWeCom, callback_request

    assert isinstance(fake, FakeWeCom)
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    out = []
    for i in range(n):
        xml = fake.add_member(f"wrbench{i % GROUPS:04d}", f"wm{prefix}{i:07d}", scene=3, name=f"跑友{i % 97}")
        query, body = callback_request(crypto, xml)
        out.append((query, body.encode()))
    return out


def decrypt_rate(batch: list[tuple[dict[str, str], bytes]]) -> float:
    from qunyun.connectors.wecom.crypto import WeComCrypto, parse_xml

    crypto = WeComCrypto(TOKEN, AES_KEY, CORP_ID)
    started = time.perf_counter()
    for query, body in batch:
        encrypted = str(parse_xml(body)["Encrypt"])
        assert crypto.sign(query["timestamp"], query["nonce"], encrypted) == query["msg_signature"]
        parse_xml(crypto.decrypt(encrypted))
    return len(batch) / (time.perf_counter() - started)


def post_all(url: str, batch: list[tuple[dict[str, str], bytes]], clients: int) -> float:
    chunks = [batch[i::clients] for i in range(clients)]

    def send(chunk: list[tuple[dict[str, str], bytes]]) -> None:
        with httpx.Client(timeout=60) as client:
            for query, body in chunk:
                client.post(url, params=query, content=body).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, chunks))
    return time.perf_counter() - started


def drain(stop: threading.Event) -> None:
    from qunyun.db.session import get_sessionmaker
    from qunyun.worker.runner import Worker, load_handler_modules

    load_handler_modules()
    worker = Worker("bench-wecom", factory=get_sessionmaker())
    while not stop.is_set():
        jobs = worker.claim_batch(64)
        if jobs:
            worker.execute_batch(jobs)
        else:
            time.sleep(0.01)


def joins_in_stats(org_id: int) -> int:
    from sqlalchemy import func, select

    from qunyun.db.session import get_sessionmaker
    from qunyun.models.rollup import GroupDaily

    with get_sessionmaker()() as s:
        return int(
            s.scalar(select(func.coalesce(func.sum(GroupDaily.joins), 0)).where(GroupDaily.org_id == org_id)) or 0
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--callbacks", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    args = parser.parse_args()
    import uvicorn

    from qunyun.connectors.wecom.fake import FakeWeCom, serve

    fake = FakeWeCom(CORP_ID, SECRET)
    for g in range(GROUPS):
        fake.add_group(f"wrbench{g:04d}", f"跑步群{g}", f"owner{g % 3}")
    with tempfile.TemporaryDirectory() as tmp, serve(fake) as api_base:
        url = fresh_pg("qunyun_bench_wecom") if args.pg else f"sqlite:///{Path(tmp) / 'bench.db'}"
        if url is None:
            raise SystemExit("PostgreSQL is not reachable")
        os.environ["QUNYUN_VAR_DIR"] = tmp
        org_id, connection_id = setup(url, api_base)
        batch = callbacks(fake, args.callbacks, "a")
        decrypt = decrypt_rate(batch)

        from qunyun.api.app import create_app

        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        hook = f"http://127.0.0.1:{port}/hooks/wecom/{connection_id}"
        webhook = len(batch) / post_all(hook, batch, args.clients)

        # Drain the first batch's jobs, then the burst with the worker running alongside.
        stop = threading.Event()
        worker = threading.Thread(target=drain, args=(stop,), daemon=True)
        worker.start()
        first = time.perf_counter()
        while joins_in_stats(org_id) < args.callbacks:
            time.sleep(0.2)
        processed = time.perf_counter() - first
        burst = callbacks(fake, args.burst, "b")  # signed now: within the replay window
        started = time.perf_counter()
        post_all(hook, burst, args.clients)
        posted = time.perf_counter() - started
        while joins_in_stats(org_id) < args.callbacks + args.burst:
            time.sleep(0.05)
        to_stats = time.perf_counter() - started
        stop.set()
        worker.join(timeout=30)
        server.should_exit = True
        thread.join(timeout=10)
    db = "PostgreSQL" if args.pg else "SQLite"
    print(f"wecom ({db}, {args.callbacks} callbacks, {args.clients} clients, fake WeCom API on loopback):")
    print(f"  verify + decrypt alone          {decrypt:10,.0f} callbacks/s")
    slower = decrypt / webhook
    print(f"  webhook verify+decrypt+store+ack {webhook:9,.0f} callbacks/s  ({slower:.0f}x slower than decrypting)")
    print(f"  burst of {args.burst}: all posted in {posted:.2f} s; last join in the stats after {to_stats:.2f} s")
    print(f"  (first {args.callbacks} callbacks processed by one worker in {processed:.1f} s)")


if __name__ == "__main__":
    main()

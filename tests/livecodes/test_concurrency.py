"""1,000 concurrent first-time scans of a code whose pool has 3 groups of limit 200, served by 4
server processes (`qunyun serve --workers 4`): exactly 600 routed, 400 to the fallback, no group
over 200, the pool marked full once. On PostgreSQL (CI) the row lock of the conditional UPDATE
keeps the limit; on SQLite the writers take turns."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.session import unit_of_work
from qunyun.models import Job, LiveCodeGroup, LiveCodeScan, LiveCodeVisitor
from tests.livecodes.helpers import add_group, make_code, make_org

SCANS = 1000
PROCESSES = 4
LIMIT = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, log: BinaryIO) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QUNYUN_ENV": "test"}
    command = [sys.executable, "-m", "qunyun.cli", "serve", "--port", str(port)]
    command += ["--workers", str(PROCESSES), "--job-threads", "0"]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_until_up(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    # Four processes importing the app on a busy two-core machine take a while: this waits for
    # them to come up, it does not time them.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        raise AssertionError("the server did not come up: " + log.read_text()[-3000:])
    # Every server process must have started before the burst (uvicorn logs one line each).
    while time.monotonic() < deadline and log.read_text().count("Application startup complete") < PROCESSES:
        time.sleep(0.2)


async def _scan(port: int, path: str, start: asyncio.Event) -> int:
    """One first-time scan on its own connection (no cookie): the status of the answer."""
    await start.wait()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        return int(head[9:12])
    finally:
        writer.close()


async def _burst(port: int, code: str) -> Counter[int]:
    start = asyncio.Event()
    tasks = [asyncio.create_task(_scan(port, f"/c/{code}", start)) for _ in range(SCANS)]
    await asyncio.sleep(0)
    start.set()
    return Counter(await asyncio.gather(*tasks))


def test_no_group_ever_takes_more_scans_than_its_limit(db: sessionmaker[Session], tmp_path: Path) -> None:
    org = make_org(db)
    for key in ("a", "b", "c"):
        add_group(org, key)
    code_id, code = make_code(org, ["a", "b", "c"], default_limit=LIMIT, fallback_text="请加工作人员微信")
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        began = time.monotonic()
        proc = _serve(port, out)
        try:
            _wait_until_up(port, proc, log)
            print(f"{PROCESSES} server processes up in {time.monotonic() - began:.1f}s")
            started = time.monotonic()
            statuses = asyncio.run(_burst(port, code))
            print(f"{SCANS} scans through {PROCESSES} processes in {time.monotonic() - started:.1f}s")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert statuses == Counter({200: SCANS}), log.read_text()[-3000:]
    with unit_of_work(db, write=False) as s:
        routed = s.scalars(
            select(LiveCodeGroup.routed).where(LiveCodeGroup.live_code_id == code_id).order_by(LiveCodeGroup.position)
        ).all()
        assert routed == [LIMIT, LIMIT, LIMIT]
        outcomes = Counter(
            dict(
                s.execute(
                    select(LiveCodeScan.outcome, func.count())
                    .where(LiveCodeScan.live_code_id == code_id, LiveCodeScan.first.is_(True))
                    .group_by(LiveCodeScan.outcome)
                ).all()
            )
        )
        assert outcomes == Counter({"routed": 3 * LIMIT, "fallback": SCANS - 3 * LIMIT})
        per_group = s.execute(
            select(LiveCodeScan.group_id, func.count())
            .where(LiveCodeScan.live_code_id == code_id, LiveCodeScan.group_id.is_not(None))
            .group_by(LiveCodeScan.group_id)
        ).all()
        assert sorted(n for _, n in per_group) == [LIMIT, LIMIT, LIMIT]
        assert s.scalar(select(func.count()).where(LiveCodeVisitor.live_code_id == code_id)) == SCANS
        assert s.scalar(select(func.count()).where(Job.kind == "livecodes.pool_full")) == 1

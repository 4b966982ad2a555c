"""Group commit for scans: the scans that arrive while a transaction runs share the next one.

Each scan is a write (its row, and for a first scan the group's counter and the visitor's row).
Alone, every scan would pay a transaction of its own, a hop to a worker thread and a commit; a
poster at an event brings hundreds at once, and on PostgreSQL the first scans of one code all
update the same pool row, whose lock each would hold until its own commit.

Here scans wait on the event loop, as coroutines, in this process's lane. One worker thread at a
time takes every scan waiting (up to :data:`MAX_BATCH`), serves them in order in one transaction
(``routing.scan`` / ``routing.answer``), commits once, and each scan gets its own result. A lone
scan is a batch of one: a quiet code sees no delay. Across server processes the batches take
turns on the pool row (PostgreSQL) or the write lock (SQLite), once per batch.

If the shared transaction fails, each of its scans is served again alone, in a transaction of
its own, so one scan's failure is that scan's answer only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import anyio
from sqlalchemy.orm import Session, sessionmaker

from qunyun.config import get_settings
from qunyun.db.session import make_engine, unit_of_work
from qunyun.livecodes import routing
from qunyun.livecodes.routing import ScanResult
from qunyun.livecodes.writes import Writes

MAX_BATCH = 200


@lru_cache(maxsize=4)
def _sessions(url: str) -> sessionmaker[Session]:
    """The lane's own connections (one at a time is all it uses): scans never wait on the
    requests' pool, and no ping precedes each batch (a connection found broken fails its batch,
    is dropped by the pool, and the batch's scans are served again on a new one)."""
    engine = make_engine(url, pool_size=1, max_overflow=1, pool_pre_ping=False)
    return sessionmaker(bind=engine, expire_on_commit=False)


def lane_sessions() -> sessionmaker[Session]:
    return _sessions(get_settings().resolved_database_url)


# A scan's work: the shared session and the batch's pending rows in, its result out.
Work = Callable[[Session, Writes], ScanResult]


@dataclass
class _Item:
    work: Work
    code: str
    future: asyncio.Future[ScanResult]


class ScanLane:
    """The scans of one event loop. Used from that loop only: no lock is needed."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._waiting: deque[_Item] = deque()
        self._busy = False
        # Transactions run and scans they carried (the tests and the benchmark read them).
        self.transactions = 0
        self.scans = 0

    async def serve(self, code: str, work: Work) -> ScanResult:
        """Run ``work(session)`` in the next shared transaction; its result once committed."""
        future: asyncio.Future[ScanResult] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Item(work, code, future))
        if not self._busy:
            self._busy = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
                batch = [item for item in batch if not item.future.cancelled()]
                if not batch:
                    continue
                try:
                    outcomes = await anyio.to_thread.run_sync(self._run, batch)
                except BaseException as exc:  # cancelled while a batch ran: its scans get the error
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
                    raise
                for item, outcome in zip(batch, outcomes, strict=True):
                    if item.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        item.future.set_exception(outcome)
                    else:
                        item.future.set_result(outcome)
        finally:
            self._busy = False
            if self._waiting:  # arrived as the last batch failed: start again
                self._busy = True
                asyncio.get_running_loop().create_task(self._drain())

    def _run(self, batch: list[_Item]) -> list[ScanResult | Exception]:
        if len(batch) > 1:
            try:
                with unit_of_work(lane_sessions()) as session:
                    writes = Writes()
                    results: list[ScanResult | Exception] = []
                    for index, item in enumerate(batch):
                        writes.remaining = len(batch) - index
                        results.append(item.work(session, writes))
                    writes.flush(session)
            except Exception:
                # The cache may hold what the rolled-back transaction saw (a group found full).
                for code in {item.code for item in batch}:
                    routing.forget(code)
            else:
                self.transactions += 1
                self.scans += len(batch)
                return results
        alone: list[ScanResult | Exception] = []
        for item in batch:
            try:
                with unit_of_work(lane_sessions()) as session:
                    writes = Writes()
                    alone.append(item.work(session, writes))
                    writes.flush(session)
            except Exception as exc:
                alone.append(exc)
        self.transactions += len(batch)
        self.scans += len(batch)
        return alone


class _Lanes:
    """One lane per event loop (a test client runs a loop of its own)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lane: ScanLane | None = None

    def get(self) -> ScanLane:
        loop = asyncio.get_running_loop()
        if self._lane is None or self._loop is not loop:
            self._loop, self._lane = loop, ScanLane()
        return self._lane


lanes = _Lanes()

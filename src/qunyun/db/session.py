"""Engine and session factory; SQLite gets WAL, foreign keys and a busy timeout."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from qunyun.config import get_settings

BUSY_TIMEOUT_SECONDS = 30


class WriteGate:
    """A first-come, first-served queue for the writers of one SQLite file in this process.

    SQLite itself keeps no queue: a writer that finds the write lock taken sleeps and tries again,
    every 100 ms once it has waited a while, while a newcomer tries after 1, 2, 5 ms. With a few
    threads writing back to back on a busy machine, a writer that has waited longest kept missing
    the moments the lock was free and gave up after the 30 s busy timeout ("database is locked")
    although no transaction held the lock for more than two seconds. Writers that queue here
    instead are served in the order they came, each waiting for those ahead only. (Other
    processes still meet SQLite's busy handler.)"""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Lock] = deque()

    def acquire(self, timeout: float) -> bool:
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        if turn.acquire(timeout=timeout):
            return True  # handed over by release()
        with self._mutex:
            if turn in self._waiting:
                self._waiting.remove(turn)
                return False
        return True  # handed over just as the wait ran out

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()  # still held: the next writer's now
            else:
                self._held = False


_gates: dict[str, WriteGate] = {}
_gates_lock = threading.Lock()
_GATE = "qunyun_write_gate"  # key in a pooled connection's info: the gate it holds


def write_gate(path: str) -> WriteGate:
    """The gate of the SQLite file at ``path``, shared by every engine of this process on it."""
    key = str(Path(path).resolve())
    with _gates_lock:
        return _gates.setdefault(key, WriteGate())


def _release_gate(info: dict[Any, Any]) -> None:
    gate = info.pop(_GATE, None)
    if gate is not None:
        gate.release()


def _end_turn(conn: Any) -> None:
    """A transaction's end: its writer's turn ends (an invalidated connection's ended with it)."""
    if not conn.invalidated and not conn.closed:
        _release_gate(conn.info)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the settings qunyun relies on."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path.startswith("file:"):  # a URI filename (?mode=ro&uri=true): the path before the query
            path = path.removeprefix("file:").split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Python's sqlite3 opens transactions lazily; we issue BEGIN ourselves so that
        # writers take the lock up front (BEGIN IMMEDIATE) and readers see a snapshot.
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        gate = write_gate(path) if path and path != ":memory:" and "mode=memory" not in url else None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            if gate is None or mode == "DEFERRED":
                conn.exec_driver_sql(f"BEGIN {mode}")
                return
            # A writer queues for its turn in this process, then takes SQLite's lock.
            if not gate.acquire(BUSY_TIMEOUT_SECONDS):
                raise OperationalError(f"BEGIN {mode}", None, sqlite3.OperationalError("database is locked"))
            try:
                conn.exec_driver_sql(f"BEGIN {mode}")
            except BaseException:
                gate.release()
                raise
            conn.info[_GATE] = gate

        # The turn ends with the transaction, or with the connection however it goes.
        for name in ("commit", "rollback"):
            event.listen(engine, name, _end_turn)
        for name in ("checkin", "close", "detach"):
            event.listen(engine.pool, name, lambda _dbapi, record: _release_gate(record.info))
        event.listen(engine.pool, "reset", lambda _dbapi, record, _state: _release_gate(record.info))
        for name in ("invalidate", "soft_invalidate"):
            event.listen(engine.pool, name, lambda _dbapi, record, _exc: _release_gate(record.info))

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@lru_cache
def get_engine() -> Engine:
    """The web process's engine. The pool is sized from settings (QUNYUN_DB_POOL_SIZE +
    QUNYUN_DB_MAX_OVERFLOW) to hold every request admitted at once (QUNYUN_MAX_CONCURRENT_REQUESTS)
    plus after-response bookkeeping, so an admitted request does not queue on the pool."""
    settings = get_settings()
    return make_engine(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
    )


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session] | None = None, *, write: bool = True) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back when it raises.

    ``write=True`` on SQLite takes the write lock at BEGIN, so two writers never deadlock
    upgrading read locks.
    """
    maker = factory or get_sessionmaker()
    session = maker()
    if write and session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

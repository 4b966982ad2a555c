"""The access_token of a WeCom connection, cached for every process in the database.

Three tiers: this process's memory, then the ``wecom_tokens`` row (encrypted like connection
secrets), then gettoken. A refresh (no token, an expired one, or WeCom answered 40014/42001 for
the one we hold) locks the row — ``SELECT … FOR UPDATE`` on PostgreSQL, the write lock on
SQLite — and reads it again before calling gettoken: a process that waited finds the token the
first one stored, so a burst of expired calls across processes asks WeCom once (no stampede).

A caller already inside a transaction (a job) passes its session: the row is read and written
in that transaction. Without one, a short transaction of its own is used; when the database
cannot give the lock quickly (SQLite held by another writer), the token is fetched and kept in
memory only, so an API call never waits long on the cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from qunyun.connections.secrets import decrypt, encrypt
from qunyun.models.wecom_state import WeComToken
from qunyun.timeutil import utcnow

log = logging.getLogger(__name__)

# Renew this long before WeCom's expiry (expires_in is 7200 s).
MARGIN = timedelta(minutes=5)

Fetch = Callable[[], tuple[str, int]]  # gettoken: (access_token, expires_in seconds)

_lock = threading.Lock()
_memory: dict[int, tuple[str, datetime]] = {}
_refresh_locks: dict[int, threading.Lock] = {}


def _refresh_lock(connection_id: int) -> threading.Lock:
    with _lock:
        return _refresh_locks.setdefault(connection_id, threading.Lock())


def forget_memory(connection_id: int | None = None) -> None:
    """Drop this process's cached tokens (tests; a changed secret)."""
    with _lock:
        if connection_id is None:
            _memory.clear()
        else:
            _memory.pop(connection_id, None)


class TokenCache:
    """The token of connection ``connection_id`` (see the module's docstring)."""

    def __init__(self, connection_id: int, session_factory: Callable[[], Session] | None = None) -> None:
        self.connection_id = connection_id
        self._factory = session_factory
        self.session: Session | None = None  # a caller's transaction, when it lends one

    @contextmanager
    def using(self, session: Session) -> Iterator[TokenCache]:
        previous, self.session = self.session, session
        try:
            yield self
        finally:
            self.session = previous

    def current(self, now: datetime | None = None) -> str | None:
        now = now or utcnow()
        with _lock:
            held = _memory.get(self.connection_id)
        if held is not None and held[1] - MARGIN > now:
            return held[0]
        try:
            row = self._read()
        except OperationalError:
            return None
        if row is not None:
            token, expires = row
            if expires - MARGIN > now:
                self._remember(token, expires)
                return token
        return None

    def refresh(self, fetch: Fetch, *, rejected: str | None = None) -> str:
        """A token other than ``rejected``: the one another process stored meanwhile, or a new one."""
        with _refresh_lock(self.connection_id):
            with _lock:
                held = _memory.get(self.connection_id)
            if held is not None and held[0] != rejected and held[1] - MARGIN > utcnow():
                return held[0]
            if rejected is not None:
                forget_memory(self.connection_id)
            try:
                try:
                    return self._refresh_shared(fetch, rejected)
                except IntegrityError:  # another process inserted the row first: lock theirs
                    return self._refresh_shared(fetch, rejected)
            except (OperationalError, IntegrityError):
                log.info("wecom token of connection %s: the shared cache is busy, kept in memory", self.connection_id)
                token, expires_in = fetch()
                expires = utcnow() + timedelta(seconds=expires_in)
                self._remember(token, expires)
                return token

    # -- storage -----------------------------------------------------------------------------

    def _remember(self, token: str, expires: datetime) -> None:
        with _lock:
            _memory[self.connection_id] = (token, expires)

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        if self.session is not None:
            yield self.session
            return
        if self._factory is None:
            from qunyun.db.session import get_sessionmaker

            self._factory = get_sessionmaker()
        session = self._factory()
        try:
            if write:
                dialect = session.get_bind().dialect.name
                if dialect == "sqlite":
                    # A deferred transaction with a short busy timeout: its first write waits at
                    # most 2 s for a writer (a job's transaction) instead of the usual 30 s.
                    session.connection().exec_driver_sql("PRAGMA busy_timeout=2000")
                else:
                    session.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            if write and session.get_bind().dialect.name == "sqlite":
                with suppress(Exception):  # the connection goes back to the pool either way
                    session.connection().exec_driver_sql("PRAGMA busy_timeout=30000")
            session.close()

    def _read(self) -> tuple[str, datetime] | None:
        with self._transaction(write=False) as session:
            row = session.get(WeComToken, self.connection_id)
            if row is None or not row.token or row.expires_at is None:
                return None
            return str(decrypt(row.token).get("access_token", "")), row.expires_at

    def _refresh_shared(self, fetch: Fetch, rejected: str | None) -> str:
        now = utcnow()
        with self._transaction(write=True) as session:
            row = session.get(WeComToken, self.connection_id, with_for_update=True, populate_existing=True)
            if row is None:
                row = WeComToken(
                    connection_id=self.connection_id, token=None, refreshed=0, callbacks_after=0, updated_at=now
                )
                with session.begin_nested():  # a racing insert fails alone, not the caller's transaction
                    session.add(row)
                    session.flush()
            if row.token and row.expires_at is not None and row.expires_at - MARGIN > now:
                stored = str(decrypt(row.token).get("access_token", ""))
                if stored and stored != rejected:
                    self._remember(stored, row.expires_at)
                    return stored
            token, expires_in = fetch()
            expires = now + timedelta(seconds=expires_in)
            row.token = encrypt({"access_token": token})
            row.expires_at = expires
            row.refreshed = (row.refreshed or 0) + 1
            row.updated_at = now
            session.flush()
        self._remember(token, expires)
        return token

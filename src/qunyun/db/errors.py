"""Telling an unavailable database (down, unreachable, full, locked) apart from a bug.

An unavailable database is the operator's problem and passes: the request is answered 503 with
Retry-After instead of 500 ``internal_error``.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLite reports everything as OperationalError; only these mean "not now" rather than a bug
# (a missing table, a syntax error are OperationalErrors too).
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
    "attempt to write a readonly database",
    "readonly database",
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot serve right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (PoolTimeout, DisconnectionError)):
            return True
        orig: BaseException | None = current
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return True
            orig = current.orig
        module = type(orig).__module__ if orig is not None else ""
        if module.startswith("psycopg") and _is_psycopg_operational(orig):
            # Connection refused or lost, server shutting down, too many connections, disk
            # full, lock or statement timeout: psycopg's OperationalError and its subclasses.
            return True
        if module.startswith("sqlite3") and type(orig).__name__ == "OperationalError":
            text = str(orig).lower()
            if any(marker in text for marker in _SQLITE_UNAVAILABLE):
                return True
        current = current.__cause__ or current.__context__
    return False


def _is_psycopg_operational(orig: BaseException | None) -> bool:
    try:
        from psycopg import OperationalError
    except ImportError:  # pragma: no cover - psycopg is a dependency, but only PostgreSQL needs it
        return False
    return isinstance(orig, OperationalError)

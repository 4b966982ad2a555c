"""Inserting a row that a concurrent writer may insert first, under a unique key.

Look first, insert second still races: two requests both miss, both insert, one hits the unique
key. The insert runs in a savepoint so that only it rolls back, never the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

T = TypeVar("T")


def try_insert(session: Session, row: object) -> bool:
    """Add and flush ``row`` in a savepoint; False (the savepoint rolled back, ``row`` not added)
    when it breaks a constraint, such as a unique key a concurrent writer took first."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return False
    return True


def insert_or_get(session: Session, row: T, lookup: Callable[[], T | None]) -> tuple[T, bool]:
    """Insert ``row``, or when a concurrent writer committed the same unique key first, the row
    ``lookup`` finds instead; with whether ``row`` was inserted. The IntegrityError passes when
    ``lookup`` finds nothing (the insert broke some other constraint)."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = lookup()
        if existing is None:
            raise
        return existing, False
    return row, True

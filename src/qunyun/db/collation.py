"""Names in pinyin order: 阿 < 北 < 上 < 重 … rather than in code-point order.

PostgreSQL sorts with ICU's Chinese collation (``COLLATE "zh-x-icu"``) when the server was built
with ICU. SQLite has no such collation, so every SQLite connection gets a ``pinyin`` collation
that compares pypinyin keys (cached: a sort compares the same names many times). Both put digits
and punctuation first, then Han characters by pinyin, then Latin letters, as ICU's ``zh`` does.
Polyphonic characters may be read differently by the two (长沙: chang/zhang).
"""

from __future__ import annotations

import sqlite3
import unicodedata
from functools import lru_cache
from typing import Any

from pypinyin import Style, pinyin
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool
from sqlalchemy.sql.elements import ColumnElement

SQLITE_COLLATION = "pinyin"
ICU_COLLATION = "zh-x-icu"


def _is_han(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH")


@lru_cache(maxsize=65536)
def pinyin_key(name: str) -> tuple[tuple[tuple[int, str], ...], str]:
    """A sort key for ``name``: per character (class, pinyin or folded letter), then the name
    itself to break ties (case, homophones)."""
    keep_each: Any = list  # an unknown run of characters → one item per character
    readings = pinyin(name, style=Style.TONE3, errors=keep_each)
    # pinyin() returns one reading per Han character and one item per other character.
    flat = [r[0] for r in readings]
    key: list[tuple[int, str]] = []
    for char, reading in zip(name, flat if len(flat) == len(name) else list(name), strict=True):
        if _is_han(char):
            key.append((1, reading))
        elif char.isalpha():
            key.append((2, char.casefold()))
        else:
            key.append((0, char))
    return tuple(key), name


def _compare(a: str | None, b: str | None) -> int:
    left, right = pinyin_key(a or ""), pinyin_key(b or "")
    return (left > right) - (left < right)


@event.listens_for(Pool, "checkout")
def _register_on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # On checkout rather than connect: connections opened before this module was imported get
    # the collation too. Registered once per DBAPI connection (the record's info lives with it).
    if isinstance(dbapi_connection, sqlite3.Connection) and not record.info.get(SQLITE_COLLATION):
        dbapi_connection.create_collation(SQLITE_COLLATION, _compare)
        record.info[SQLITE_COLLATION] = True


_icu: dict[int, bool] = {}


def _has_icu(session: Session, engine: Engine) -> bool:
    if id(engine) not in _icu:
        found = session.scalar(text("SELECT 1 FROM pg_collation WHERE collname = :name"), {"name": ICU_COLLATION})
        _icu[id(engine)] = found is not None
    return _icu[id(engine)]


def by_pinyin(session: Session, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``column`` collated in pinyin order on this session's database (as is where neither
    collation exists)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.dialect.name == "sqlite":
        return column.collate(SQLITE_COLLATION)
    if engine.dialect.name == "postgresql" and _has_icu(session, engine):
        return column.collate(ICU_COLLATION)
    return column

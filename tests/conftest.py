"""Test database: SQLite always; PostgreSQL when QUNYUN_TEST_DATABASE_URL is set (CI sets it).

The schema is built once per run by the Alembic migrations; every test starts from empty tables
whose ids start again at 1. Under pytest-xdist each worker has a database of its own: its own
SQLite file, and on PostgreSQL ``<name>_<worker>`` beside the database the variable names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

TEST_DB_ENV = "QUNYUN_TEST_DATABASE_URL"
# pytest-xdist names its workers gw0, gw1, …; unset when the tests run in one process.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, only the tests that use the test database run: a test that asks for no
    database (directly or through its fixtures) gives the same answer on both, and runs in the
    SQLite stage. QUNYUN_TEST_EVERYTHING=1 runs them all anyway."""
    if not os.environ.get(TEST_DB_ENV) or os.environ.get("QUNYUN_TEST_EVERYTHING") == "1":
        return
    keep = [item for item in items if "database_url" in getattr(item, "fixturenames", ())]
    if len(keep) < len(items):
        kept = set(keep)
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = keep


def _worker_database(url: str) -> str:
    """The URL of this xdist worker's own database, created (through the ``postgres`` maintenance
    database) if it does not exist yet."""
    if not WORKER:
        return url
    from qunyun.db.session import make_engine

    parsed = make_url(url)
    name = f"{parsed.database}_{WORKER}"
    maintenance = make_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    with maintenance.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}) is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    maintenance.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _reset_postgres(url: str) -> None:
    from qunyun.db.session import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Passwords hashed in this process use argon2's cheapest parameters: at the production cost
    (64 MiB and four lanes per hash or check) the suite's few hundred logins and staff accounts
    took about a quarter of its time. Checking a password follows the parameters stored in its
    hash, so every hash made here is cheap to check. The production cost is pinned by
    tests/core/test_password_cost.py, in a process of its own."""
    from argon2 import PasswordHasher
    from argon2.profiles import CHEAPEST

    from qunyun.auth import passwords

    production = passwords._hasher
    passwords._hasher = PasswordHasher.from_parameters(CHEAPEST)
    yield
    passwords._hasher = production


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var_dir = tmp_path_factory.mktemp("var")
    url = os.environ.get(TEST_DB_ENV) or f"sqlite:///{(var_dir / 'test.db').as_posix()}"
    if url.startswith("postgresql"):
        url = _worker_database(url)
        _reset_postgres(url)
    os.environ["QUNYUN_DATABASE_URL"] = url
    os.environ["QUNYUN_VAR_DIR"] = str(var_dir)
    os.environ["QUNYUN_ENV"] = "test"
    os.environ.setdefault("QUNYUN_SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")

    from qunyun.config import get_settings
    from qunyun.db import session as db_session
    from qunyun.db.migrate import upgrade

    get_settings.cache_clear()
    db_session.get_engine.cache_clear()
    db_session.get_sessionmaker.cache_clear()
    upgrade(db_session.get_engine())
    yield url
    for engine in {*_engines, db_session.get_engine()}:
        engine.dispose()


_engines: set[Engine] = set()  # every engine handed to a test, closed when the run ends


@pytest.fixture
def engine(database_url: str) -> Engine:
    """The engine the application uses: a test that pointed the application at another database
    and back (tests/api/test_edge.py) leaves a new one in the cache, which later tests must get."""
    from qunyun.db.session import get_engine

    current = get_engine()
    _engines.add(current)
    return current


_postgres_reset: dict[str, str] = {}  # engine URL → the statement that empties its tables


def _postgres_reset_statement(engine: Engine) -> str:
    """One round trip that truncates only the tables a test dirtied: those with rows, or whose
    sequence handed out an id (``is_called``); with them, by CASCADE, the tables referencing
    them. TRUNCATE of every table cost a new file per table and index whatever it held; a test
    that wrote nothing now costs a few empty reads. TRUNCATE rather than DELETE: rows come back
    in the order they were inserted (a DELETE leaves free space that later inserts fill out of
    order, and some tests read rows without an ORDER BY)."""
    from qunyun.db.base import Base

    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.connect() as conn:
        owned = conn.execute(
            text(
                "SELECT t.relname, s.relname FROM pg_class s"
                " JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass"
                " AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
                " JOIN pg_class t ON t.oid = d.refobjid"
                " WHERE s.relkind = 'S' AND t.relnamespace = current_schema()::regnamespace"
                " AND t.relname = ANY(:tables)"
            ),
            {"tables": tables},
        ).all()
    sequences: dict[str, list[str]] = {}
    for table, sequence in owned:
        sequences.setdefault(table, []).append(sequence)
    body = ["DECLARE dirty text[] := '{}';", "BEGIN"]
    for name in tables:
        used = "".join(f" OR (SELECT is_called FROM {seq})" for seq in sorted(sequences.get(name, [])))
        body.append(f"IF EXISTS (SELECT 1 FROM {name}){used} THEN dirty := dirty || '{name}'::text; END IF;")
    body.append(
        "IF cardinality(dirty) > 0 THEN"
        " EXECUTE 'TRUNCATE ' || array_to_string(dirty, ', ') || ' RESTART IDENTITY CASCADE'; END IF;"
    )
    body.append("END")
    return "DO $$\n" + "\n".join(body) + "\n$$"


def _truncate(engine: Engine) -> None:
    """Empty every table; ids start again at 1."""
    from qunyun.db.base import Base

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            key = engine.url.render_as_string(hide_password=False)
            if key not in _postgres_reset:
                _postgres_reset[key] = _postgres_reset_statement(engine)
            conn.exec_driver_sql(_postgres_reset[key])
        else:
            # Only the tables with rows (one query finds them), children before parents.
            tables = [table.name for table in Base.metadata.sorted_tables]
            probe = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})" for name in tables)
            dirty = set(conn.exec_driver_sql(probe).scalars())
            for name in reversed(tables):
                if name in dirty:
                    conn.exec_driver_sql(f"DELETE FROM {name}")


@pytest.fixture
def db(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory on a database whose tables are empty when the test starts."""
    from qunyun.db.session import get_sessionmaker

    _truncate(engine)
    yield get_sessionmaker()


@pytest.fixture
def session(db: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging data; commit it yourself when other connections must see it."""
    s = db()
    try:
        yield s
    finally:
        s.rollback()
        s.close()


@pytest.fixture
def fixtures_dir() -> Path:
    return Path(__file__).parent / "fixtures"

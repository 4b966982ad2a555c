"""Test database: SQLite always; PostgreSQL when QUNYUN_TEST_DATABASE_URL is set (CI sets it).

The schema is built once per run by the Alembic migrations; every test starts from empty tables
whose ids start again at 1. Under pytest-xdist each worker has a database of its own: its own
SQLite file, and on PostgreSQL ``<name>_<worker>`` beside the database the variable names.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# Directories whose modules share what one process builds once: under ``--dist loadscope`` each
# is one unit of work, so one worker runs all of its modules. The browser tests' demo community
# is simulated once per process (tests/browser/conftest.py); split over two workers, both
# simulated it, minutes of CPU each time.
SHARED_SCOPES = ("tests/browser/",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` with the directories of SHARED_SCOPES each kept on one worker."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for prefix in SHARED_SCOPES:
                if nodeid.startswith(prefix):
                    return prefix
            return str(super()._split_scope(nodeid))

    return SharedScopeScheduling(config, log)


def _worker_database(url: str) -> str:
    """The URL of this xdist worker's own database, created (through the ``postgres`` maintenance
    database) if it does not exist yet.

    The test database commits without waiting for its WAL to reach the disk (``synchronous_commit
    = off``, set on the database so that every connection of the run has it): what a commit
    makes visible to other connections, and when, is unchanged; only a crash of PostgreSQL itself
    could lose the last commits, and no test crashes it. A commit's flush cost about 2.5 ms, and
    the PostgreSQL stage makes tens of thousands of them."""
    from qunyun.db.session import make_engine

    parsed = make_url(url)
    name = f"{parsed.database}_{WORKER}" if WORKER else str(parsed.database)
    maintenance = make_engine(parsed.set(database="postgres").render_as_string(hide_password=False))
    with maintenance.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}) is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
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


@dataclass(frozen=True)
class _PostgresReset:
    probe: str  # one query naming the tables a test dirtied
    sequences: dict[str, list[str]]  # table → the sequences it owns
    order: list[str]  # children before parents
    skip_foreign_keys: bool  # whether the role may turn off the foreign-key triggers (superuser)


_postgres_reset: dict[str, _PostgresReset] = {}  # engine URL → how to empty its tables


def _postgres_reset_plan(engine: Engine) -> _PostgresReset:
    """A table is dirty when it has rows or its sequence handed out an id (``is_called``): one
    query finds them, a test that wrote nothing costs a few empty reads."""
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
        superuser = bool(conn.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")))
    sequences: dict[str, list[str]] = {}
    for table, sequence in owned:
        sequences.setdefault(table, []).append(sequence)
    probe = " UNION ALL ".join(
        f"SELECT '{name}' WHERE EXISTS (SELECT 1 FROM {name})"
        + "".join(f" OR (SELECT is_called FROM {seq})" for seq in sorted(sequences.get(name, [])))
        for name in tables
    )
    return _PostgresReset(probe=probe, sequences=sequences, order=list(reversed(tables)), skip_foreign_keys=superuser)


def _reset_postgres_tables(engine: Engine) -> None:
    """Empty the dirty tables and restart their sequences, then VACUUM them.

    DELETE and VACUUM rather than TRUNCATE: a TRUNCATE must name every table that references a
    truncated one (CASCADE pulls in nearly all of them, since they all reference the
    organisation), and each table and index it names gets a new file while the old one is
    discarded — about 0.4 s per test here, whatever the test wrote. The VACUUM gives the emptied
    tables back their space (an empty table shrinks to no pages), so rows come back in the order
    they were inserted, as after a TRUNCATE: a DELETE alone leaves free space that later inserts
    fill out of order, and some tests read rows without an ORDER BY."""
    key = engine.url.render_as_string(hide_password=False)
    if key not in _postgres_reset:
        _postgres_reset[key] = _postgres_reset_plan(engine)
    plan = _postgres_reset[key]
    with engine.begin() as conn:
        dirty = set(conn.exec_driver_sql(plan.probe).scalars())
        if not dirty:
            return
        # Every row goes: checking each deleted row's references (a scan per row where the
        # referencing column has no index) would only slow the emptying of big tables.
        statements = ["SET LOCAL session_replication_role = replica"] if plan.skip_foreign_keys else []
        for name in plan.order:
            if name in dirty:
                statements.append(f"DELETE FROM {name}")
                statements.extend(f"SELECT setval('{seq}', 1, false)" for seq in plan.sequences.get(name, []))
        conn.exec_driver_sql(";\n".join(statements))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM " + ", ".join(name for name in plan.order if name in dirty))


def _truncate(engine: Engine) -> None:
    """Empty every table; ids start again at 1."""
    from qunyun.db.base import Base

    if engine.dialect.name == "postgresql":
        _reset_postgres_tables(engine)
        return
    with engine.begin() as conn:
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
    from qunyun.moderation import cache as moderation_cache

    _truncate(engine)
    # Moderation keeps each organisation's policy rows for a second per engine: the emptied
    # database reuses the organisations' ids, so the last test's policies must not outlive it.
    moderation_cache.forget_rows()
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

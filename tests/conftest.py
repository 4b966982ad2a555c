"""Test database: SQLite always; PostgreSQL when QUNYUN_TEST_DATABASE_URL is set (CI sets it).

The schema is built once per run by the Alembic migrations; every test starts from empty tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

TEST_DB_ENV = "QUNYUN_TEST_DATABASE_URL"


def _reset_postgres(url: str) -> None:
    from qunyun.db.session import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    var_dir = tmp_path_factory.mktemp("var")
    url = os.environ.get(TEST_DB_ENV) or f"sqlite:///{(var_dir / 'test.db').as_posix()}"
    if url.startswith("postgresql"):
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
    db_session.get_engine().dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    from qunyun.db.session import get_engine

    engine = get_engine()
    yield engine
    # Tests that point the app at another database rebuild the cached engine; this one's pooled
    # connections must still be closed before the interpreter exits.
    engine.dispose()


def _truncate(engine: Engine) -> None:
    from qunyun.db.base import Base

    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


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

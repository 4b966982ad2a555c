"""Two first imports at once into a database without the organisation: both succeed (issue 8,
point 8). On PostgreSQL the second import's organisation insert waits on the first one's
uncommitted row; it used to die with UniqueViolation on the slug once the first committed."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from qunyun.db.session import unit_of_work
from qunyun.ingestion.importer import ImportReport, import_file, import_stream, org_for_import
from qunyun.models import Group, Organisation
from tests.analytics.helpers import created, jsonl, sh

pytestmark = pytest.mark.usefixtures("db")


def _events(prefix: str) -> bytes:
    return jsonl([created(f"{prefix}-e{i}", sh("03-01", f"0{i}:00:00"), f"{prefix}-g{i}") for i in range(3)])


def _wait_until_blocked(engine: Engine, done: threading.Event) -> None:
    """Until another connection waits on a row lock (PostgreSQL), or the import has ended."""
    if engine.dialect.name != "postgresql":
        return  # SQLite: the second writer waits at BEGIN IMMEDIATE; nothing to line up
    with engine.connect() as conn:
        while not done.is_set():
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            )
            conn.rollback()
            if waiting:
                return
            done.wait(0.05)


def test_two_first_imports_at_once_both_succeed(engine: Engine) -> None:
    first_inserted = threading.Event()
    second_blocked = threading.Event()
    second_done = threading.Event()
    results: dict[str, Any] = {}

    def first() -> None:
        try:
            with unit_of_work() as session:
                org_id = org_for_import(session, "fresh")  # the row exists, uncommitted
                first_inserted.set()
                second_blocked.wait()
                results["first"] = import_stream(session, org_id, io.BytesIO(_events("a")))
        except BaseException as exc:  # reported by the assertions below
            results["first"] = exc
            first_inserted.set()

    def second() -> None:
        try:
            results["second"] = import_file(io.BytesIO(_events("b")), org_slug="fresh")
        except BaseException as exc:
            results["second"] = exc
        finally:
            second_done.set()

    a = threading.Thread(target=first)
    a.start()
    first_inserted.wait()
    b = threading.Thread(target=second)
    b.start()
    _wait_until_blocked(engine, second_done)
    second_blocked.set()
    a.join()
    b.join()

    assert isinstance(results["first"], ImportReport), results["first"]
    assert isinstance(results["second"], ImportReport), results["second"]
    assert results["first"].stored == results["second"].stored == 3
    with unit_of_work(write=False) as session:
        orgs = session.scalars(select(Organisation.id).where(Organisation.slug == "fresh")).all()
        assert len(orgs) == 1
        groups = session.scalars(select(Group.external_id).where(Group.org_id == orgs[0])).all()
        assert sorted(groups) == [f"{p}-g{i}" for p in "ab" for i in range(3)]

"""A live batch makes few round trips: on PostgreSQL the duplicate check and the group and member
lookups are one statement, the message texts go in with their events, the default connection's id
comes with the ingest lock; and the statements' text does not depend on the batch's size (so the
driver prepares them once). What is stored is the same on both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from qunyun.ingestion.service import ingest


def _now(minutes: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(minutes=30 - minutes)).isoformat()


def _message(event_id: str, member: str, text_: str | None = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "ts": _now(),
        "kind": "message.posted",
        "group": "g1",
        "member": member,
        "msg_type": "text",
        **({"text": text_} if text_ is not None else {}),
        **extra,
    }


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent on ``engine``'s connections meanwhile, through SQLAlchemy or straight
    to the driver's cursors (the ingestor's hot path; on PostgreSQL psycopg's cursors see both)."""
    sent: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    pg = engine.dialect.name == "postgresql"
    if not pg:
        event.listen(engine, "before_cursor_execute", before)
    else:
        import psycopg

        originals = {name: getattr(psycopg.Cursor, name) for name in ("execute", "executemany")}

        def counting(name: str) -> Any:
            def call(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
                sent.append(str(query))
                return originals[name](self, query, *args, **kwargs)

            return call

        for name in originals:
            setattr(psycopg.Cursor, name, counting(name))
    try:
        yield sent
    finally:
        if not pg:
            event.remove(engine, "before_cursor_execute", before)
        else:
            for name, original in originals.items():
                setattr(psycopg.Cursor, name, original)


def _reads(table: str, statement: str) -> bool:
    return re.search(rf"\b(FROM|JOIN) {table}\b", statement) is not None


def _texts(db: sessionmaker[Session]) -> dict[str, str]:
    with db() as s:
        rows = s.execute(
            text("SELECT e.external_id, t.text FROM message_texts t JOIN events e ON e.id = t.event_id")
        ).all()
    return {r[0]: r[1] for r in rows}


def test_a_live_batch_stores_each_text_once_and_withholds_a_deleted_messages(
    db: sessionmaker[Session], org_id: int
) -> None:
    with db() as s:
        ingest(
            s,
            org_id,
            [
                {"id": "j1", "ts": _now(-5), "kind": "member.joined", "group": "g1", "member": "m1"},
                # deleted on the platform before its message arrives
                {"id": "d1", "ts": _now(-4), "kind": "message.deleted", "group": "g1", "message": "pm-1"},
            ],
            platform="api",
            source="api",
        )
        s.commit()
    with db() as s:
        result = ingest(
            s,
            org_id,
            [
                _message("a", "m1"),
                _message("b", "m2", "second"),  # a member not seen before
                _message("a", "m1"),  # the same id again in the batch
                _message("c", "m1", "withheld", message="pm-1"),
                _message("e", "m1", "kept", message="pm-2"),
                _message("f", "m1", None),  # no text
                {"id": "j1", "ts": _now(-5), "kind": "member.joined", "group": "g1", "member": "m1"},  # stored before
            ],
            platform="api",
            source="api",
        )
        s.commit()
    assert (result.stored, result.duplicates) == (5, 2)
    assert _texts(db) == {"a": "hello", "b": "second", "e": "kept"}
    with db() as s:  # a redelivery adds no text and no row
        again = ingest(s, org_id, [_message("a", "m1"), _message("g", "m2", "new")], platform="api", source="api")
        s.commit()
    assert (again.stored, again.duplicates) == (1, 1)
    assert _texts(db) == {"a": "hello", "b": "second", "e": "kept", "g": "new"}


def test_a_live_batch_of_known_members_makes_one_lookup_and_no_separate_text_insert(
    db: sessionmaker[Session], engine: Engine, org_id: int
) -> None:
    with db() as s:
        ingest(s, org_id, [_message(f"warm-{m}", m) for m in ("m1", "m2", "m3")], platform="api", source="api")
        s.commit()
    batches: list[list[str]] = []
    for size in (1, 3):
        with _statements(engine) as sent, db() as s:
            ingest(
                s,
                org_id,
                [_message(f"n{size}-{i}", f"m{i % 3 + 1}") for i in range(size)],
                platform="api",
                source="api",
            )
            s.commit()
        batches.append(sent)
    assert len(_texts(db)) == 3 + 1 + 3
    if engine.dialect.name != "postgresql":
        return  # SQLite: no round trips to save (the same process), and other statements
    for sent in batches:
        reads_members = [q for q in sent if _reads("members", q)]
        assert len(reads_members) == 1, reads_members
        assert _reads("events", reads_members[0]) and _reads("groups", reads_members[0])
        assert not [q for q in sent if q.lstrip().startswith("INSERT INTO message_texts")]
        assert not [q for q in sent if "FROM connections" in q and "pg_advisory_xact_lock" not in q]
    # The same statements whatever the batch's size: prepared once per connection.
    ingest_statements = [[q for q in sent if "events" in q or "member_days" in q] for sent in batches]
    assert ingest_statements[0] == ingest_statements[1]

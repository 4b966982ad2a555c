"""Inserting under a unique key another writer may take first: only the savepoint rolls back."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.unique import insert_or_get, try_insert
from qunyun.models import Job, JobStatus
from qunyun.timeutil import utcnow


def _job(key: str, kind: str = "test.unique") -> Job:
    now = utcnow()
    return Job(
        kind=kind,
        payload={},
        key=key,
        status=JobStatus.QUEUED,
        priority=0,
        run_at=now,
        attempts=0,
        max_attempts=1,
        created_at=now,
    )


def _taken_elsewhere(db: sessionmaker[Session], key: str) -> int:
    with db() as other:
        job = _job(key, kind="test.first")
        other.add(job)
        other.commit()
        return job.id


def _by_key(session: Session, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.key == key))


def test_insert_or_get_inserts_a_new_key(session: Session) -> None:
    job, created = insert_or_get(session, _job("k1"), lambda: _by_key(session, "k1"))
    assert created and job.id is not None


def test_insert_or_get_returns_the_row_a_concurrent_writer_committed(
    db: sessionmaker[Session], session: Session
) -> None:
    first = _taken_elsewhere(db, "k2")  # before this session writes: SQLite has one writer at a time
    session.add(_job("mine"))
    session.flush()
    job, created = insert_or_get(session, _job("k2"), lambda: _by_key(session, "k2"))
    assert not created and job.id == first and job.kind == "test.first"
    session.commit()  # the caller's own work survived the rolled-back savepoint
    assert _by_key(session, "mine") is not None


def test_insert_or_get_passes_the_error_when_the_lookup_finds_nothing(
    db: sessionmaker[Session], session: Session
) -> None:
    _taken_elsewhere(db, "k3")
    with pytest.raises(IntegrityError):
        insert_or_get(session, _job("k3"), lambda: None)


def test_try_insert_says_whether_the_row_went_in(db: sessionmaker[Session], session: Session) -> None:
    _taken_elsewhere(db, "k5")
    assert try_insert(session, _job("k4"))
    assert not try_insert(session, _job("k5"))
    session.commit()
    assert _by_key(session, "k4") is not None

"""Message text is personal data: the hourly job deletes it once it is older than the retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.config import get_settings
from qunyun.db.session import unit_of_work
from qunyun.models import Event, EventKind, Job, JobRun, MessageText, MsgType, Organisation
from qunyun.privacy.tasks import purge_message_text
from qunyun.timeutil import day_key, utcnow
from qunyun.worker.runner import Worker
from qunyun.worker.scheduler import periodic_jobs

Factory = sessionmaker[Session]
PURGE = "privacy.purge_message_text"


def add_messages(db: Factory, ages: dict[str, timedelta]) -> datetime:
    """One message event with text per ``external id → age``; returns the 'now' the ages count from."""
    now = utcnow()
    with unit_of_work(db) as s:
        org = Organisation(name="Privacy", slug="privacy", created_at=now)
        s.add(org)
        s.flush()
        for external_id, age in ages.items():
            ts = now - age
            event = Event(
                org_id=org.id,
                external_id=external_id,
                kind=EventKind.MESSAGE_POSTED,
                ts=ts,
                day=day_key(ts.date()),
                msg_type=MsgType.TEXT,
                length=5,
                source="test",
            )
            s.add(event)
            s.flush()
            s.add(MessageText(event_id=event.id, ts=ts, text=f"hello from {external_id}"))
    return now


def texts_left(db: Factory) -> set[str]:
    with db() as s:
        rows = s.scalars(select(Event.external_id).join(MessageText, MessageText.event_id == Event.id))
        return set(rows)


def event_count(db: Factory) -> int:
    with db() as s:
        return s.scalar(select(func.count()).select_from(Event)) or 0


def test_text_older_than_the_retention_is_deleted(db: Factory) -> None:
    now = add_messages(
        db,
        {
            "old": timedelta(days=31),
            "just-over": timedelta(days=30, seconds=1),
            "just-under": timedelta(days=29, hours=23),
            "fresh": timedelta(hours=1),
        },
    )

    with unit_of_work(db) as s:
        assert purge_message_text(s, now=now, retention_days=30) == 2

    assert texts_left(db) == {"just-under", "fresh"}
    assert event_count(db) == 4  # the event log keeps type and length


def test_zero_retention_deletes_all_text(db: Factory) -> None:
    now = add_messages(db, {"old": timedelta(days=400), "fresh": timedelta(seconds=1)})

    with unit_of_work(db) as s:
        assert purge_message_text(s, now=now, retention_days=0) == 2

    assert texts_left(db) == set()
    assert event_count(db) == 2


@pytest.fixture
def retention_days(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("QUNYUN_MESSAGE_TEXT_RETENTION_DAYS", "7")
    get_settings.cache_clear()
    yield 7
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_hourly_job_purges_through_the_worker(db: Factory, retention_days: int) -> None:
    assert any(p.kind == PURGE and p.every == timedelta(hours=1) for p in periodic_jobs())
    add_messages(db, {"old": timedelta(days=retention_days, minutes=1), "fresh": timedelta(days=1)})
    worker = Worker("privacy:1", factory=db)

    [key] = [k for k in worker.schedule_periodic(force=True) if k.startswith(PURGE)]
    assert [k for k in worker.schedule_periodic(force=True) if k.startswith(PURGE)] == []  # once an hour
    while worker.run_next():
        pass

    assert texts_left(db) == {"fresh"}
    with db() as s:
        job = s.scalars(select(Job).where(Job.key == key)).one()
        assert job.status == "done"
        assert s.scalars(select(JobRun.outcome).where(JobRun.job_id == job.id)).all() == ["done"]

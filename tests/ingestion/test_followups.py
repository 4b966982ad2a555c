"""Follow-ups see the parsed event (issue 9, point 5): inline in the ingest transaction, or as a
job enqueued in it; one registry of domain modules for the ingestor and the worker; groups
created by ingestion belong to a connection (point 1's ingestion part)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import qunyun
from qunyun.db.base import to_micros
from qunyun.errors import NotFound
from qunyun.ingestion import followups
from qunyun.ingestion.followups import LiveEvent, follow_up, unregister
from qunyun.ingestion.service import ingest
from qunyun.models import Connection, EventKind, Group, Job, Member, MessageText, MsgType
from qunyun.modules import DOMAIN_MODULES, load_domain_modules
from qunyun.team.service import create_organisation
from qunyun.worker.queue import handler_for
from tests.analytics.helpers import join, leave, message, paid
from tests.connections.helpers import connection_row

JOB = "test.followup_job"


def recent(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


@pytest.fixture
def org_id(session: Session) -> int:
    return create_organisation(session, name="Org", slug="org").id


@pytest.fixture
def inline_calls() -> Iterator[list[list[LiveEvent]]]:
    calls: list[list[LiveEvent]] = []

    def seen(session: Session, org_id: int, events: list[LiveEvent]) -> None:
        calls.append(events)

    follow_up(EventKind.MEMBER_JOINED, EventKind.MESSAGE_POSTED)(seen)
    yield calls
    unregister(seen)


@pytest.fixture
def job_calls() -> Iterator[list[tuple[int, list[LiveEvent]]]]:
    calls: list[tuple[int, list[LiveEvent]]] = []

    def later(session: Session, org_id: int, events: list[LiveEvent]) -> None:
        calls.append((org_id, events))

    follow_up(EventKind.MESSAGE_POSTED, EventKind.MESSAGE_DELETED, job=JOB)(later)
    yield calls
    unregister(later)


def live(session: Session, org_id: int, events: list[dict[str, Any]], **kw: Any) -> None:
    ingest(session, org_id, events, platform="simulator", source="test", live=True, **kw)


def ids(session: Session, model: Any, external_id: str) -> int:
    return session.scalars(select(model.id).where(model.external_id == external_id)).one()


def test_an_inline_follow_up_sees_the_parsed_events_of_its_kinds(
    session: Session, org_id: int, inline_calls: list[list[LiveEvent]]
) -> None:
    at = recent(2)
    live(
        session,
        org_id,
        [
            join("j0", recent(3), "g1", "boss"),
            join("j1", at, "g1", "m1", channel="sms", inviter="boss", scene="invite", member_name="小王"),
            message("x1", at, "g1", "m1", text="大家好", message="mid-1", member_name="小王"),
            leave("l1", recent(1), "g1", "boss", reason="left"),  # a kind it did not ask for
            paid("p1", recent(1), "o1", "m1", "9.90"),
        ],
    )
    [events] = inline_calls
    assert [e.external_id for e in events] == ["j0", "j1", "x1"]
    joined, posted = events[1], events[2]
    connection = session.scalars(select(Connection.id).where(Connection.org_id == org_id)).one()
    assert joined == LiveEvent(
        event_id=joined.event_id,
        external_id="j1",
        kind=EventKind.MEMBER_JOINED,
        ts=to_micros(datetime.fromisoformat(at)),
        connection_id=connection,
        group_id=ids(session, Group, "g1"),
        group="g1",
        member_id=ids(session, Member, "m1"),
        member="m1",
        member_name="小王",
        channel="sms",
        channel_id=joined.channel_id,
        inviter="boss",
        inviter_id=ids(session, Member, "boss"),
        scene="invite",
    )
    assert joined.channel_id is not None and joined.at == datetime.fromisoformat(at)
    assert (posted.kind, posted.text, posted.message, posted.msg_type) == (
        EventKind.MESSAGE_POSTED,
        "大家好",
        "mid-1",
        MsgType.TEXT,
    )
    # redeliveries reach no follow-up; imported history neither
    live(session, org_id, [message("x1", at, "g1", "m1", text="大家好")])
    ingest(session, org_id, [message("x2", at, "g1", "m1")], platform="simulator", source="test", live=False)
    assert len(inline_calls) == 1


def test_a_job_follow_up_is_enqueued_with_the_events_and_reads_their_text_back(
    db: sessionmaker[Session], job_calls: list[tuple[int, list[LiveEvent]]]
) -> None:
    with db() as s:
        org = create_organisation(s, name="Org", slug="org").id
        live(
            s,
            org,
            [
                join("j1", recent(3), "g1", "m1"),
                message("x1", recent(2), "g1", "m1", text="秘密 text", message="mid-1"),
                message("x2", recent(2), "g1", "m1", msg_type="image"),
                {"id": "d1", "ts": recent(1), "kind": "message.deleted", "group": "g1", "message": "mid-9"},
            ],
        )
        assert job_calls == []  # nothing runs inline
        job = s.scalars(select(Job).where(Job.kind == JOB)).one()
        assert job.org_id == org
        assert "秘密" not in str(job.payload)  # message text never goes into a job's payload
        assert [e["external_id"] for e in job.payload["events"]] == ["x1", "x2", "d1"]
        # the job and the events commit or roll back together
        s.rollback()
        assert s.scalar(select(func.count()).select_from(Job)) == 0
    with db() as s:
        org = create_organisation(s, name="Org", slug="org").id
        live(s, org, [message("x1", recent(2), "g1", "m1", text="秘密 text", message="mid-1")])
        s.commit()
        job = s.scalars(select(Job).where(Job.kind == JOB)).one()
        handler = handler_for(JOB)
        assert handler is not None
        handler(s, job.payload)
        [(seen_org, [event])] = job_calls
        assert seen_org == org
        assert (event.external_id, event.text, event.message, event.group) == ("x1", "秘密 text", "mid-1", "g1")
        # text purged by retention by the time the job runs: the job sees None, never a stale copy
        s.execute(MessageText.__table__.delete())
        handler(s, job.payload)
        assert job_calls[1][1][0].text is None


def test_a_live_batch_larger_than_a_job_is_split(
    session: Session, org_id: int, job_calls: list[tuple[int, list[LiveEvent]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(followups, "JOB_EVENTS", 2)
    live(session, org_id, [message(f"x{i}", recent(1), "g1", "m1") for i in range(5)])
    payloads = session.scalars(select(Job.payload).where(Job.kind == JOB).order_by(Job.id)).all()
    assert [[e["external_id"] for e in p["events"]] for p in payloads] == [["x0", "x1"], ["x2", "x3"], ["x4"]]


def test_a_follow_up_names_its_kinds() -> None:
    with pytest.raises(ValueError):
        follow_up()


# -- one registry of domain modules --------------------------------------------------------------


def test_the_worker_and_the_ingestor_load_the_same_domain_modules() -> None:
    import qunyun.worker.builtin  # what every worker imports

    load_domain_modules()
    for kind in ("connectors.perform", "privacy.purge_message_text"):
        assert handler_for(kind) is not None, kind
    from qunyun.onboarding.followups import welcome_new_members

    assert any(f.handler is welcome_new_members for f in followups._REGISTRY)
    assert "qunyun.onboarding.followups" in DOMAIN_MODULES
    # worker/builtin.py lists no module of its own: the registry is qunyun/modules.py
    builtin = Path(qunyun.__file__).parent / "worker" / "builtin.py"
    imported = [n for n in ast.walk(ast.parse(builtin.read_text())) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [getattr(n, "module", None) for n in imported] == ["__future__", "qunyun.modules"]


# -- kinds ---------------------------------------------------------------------------------------


def test_no_event_kind_is_written_as_a_number_in_sql() -> None:
    """``kind IN (2, 3)`` and ``kind = 2`` are built from EventKind (models/event.py ``kind_in``)."""
    literal = re.compile(r"\bkind\s*(?:IN\s*\(\s*\d|=\s*\d)", re.IGNORECASE)
    offenders = []
    for path in sorted(Path(qunyun.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and literal.search(node.value):
                offenders.append(f"{path.name}:{node.lineno}: {node.value.strip()[:80]}")
    assert offenders == []


def test_every_event_kind_has_a_name() -> None:
    from qunyun.models.event import KIND_BY_NAME, KIND_NAMES

    assert set(KIND_NAMES) == set(EventKind) and len(KIND_BY_NAME) == len(EventKind)


# -- connections ---------------------------------------------------------------------------------


def _connection(session: Session, org_id: int, name: str) -> int:
    row = connection_row(org_id, name)
    session.add(row)
    session.flush()
    return row.id


def test_groups_created_by_ingestion_belong_to_the_connection_the_events_came_through(
    session: Session, org_id: int, inline_calls: list[list[LiveEvent]]
) -> None:
    second = _connection(session, org_id, "second bot")
    live(session, org_id, [join("j1", recent(2), "g1", "m1")], connection_id=second)
    live(session, org_id, [join("j2", recent(1), "g2", "m1")])
    owner = {g: c for g, c in session.execute(select(Group.external_id, Group.connection_id))}
    default = session.scalars(
        select(Connection.id).where(Connection.org_id == org_id, Connection.name == "simulator")
    ).one()
    assert owner == {"g1": second, "g2": default}
    assert [c[0].connection_id for c in inline_calls] == [second, default]
    # an existing group keeps its connection
    live(session, org_id, [join("j3", recent(1), "g1", "m2")], connection_id=default)
    session.expire_all()
    assert session.scalar(select(Group.connection_id).where(Group.external_id == "g1")) == second


def test_another_organisation_s_connection_is_not_found(session: Session, org_id: int) -> None:
    other = create_organisation(session, name="Other", slug="other").id
    theirs = _connection(session, other, "theirs")
    with pytest.raises(NotFound) as caught:
        live(session, org_id, [join("j1", recent(1), "g1", "m1")], connection_id=theirs)
    assert caught.value.field == "connection_id"
    assert session.scalar(select(func.count()).select_from(Group)) == 0

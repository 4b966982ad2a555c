"""A live join into a group whose playbook has a welcome message queues exactly one greeting."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import qunyun.connectors.tasks  # noqa: F401  (registers connectors.perform)
from qunyun.db.session import unit_of_work
from qunyun.ingestion.importer import import_stream
from qunyun.ingestion.service import ingest
from qunyun.models import Group, Job, OutboundAction, Playbook, StaffTask
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow

WELCOME = "欢迎加入骑行群！请改群名片：城市-昵称"


def _join(event_id: str, member: str, group: str = "G1") -> dict[str, Any]:
    return {
        "id": event_id,
        "ts": "2026-03-01T09:00:00+08:00",
        "kind": "member.joined",
        "group": group,
        "member": member,
    }


def _setup(db: sessionmaker[Session], platform: str) -> tuple[int, int]:
    with unit_of_work(db) as session:
        org = create_organisation(session, name="Acme", slug="acme")
        owner = create_staff(session, org.id, username="owner1", password="password-1", role="owner")
        playbook = Playbook(org_id=org.id, name="华东", welcome_text=WELCOME, settings={}, created_at=utcnow())
        session.add(playbook)
        session.flush()
        ingest(
            session,
            org.id,
            [
                {
                    "id": "g1",
                    "ts": "2026-03-01T08:00:00+08:00",
                    "kind": "group.created",
                    "group": "G1",
                    "name": "华东1群",
                }
            ],
            platform=platform,
            source="test",
        )
        group = session.scalars(select(Group)).one()
        group.playbook_id = playbook.id
        group.owner_id = owner.id
        return org.id, owner.id


def test_live_join_queues_one_welcome_and_a_redelivery_adds_nothing(db: sessionmaker[Session]) -> None:
    org_id, _ = _setup(db, "simulator")
    for _ in range(2):
        with unit_of_work(db) as session:
            ingest(session, org_id, [_join("j1", "M1")], platform="simulator", source="test")
    with unit_of_work(db, write=False) as session:
        actions = session.scalars(select(OutboundAction)).all()
        assert [(a.action, a.state, a.payload["text"]) for a in actions] == [("send_welcome", "queued", WELCOME)]
        assert actions[0].member_id is not None
        assert session.scalar(select(Job.kind).where(Job.kind == "connectors.perform")) == "connectors.perform"


def test_where_no_client_can_post_the_welcome_it_is_a_task_for_the_owner(db: sessionmaker[Session]) -> None:
    from qunyun.worker.queue import handler_for

    org_id, owner_id = _setup(db, "wecom")  # WeCom is declared, its client comes later
    with unit_of_work(db) as session:
        ingest(session, org_id, [_join("j1", "M1")], platform="wecom", source="test")
    with unit_of_work(db) as session:
        job = session.scalars(select(Job).where(Job.kind == "connectors.perform")).one()
        perform = handler_for(job.kind)
        assert perform is not None
        perform(session, job.payload)
    with unit_of_work(db, write=False) as session:
        action = session.scalars(select(OutboundAction)).one()
        assert action.state == "delegated"
        task = session.scalars(select(StaffTask)).one()
        assert task.assignee_id == owner_id


def test_imported_history_greets_nobody(db: sessionmaker[Session]) -> None:
    import io

    import orjson

    org_id, _ = _setup(db, "import")
    with unit_of_work(db) as session:
        import_stream(session, org_id, io.BytesIO(orjson.dumps(_join("j1", "M1")) + b"\n"), platform="import")
    with unit_of_work(db, write=False) as session:
        assert session.scalars(select(OutboundAction)).all() == []

"""The live codes' background work: invite links from the connector, the next group when every
group is full (created from the playbook where the platform can, else a task, once), and the
owner's task before a group QR image expires."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import qunyun.connectors.tasks  # noqa: F401  (registers connectors.perform)
from qunyun.connections.service import default_connection
from qunyun.connectors.dispatch import PERFORM_JOB
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.db.session import unit_of_work
from qunyun.livecodes import service
from qunyun.livecodes.jobs import maintain  # registers the live codes' jobs too
from qunyun.livecodes.schemas import PoolEntryIn
from qunyun.models import Group, Job, LiveCode, LiveCodeGroup, OutboundAction, Playbook, StaffTask
from qunyun.timeutil import utcnow
from qunyun.worker.queue import handler_for
from tests.livecodes.helpers import PNG, add_group, make_code, make_org, scan


def run_job(session: Session, kind: str, payload: dict[str, object]) -> None:
    handler = handler_for(kind)
    assert handler is not None
    handler(session, payload)


def run_queued(db: sessionmaker[Session], kind: str) -> int:
    """Run every queued job of ``kind`` (each in its own transaction, as a worker would)."""
    ran = 0
    with unit_of_work(db) as s:
        jobs = [(j.id, j.payload) for j in s.scalars(select(Job).where(Job.kind == kind, Job.status == "queued"))]
    for job_id, payload in jobs:
        with unit_of_work(db) as s:
            run_job(s, kind, payload)
            job = s.get(Job, job_id)
            assert job is not None
            job.status = "done"
        ran += 1
    return ran


def test_a_full_pool_gives_the_owner_one_task_closed_when_a_group_is_added(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    add_group(org, "a")
    code_id, code = make_code(org, ["a"], default_limit=1)
    for _ in range(4):
        scan(org, code)
    assert run_queued(db, "livecodes.pool_full") == 1
    with unit_of_work(db) as s:
        run_job(s, "livecodes.pool_full", {"live_code_id": code_id})  # a rerun opens nothing more
        tasks = s.scalars(select(StaffTask).where(StaffTask.kind == "create_group")).all()
        assert [(t.assignee_id, t.status) for t in tasks] == [(org.owner, "open")]
        assert "测试活码" in tasks[0].title or "测试活码" in str(tasks[0].title_values)
    add_group(org, "b")
    with unit_of_work(db) as s:
        service.add_group(s, org.lead_scope, code_id, PoolEntryIn(group_id=org.groups["b"]))
    with unit_of_work(db, write=False) as s:
        task = s.scalars(select(StaffTask).where(StaffTask.kind == "create_group")).one()
        row = s.get(LiveCode, code_id)
        assert task.status == "done" and row is not None and row.full_since is None and row.full_task_id is None
    assert scan(org, code).entry.group_name == "群b"  # type: ignore[union-attr]


def test_groups_on_a_platform_with_links_get_one_and_scans_go_to_it(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    with unit_of_work(db) as s:
        connection_id = default_connection(s, org.id, "simulator").id
    connector = SimulatorConnector(seed=3)
    connector.sim.create_group("骑行 1 群", group_id="sim-a", capacity=300)
    connector.sim.drain_events()
    add_group(org, "a", platform="simulator", connection_id=connection_id, capacity=300, members=20, qr=False)
    with unit_of_work(db) as s:
        group = s.get(Group, org.groups["a"])
        assert group is not None
        group.external_id = "sim-a"
    _, code = make_code(org, ["a"])
    with bind(connection_id, connector), unit_of_work(db) as s:
        entry = s.scalars(select(LiveCodeGroup)).one()
        assert entry.scan_limit == 280  # capacity minus members: no 200 cap where links are made
        action = s.get(OutboundAction, entry.invite_action_id)
        assert action is not None and action.action == "create_invite_link"
        assert action.payload["member_limit"] == 280
        run_job(s, PERFORM_JOB, {"action_id": action.id})
    result = scan(org, code)
    assert result.outcome == "routed" and (result.invite_link or "").startswith("sim://")
    link = connector.sim.link(result.invite_link or "")
    assert link.member_limit == 280 and link.group == "sim-a"
    with unit_of_work(db) as s:
        assert maintain(s, utcnow()).links == [entry.id]


def test_a_full_pool_with_a_playbook_asks_the_platform_for_the_next_group(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    with unit_of_work(db) as s:
        connection_id = default_connection(s, org.id, "simulator").id
        playbook = Playbook(org_id=org.id, name="骑行", naming_template="骑行{n}群", settings={}, created_at=utcnow())
        s.add(playbook)
        s.flush()
        playbook_id = playbook.id
    connector = SimulatorConnector(seed=4)
    add_group(org, "a", platform="simulator", connection_id=connection_id)  # its link is never made here
    _, code = make_code(org, ["a"], default_limit=1, playbook_id=playbook_id, connection_id=connection_id)
    scan(org, code)
    assert scan(org, code).outcome == "fallback"
    with bind(connection_id, connector):
        assert run_queued(db, "livecodes.pool_full") == 1
        with unit_of_work(db) as s:
            action = s.scalars(select(OutboundAction).where(OutboundAction.action == "create_group")).one()
            assert action.payload == {"name": "骑行2群"}
            run_job(s, PERFORM_JOB, {"action_id": action.id})
        with unit_of_work(db) as s:
            assert len(maintain(s, utcnow()).adopted) == 1
            links = s.scalars(
                select(OutboundAction).where(
                    OutboundAction.action == "create_invite_link", OutboundAction.group_id != org.groups["a"]
                )
            ).all()
            assert len(links) == 1
            run_job(s, PERFORM_JOB, {"action_id": links[0].id})
        with unit_of_work(db) as s:
            assert maintain(s, utcnow()).adopted == []  # once
            assert not s.scalars(select(StaffTask).where(StaffTask.kind == "create_group")).all()
    created = scan(org, code)
    assert created.outcome == "routed" and created.entry is not None and created.entry.group_name == "骑行2群"


def test_the_owner_is_told_before_a_qr_image_expires_once_and_a_new_upload_answers_it(
    db: sessionmaker[Session],
) -> None:
    org = make_org(db)
    add_group(org, "a", qr=False)
    make_code(org, ["a"])  # the default warning: a day before
    now = utcnow()
    with unit_of_work(db) as s:
        service.upload_qr_image(s, org.lead_scope, org.groups["a"], PNG, expires_at=now + timedelta(days=3))
    with unit_of_work(db) as s:
        assert maintain(s, now).alerts == []
        assert len(maintain(s, now + timedelta(days=2)).alerts) == 1
        assert maintain(s, now + timedelta(days=2, hours=1)).alerts == []
        task = s.scalars(select(StaffTask).where(StaffTask.kind == "qr_expiry")).one()
        assert task.assignee_id == org.owner and task.status == "open"
        assert task.due_at == now + timedelta(days=3) - timedelta(hours=1)
    with unit_of_work(db) as s:
        service.upload_qr_image(s, org.lead_scope, org.groups["a"], PNG + b"new", expires_at=now + timedelta(days=7))
    with unit_of_work(db, write=False) as s:
        assert s.scalars(select(StaffTask.status).where(StaffTask.kind == "qr_expiry")).all() == ["done"]

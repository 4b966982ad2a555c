"""Onboarding under concurrency: members join in parallel (several ingesting threads) while
several workers greet them and grant their benefits at once. No code is given twice, none is
lost, the pool running empty opens one task, and every member is named in exactly one welcome.
On PostgreSQL the jobs race for real (FOR UPDATE SKIP LOCKED, row locks, the unique keys); on
SQLite the write lock takes them one at a time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.connections.service import default_connection
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector, VirtualClock
from qunyun.db.session import unit_of_work
from qunyun.ingestion.service import ingest
from qunyun.models import Group, Job, JobStatus, Playbook, Role, StaffTask
from qunyun.models.onboarding import BenefitGrant, CouponCode, OnboardingNotice
from qunyun.onboarding.benefits import import_codes
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from qunyun.worker.runner import Worker, load_handler_modules

JOINERS = 4  # threads ingesting joins
WORKERS = 4  # threads granting benefits
MEMBERS = 200
GROUPS = 4
T0 = datetime.fromisoformat("2026-03-02T10:00:00+08:00")


def _arrange(db: sessionmaker[Session], codes: int) -> tuple[int, int, SimulatorConnector]:
    load_handler_modules()
    with unit_of_work(db) as s:
        org = create_organisation(s, name="骑迹单车", slug="qiji")
        owner = create_staff(s, org.id, username="owner1", password="password-1", role="owner")
        lead = create_staff(s, org.id, username="lead1", password="password-1", role="lead")
        # Welcomes with no raid protection: greet jobs run while the joins still come in.
        playbook = Playbook(
            org_id=org.id,
            name="地方骑友群",
            welcome_text="欢迎 {nickname}！",
            welcome_interval_seconds=0,
            settings={},
            created_at=utcnow(),
        )
        s.add(playbook)
        s.flush()
        ingest(
            s,
            org.id,
            [
                {"id": f"g{n}", "ts": T0.isoformat(), "kind": "group.created", "group": f"G{n}", "name": f"华东{n}群"}
                for n in range(GROUPS)
            ],
            platform="simulator",
            source="test",
        )
        for group in s.scalars(select(Group).where(Group.org_id == org.id)):
            group.playbook_id, group.owner_id = playbook.id, owner.id
        import_codes(
            s, Scope(lead.id, org.id, Role.LEAD), playbook.id, "\n".join(f"CODE-{n:04d}" for n in range(codes)).encode()
        )
        connection_id = default_connection(s, org.id, "simulator").id
        org_id = org.id
    # The platform's clock stands after every join: each is due at once.
    connector = SimulatorConnector(seed=3, clock=VirtualClock(T0 + timedelta(hours=1)))
    for n in range(GROUPS):
        connector.sim.create_group(f"华东{n}群", group_id=f"G{n}")
    for n in range(MEMBERS):
        connector.sim.add_member(f"m{n}", display_name=f"骑友{n}")
    return org_id, connection_id, connector


def _join(n: int) -> dict[str, Any]:
    return {
        "id": f"j{n}",
        "ts": (T0 + timedelta(seconds=n)).isoformat(),
        "kind": "member.joined",
        "group": f"G{n % GROUPS}",
        "member": f"m{n}",
        "member_name": f"骑友{n}",
    }


def _race(db: sessionmaker[Session], org_id: int) -> None:
    """JOINERS threads ingest the joins one at a time while WORKERS threads run the jobs."""
    errors: list[BaseException] = []
    start = threading.Barrier(JOINERS + WORKERS)
    joined = threading.Event()
    remaining = list(range(MEMBERS))
    lock = threading.Lock()

    def joiner() -> None:
        try:
            start.wait(timeout=30)
            while True:
                with lock:
                    if not remaining:
                        return
                    n = remaining.pop()
                with unit_of_work(db) as s:
                    ingest(s, org_id, [_join(n)], platform="simulator", source="test", live=True)
        except BaseException as exc:
            errors.append(exc)

    def worker(name: str) -> None:
        try:
            runner = Worker(name, factory=db, batch=5)
            start.wait(timeout=30)
            idle = 0
            while idle < 3:
                jobs = runner.claim_batch()
                if jobs:
                    runner.execute_batch(jobs)
                    idle = 0
                    continue
                if joined.is_set():
                    idle += 1
                time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=joiner) for _ in range(JOINERS)]
    workers = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(WORKERS)]
    for thread in threads + workers:
        thread.start()
    for thread in threads:
        thread.join(120)
    joined.set()
    for thread in workers:
        thread.join(120)
    assert not errors, errors
    with db() as s:
        live = Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
        left = s.scalar(select(func.count()).select_from(Job).where(live))
        assert left == 0


@pytest.mark.parametrize(("codes", "given", "missed"), [(150, 150, 50), (250, 200, 0)])
def test_parallel_joins_are_each_welcomed_once_and_never_get_a_code_twice_nor_lose_one(
    db: sessionmaker[Session], codes: int, given: int, missed: int
) -> None:
    org_id, connection_id, connector = _arrange(db, codes)
    with bind(connection_id, connector):
        _race(db, org_id)
    with db() as s:
        grants = list(s.scalars(select(BenefitGrant)))
        by_status = Counter(g.status for g in grants)
        assert by_status == Counter({"given": given, "missed": missed} if missed else {"given": given})
        handed = [g.code for g in grants if g.code is not None]
        assert len(set(handed)) == len(handed) == given  # no code twice
        taken = dict(s.execute(select(CouponCode.code, CouponCode.grant_id)).all())
        assert len(taken) == codes
        assert {code for code, grant in taken.items() if grant is not None} == set(handed)  # none lost
        assert sum(1 for grant in taken.values() if grant is None) == codes - given
        tasks = list(s.scalars(select(StaffTask).where(StaffTask.kind == "other")))
        assert len(tasks) == (1 if missed else 0)
    # What the members received: one private message each, every code in exactly one of them.
    received = [m.text.rsplit("：", 1)[1] for m in connector.sim.state.direct_messages]
    assert sorted(received) == sorted(handed)
    assert len({m.member for m in connector.sim.state.direct_messages}) == given
    # Every member named in exactly one welcome.
    with db() as s:
        assert {n.status for n in s.scalars(select(OnboardingNotice))} == {"sent"}
    welcomed = [m for g in range(GROUPS) for m in connector.sim.messages_in(f"G{g}") if m.by_bot]
    mentioned = [word[1:] for m in welcomed for word in m.text.split() if word.startswith("@")]
    assert sorted(mentioned) == sorted(f"m{n}" for n in range(MEMBERS))

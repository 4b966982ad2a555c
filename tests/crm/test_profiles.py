"""The profile sync job asks the platform for members' personas with no transaction open, then
writes what it got with the job's completion; an erasure that came meanwhile wins."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from qunyun.connections.service import default_connection
from qunyun.connectors.base import MemberProfile
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.crm.profiles import SYNC_JOB, request_profile_sync
from qunyun.models import Job, Member
from qunyun.team.service import create_organisation
from qunyun.timeutil import utcnow
from qunyun.worker.runner import Worker


class WatchedSimulator(SimulatorConnector):
    """A simulator that runs ``during`` while it is asked for profiles (or fails if told to)."""

    during: Callable[[], None] | None = None
    failure: Exception | None = None

    def fetch_member_profiles(self, external_ids: Sequence[str]) -> dict[str, MemberProfile]:
        if self.during is not None:
            self.during()
        if self.failure is not None:
            raise self.failure
        return super().fetch_member_profiles(external_ids)


def elsewhere(db: sessionmaker[Session], statement: object) -> None:
    """Run ``statement`` in a session of its own, committed, giving up on a lock after 3 s."""
    with db() as s:
        sqlite = s.get_bind().dialect.name == "sqlite"
        s.execute(text("PRAGMA busy_timeout = 3000" if sqlite else "SET LOCAL lock_timeout = '3s'"))
        try:
            s.execute(statement)  # type: ignore[call-overload]
            s.commit()
        finally:
            if sqlite:
                s.execute(text("PRAGMA busy_timeout = 30000"))
                s.rollback()


@pytest.fixture
def world(db: sessionmaker[Session]) -> Iterator[tuple[int, dict[str, int], WatchedSimulator]]:
    """An organisation with three members on its simulator connection, which knows their
    personas; the sync of all three is queued."""
    platform = WatchedSimulator(seed=1)
    for key, name, gender in (("u1", "阿杰", "male"), ("u2", "小雨", "female"), ("u3", "老周", "male")):
        platform.sim.add_member(key, display_name=name, gender=gender, birth_year=1990, occupation="教师")
    with db() as s:
        org = create_organisation(s, name="读书会", slug="reading")
        connection = default_connection(s, org.id, "simulator")
        ids = {}
        for key in ("u1", "u2", "u3"):
            member = Member(
                org_id=org.id, platform="simulator", external_id=key, display_name="", first_seen_at=utcnow()
            )
            s.add(member)
            s.flush()
            ids[key] = member.id
        request_profile_sync(s, org.id, "simulator", list(ids.values()), connection_id=connection.id)
        s.commit()
        org_id, connection_id = org.id, connection.id
    with bind(connection_id, platform):
        yield org_id, ids, platform


def run_jobs(db: sessionmaker[Session]) -> None:
    worker = Worker("profiles", factory=db)
    while worker.run_next():
        pass


def test_the_platform_is_asked_with_no_transaction_open(
    db: sessionmaker[Session], world: tuple[int, dict[str, int], WatchedSimulator]
) -> None:
    _, ids, platform = world
    with db() as s:
        job_id = s.scalars(select(Job.id).where(Job.kind == SYNC_JOB)).one()
    asked: list[str] = []

    def meanwhile() -> None:
        # Neither the job's row nor the members' are locked, nor (SQLite) the database.
        elsewhere(db, update(Job).where(Job.id == job_id).values(priority=1))
        elsewhere(db, update(Member).where(Member.id == ids["u3"]).values(occupation="记者"))
        # u2 asks to be erased while the platform is being asked.
        elsewhere(db, update(Member).where(Member.id == ids["u2"]).values(erased_at=utcnow(), display_name="已删除"))
        asked.append("yes")

    platform.during = meanwhile
    run_jobs(db)
    assert asked == ["yes"]
    with db() as s:
        members = {m.external_id: m for m in s.scalars(select(Member))}
        assert (members["u1"].display_name, members["u1"].gender, members["u1"].birth_year) == ("阿杰", "male", 1990)
        assert (members["u2"].display_name, members["u2"].gender) == ("已删除", "")  # the erasure won
        assert members["u3"].display_name == "老周" and members["u3"].occupation == "教师"
        assert s.get_one(Job, job_id).status == "done"


def test_a_platform_failure_retries_the_job_and_writes_nothing(
    db: sessionmaker[Session], world: tuple[int, dict[str, int], WatchedSimulator]
) -> None:
    _, _, platform = world
    platform.failure = ConnectionError("platform unreachable")
    worker = Worker("profiles", factory=db)
    assert worker.run_next()
    with db() as s:
        job = s.scalars(select(Job).where(Job.kind == SYNC_JOB)).one()
        assert job.status == "queued" and job.attempts == 1 and "platform unreachable" in (job.last_error or "")
        assert job.run_at > utcnow() - timedelta(seconds=1)
        assert {m.display_name for m in s.scalars(select(Member))} == {""}
    platform.failure = None
    with db() as s:
        s.execute(update(Job).where(Job.kind == SYNC_JOB).values(run_at=utcnow()))
        s.commit()
    run_jobs(db)
    with db() as s:
        assert {m.display_name for m in s.scalars(select(Member))} == {"阿杰", "小雨", "老周"}

"""The sweep of stuck outbound actions: a queued action whose job is gone gets a new one, a
sending action left by a dead worker goes through the reconcile path, and a healthy send in
flight is left alone. On a real database with the simulator as the platform."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

import qunyun.connectors.tasks  # noqa: F401  (registers the job handlers)
from qunyun.connections.service import default_connection
from qunyun.connectors.dispatch import (
    MAX_SWEEPS,
    PERFORM_JOB,
    STUCK_AFTER,
    SWEEP_JOB,
    call,
    prepare,
    sweep_stuck,
)
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.db.session import unit_of_work
from qunyun.models import Group, Job, Member, Organisation, OutboundAction, Staff
from qunyun.timeutil import utcnow
from qunyun.worker.runner import Worker
from qunyun.worker.scheduler import periodic_jobs
from tests.connectors.test_dispatch import (
    add_group,
    history,
    org,
    owner,
    perform_jobs,
    run_perform_job,
    send,
    setup,
    sim,
    states,
    tasks_of,
)

__all__ = ["org", "owner", "setup", "sim"]

LATER = STUCK_AFTER + timedelta(minutes=1)


def kill_jobs(session: Session, action_id: int, *, purge: bool = False) -> None:
    """The action's perform jobs die (their attempts used up) or are purged from the table."""
    ids = [job.id for job in perform_jobs(session, action_id)]
    if purge:
        session.execute(delete(Job).where(Job.id.in_(ids)))
    else:
        session.execute(update(Job).where(Job.id.in_(ids)).values(status="dead", locked_by=None, locked_until=None))
    session.expire_all()


def live_jobs(session: Session, action_id: int) -> list[Job]:
    return [job for job in perform_jobs(session, action_id) if job.status in ("queued", "running")]


@pytest.mark.parametrize("purge", [False, True], ids=["dead", "purged"])
def test_a_queued_action_whose_job_is_gone_is_queued_again_and_sent_once(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector, purge: bool
) -> None:
    group, _ = setup
    action = send(session, org, group, "早安")
    kill_jobs(session, action.id, purge=purge)
    assert live_jobs(session, action.id) == []

    sweep = sweep_stuck(session)
    assert sweep.requeued == [action.id] and sweep.rechecked == sweep.handed_over == []
    [job] = live_jobs(session, action.id)
    assert job.key == f"{PERFORM_JOB}:{action.id}:sweep1"
    assert states(session, action.id)[-1] == ("queued", "queued")
    assert history(session, action.id)[-1].detail.startswith("swept")

    # A second pass finds the new job and changes nothing.
    assert sweep_stuck(session).requeued == []
    assert len(live_jobs(session, action.id)) == 1

    run_perform_job(session, action.id)
    assert action.state == "sent" and action.attempts == 1
    assert [m.text for m in sim.sim.messages_in("g1")] == ["早安"]


def test_actions_with_a_live_job_are_left_alone(
    db: sessionmaker[Session], session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    """A send scheduled for later, and a send in flight whose platform is slow (its job running
    under a lease long after it was marked sending), are healthy: the sweep touches neither."""
    group, _ = setup
    scheduled = send(session, org, group, "明早见", key="later")
    session.execute(
        update(Job).where(Job.key == f"{PERFORM_JOB}:{scheduled.id}").values(run_at=utcnow() + timedelta(days=1))
    )
    in_flight = send(session, org, group, "在路上", key="flight")
    session.commit()
    # A worker claims the in-flight send's job and commits "sending"; its call is still going.
    worker = Worker("slow-platform", factory=db)
    [claimed] = [job for job in worker.claim_batch(10) if job.payload == {"action_id": in_flight.id}]
    with unit_of_work(db) as first:
        assert prepare(first, in_flight.id) is not None
    before = {a: len(history(session, a)) for a in (scheduled.id, in_flight.id)}

    with unit_of_work(db) as s:
        sweep = sweep_stuck(s, now=utcnow() + LATER)
    assert sweep.requeued == sweep.rechecked == sweep.handed_over == []
    with db() as check:
        assert check.get_one(OutboundAction, in_flight.id).state == "sending"
        assert check.get_one(OutboundAction, scheduled.id).state == "queued"
        assert {a: len(history(check, a)) for a in before} == before
        assert [j.status for j in perform_jobs(check, in_flight.id)] == ["running"]
        assert check.get_one(Job, claimed.id).locked_by == "slow-platform"
        assert len(perform_jobs(check, scheduled.id)) == 1
    assert sim.sim.messages_in("g1") == []


def test_a_sending_action_left_by_a_dead_worker_goes_to_a_person_not_out_again(
    db: sessionmaker[Session], session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, _ = setup
    action = send(session, org, group, "活动通知")
    session.commit()
    # The worker commits "sending", the platform receives the message, then the worker dies and
    # its job never runs again (its attempts were used up by earlier crashes).
    with unit_of_work(db) as first:
        prepared = prepare(first, action.id)
    assert prepared is not None
    call(prepared)
    with unit_of_work(db) as s:
        kill_jobs(s, action.id)

    # Too recent: the runner's own recovery of lost leases may still be on it.
    with unit_of_work(db) as s:
        assert sweep_stuck(s).rechecked == []
    with unit_of_work(db) as s:
        sweep = sweep_stuck(s, now=utcnow() + LATER)
        assert sweep.rechecked == [action.id]
        run_perform_job(s, action.id)
    with db() as check:
        row = check.get_one(OutboundAction, action.id)
        assert row.state == "uncertain" and row.attempts == 1
        [task] = tasks_of(check, action.id)
        assert task.kind == "uncertain_send" and task.status == "open"
        assert states(check, action.id)[-3:] == [
            ("queued", "sending"),
            ("sending", "sending"),
            ("sending", "uncertain"),
        ]
    assert [m.text for m in sim.sim.messages_in("g1")] == ["活动通知"]


@pytest.mark.parametrize("reached", [True, False], ids=["reached-the-platform", "never-reached-it"])
def test_a_reconciling_platform_settles_a_swept_send_itself(
    db: sessionmaker[Session], session: Session, org: Organisation, owner: Staff, reached: bool
) -> None:
    connection = default_connection(session, org.id, "simulator")
    group = add_group(session, org, "simulator", "g1", owner)
    matrix_like = SimulatorConnector(seed=1, reconcile=True)
    matrix_like.sim.create_group("g1", group_id="g1")
    action = send(session, org, group)
    session.commit()
    with bind(connection.id, matrix_like):
        with unit_of_work(db) as first:
            prepared = prepare(first, action.id)
        assert prepared is not None
        if reached:
            call(prepared)
        with unit_of_work(db) as s:
            kill_jobs(s, action.id)
        with unit_of_work(db) as s:
            assert sweep_stuck(s, now=utcnow() + LATER).rechecked == [action.id]
            run_perform_job(s, action.id)
    with db() as check:
        row = check.get_one(OutboundAction, action.id)
        assert row.state == "sent" and tasks_of(check, action.id) == []
    assert len(matrix_like.sim.messages_in("g1")) == 1


def test_an_action_whose_jobs_keep_dying_is_handed_to_a_person(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, _ = setup
    queued = send(session, org, group, "排队", key="q")
    for n in range(MAX_SWEEPS):
        kill_jobs(session, queued.id)
        assert sweep_stuck(session).requeued == [queued.id], n
    kill_jobs(session, queued.id)
    assert sweep_stuck(session).handed_over == [queued.id]
    assert queued.state == "delegated"
    [task] = tasks_of(session, queued.id)
    assert task.kind == "platform_action" and task.status == "open"
    assert live_jobs(session, queued.id) == []
    assert sweep_stuck(session).handed_over == []  # settled: nothing more to sweep

    sending = send(session, org, group, "发送中", key="s")
    assert prepare(session, sending.id) is not None
    now = utcnow()
    for n in range(MAX_SWEEPS):
        kill_jobs(session, sending.id)
        now += LATER
        assert sweep_stuck(session, now=now).rechecked == [sending.id], n
    kill_jobs(session, sending.id)
    assert sweep_stuck(session, now=now + LATER).handed_over == [sending.id]
    assert sending.state == "uncertain"
    assert [t.kind for t in tasks_of(session, sending.id)] == ["uncertain_send"]
    assert sim.sim.messages_in("g1") == []


def test_the_sweep_is_scoped_to_an_organisation_when_asked(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    from qunyun.team.service import create_organisation

    group, _ = setup
    action = send(session, org, group)
    kill_jobs(session, action.id)
    other = create_organisation(session, name="别家", slug="other")
    assert sweep_stuck(session, org_id=other.id).requeued == []
    assert sweep_stuck(session, org_id=org.id).requeued == [action.id]


def test_the_worker_sweeps_every_few_minutes(
    db: sessionmaker[Session], session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    assert any(p.kind == SWEEP_JOB and p.every == timedelta(minutes=5) for p in periodic_jobs())
    group, _ = setup
    action = send(session, org, group, "周报")
    kill_jobs(session, action.id)
    session.commit()
    worker = Worker("sweeper", factory=db)
    assert any(key.startswith(f"{SWEEP_JOB}@") for key in worker.schedule_periodic(force=True))
    while worker.run_next():
        pass
    with db() as check:
        assert check.get_one(OutboundAction, action.id).state == "sent"
        assert check.scalars(select(Job.status).where(Job.kind == SWEEP_JOB)).all() == ["done"]
    assert [m.text for m in sim.sim.messages_in("g1")] == ["周报"]

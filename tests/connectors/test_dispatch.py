"""Outbound actions: idempotent requests, routing to staff tasks, the perform job and its state
machine, on a real database with the simulator as the platform."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import qunyun.connectors.tasks  # noqa: F401  (registers the job handlers)
from qunyun.connections.service import default_connection
from qunyun.connectors import ActionBase, ActionKind, Capability, action_capabilities, action_from_payload, get_profile
from qunyun.connectors.actions import GROUP, unregister_action
from qunyun.connectors.dispatch import (
    EXPIRE_JOB,
    MAX_ATTEMPTS,
    PERFORM_JOB,
    TASK_CONFIRM_SEND,
    TASK_PLATFORM_ACTION,
    TASK_UNCERTAIN_SEND,
    ActionRequest,
    call,
    confirm,
    expire_overdue,
    history,
    not_sent,
    prepare,
    record,
    request_action,
    request_actions,
)
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector, ingest_sink
from qunyun.db.session import unit_of_work
from qunyun.errors import Conflict, InvalidInput
from qunyun.models import (
    Connection,
    Event,
    EventKind,
    Group,
    Job,
    Member,
    MembershipSpan,
    Organisation,
    OutboundAction,
    OutboundActionTransition,
    Staff,
    StaffTask,
)
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from qunyun.worker.queue import handler_for
from tests.connections.helpers import connection_row


def run_perform_job(session: Session, action_id: int) -> None:
    """All three phases of the perform job in ``session`` (the worker commits between them)."""
    handler = handler_for(PERFORM_JOB)
    assert handler is not None
    handler(session, {"action_id": action_id})


def states(session: Session, action_id: int) -> list[tuple[str | None, str]]:
    return [(t.from_state, t.to_state) for t in history(session, action_id)]


def perform_jobs(session: Session, action_id: int) -> list[Job]:
    return [
        job
        for job in session.scalars(select(Job).where(Job.kind == PERFORM_JOB).order_by(Job.id))
        if job.payload == {"action_id": action_id}
    ]


def tasks_of(session: Session, action_id: int) -> list[StaffTask]:
    return list(session.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action_id)))


@pytest.fixture
def org(session: Session) -> Organisation:
    return create_organisation(session, name="读书会", slug="reading")


@pytest.fixture
def owner(session: Session, org: Organisation) -> Staff:
    return create_staff(session, org.id, username="owner1", password="password-123", role="owner")


def bound(
    session: Session, org: Organisation, platform: str, connector: SimulatorConnector
) -> Iterator[SimulatorConnector]:
    connection = default_connection(session, org.id, platform)
    with bind(connection.id, connector):
        yield connector


@pytest.fixture
def sim(session: Session, org: Organisation) -> Iterator[SimulatorConnector]:
    """The organisation's simulator connection, bound to a simulator of this test."""
    yield from bound(session, org, "simulator", SimulatorConnector(seed=1))


@pytest.fixture
def wecom(session: Session, org: Organisation) -> Iterator[SimulatorConnector]:
    """The organisation's WeCom connection, bound to the simulator emulating WeCom's profile."""
    yield from bound(session, org, "wecom", SimulatorConnector(seed=1, profile=get_profile("wecom")))


def add_group(session: Session, org: Organisation, platform: str, external_id: str, owner: Staff | None) -> Group:
    group = Group(
        org_id=org.id,
        platform=platform,
        external_id=external_id,
        name=f"群 {external_id}",
        owner_id=owner.id if owner else None,
        created_at=utcnow(),
    )
    session.add(group)
    session.flush()
    return group


def add_member(session: Session, org: Organisation, platform: str, external_id: str) -> Member:
    member = Member(
        org_id=org.id, platform=platform, external_id=external_id, display_name=external_id, first_seen_at=utcnow()
    )
    session.add(member)
    session.flush()
    return member


@pytest.fixture
def setup(session: Session, org: Organisation, owner: Staff, sim: SimulatorConnector) -> tuple[Group, Member]:
    """Group g1 with member m1, on the simulator and in the database."""
    sim.sim.create_group("g1", group_id="g1", owner="owner1")
    sim.sim.join("m1", "g1")
    sim.sim.drain_events()
    return add_group(session, org, "simulator", "g1", owner), add_member(session, org, "simulator", "m1")


def send(
    session: Session,
    org: Organisation,
    group: Group,
    text: str = "hi",
    key: str = "k",
    deadline: datetime | None = None,
) -> OutboundAction:
    payload = {"text": text} if deadline is None else {"text": text, "deadline": deadline.isoformat()}
    return request_action(
        session, org.id, "send_group_message", group_id=group.id, payload=payload, idempotency_key=key
    )


def test_request_queues_a_job_and_the_job_sends_once(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, _ = setup
    action = request_action(
        session,
        org.id,
        "send_group_message",
        group_id=group.id,
        payload={"text": "早安！今天的话题：读书打卡"},
        idempotency_key="sop:7:2026-03-02:08:00",
    )
    assert action.state == "queued"
    connection = session.get_one(Connection, action.connection_id)
    assert connection.platform == action.platform == "simulator" and connection.org_id == org.id
    assert states(session, action.id) == [(None, "planned"), ("planned", "queued")]
    [job] = perform_jobs(session, action.id)
    assert job.org_id == org.id and job.key == f"{PERFORM_JOB}:{action.id}"

    run_perform_job(session, action.id)
    assert action.state == "sent" and action.attempts == 1
    assert action.external_ref is not None
    assert [m.text for m in sim.sim.messages_in("g1")] == ["早安！今天的话题：读书打卡"]
    assert states(session, action.id) == [
        (None, "planned"),
        ("planned", "queued"),
        ("queued", "sending"),
        ("sending", "sent"),
    ]
    assert [t.attempt for t in history(session, action.id)] == [None, None, 1, 1]

    # The job runs again (duplicate delivery, a retry after a lost lease): nothing happens.
    run_perform_job(session, action.id)
    assert action.attempts == 1
    assert len(sim.sim.messages_in("g1")) == 1
    assert len(history(session, action.id)) == 4


def test_same_key_same_action(session: Session, org: Organisation, setup: tuple[Group, Member]) -> None:
    group, member = setup

    def ask() -> OutboundAction:
        return request_action(
            session,
            org.id,
            "send_group_message",
            group_id=group.id,
            payload={"text": "hi"},
            idempotency_key="k1",
        )

    first, second = ask(), ask()
    assert second is first
    assert session.scalar(select(func.count()).select_from(OutboundAction)) == 1
    assert len(perform_jobs(session, first.id)) == 1
    assert len(history(session, first.id)) == 2
    with pytest.raises(Conflict) as exc:
        request_action(
            session,
            org.id,
            "kick",
            group_id=group.id,
            member_id=member.id,
            payload={},
            idempotency_key="k1",
        )
    assert exc.value.field == "idempotency_key"


def test_a_key_marked_new_is_not_looked_up_but_still_one_action(
    session: Session, org: Organisation, setup: tuple[Group, Member]
) -> None:
    """``new_key`` skips the look-up of the key, not its idempotency: a key that exists after all
    is found by the insert and is the same action (or a Conflict for another request)."""
    group, member = setup
    kick = ActionRequest("kick", {}, "k-new", group_id=group.id, member_id=member.id, new_key=True)
    (first,) = request_actions(session, org.id, [kick])
    assert isinstance(first, OutboundAction)
    (again,) = request_actions(session, org.id, [kick])
    assert again is first
    message = ActionRequest("send_group_message", {"text": "hi"}, "k-new", group_id=group.id, new_key=True)
    (other,) = request_actions(session, org.id, [message])
    assert isinstance(other, Conflict) and other.field == "idempotency_key"
    assert session.scalar(select(func.count()).select_from(OutboundAction)) == 1
    assert len(perform_jobs(session, first.id)) == 1
    assert len(history(session, first.id)) == 2


def test_a_crash_after_the_platform_call_never_sends_twice(
    db: sessionmaker[Session], org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector, session: Session
) -> None:
    group, _ = setup
    action = send(session, org, group)
    session.commit()

    # First attempt: "sending" commits, the platform receives the message, then the worker dies
    # before recording it.
    with unit_of_work(db) as first:
        prepared = prepare(first, action.id)
    assert prepared is not None and prepared.attempt == 1
    call(prepared)
    assert len(sim.sim.messages_in("g1")) == 1

    # The job runs again: the simulator cannot tell what became of the first call, so the action
    # goes to a person instead of being sent again.
    with unit_of_work(db) as retry:
        run_perform_job(retry, action.id)
    with db() as check:
        row = check.get_one(OutboundAction, action.id)
        assert row.state == "uncertain" and row.attempts == 1
        [task] = tasks_of(check, action.id)
        assert task.kind == TASK_UNCERTAIN_SEND == "uncertain_send" and task.status == "open"
        assert task.title.startswith("May have been sent on Simulator: check and confirm")
        assert task.title_key == "task.prefix.uncertain_send"
        assert task.detail["idempotency_key"] == "k"
        assert states(check, action.id)[-2:] == [("queued", "sending"), ("sending", "uncertain")]
    assert len(sim.sim.messages_in("g1")) == 1

    # The person finds the message in the group and confirms it.
    with unit_of_work(db) as person:
        confirm(person, action.id, detail="seen in the group")
    with db() as check:
        assert check.get_one(OutboundAction, action.id).state == "confirmed"
        assert tasks_of(check, action.id)[0].status == "done"


def test_a_crash_before_the_call_is_checked_by_a_person_too(
    db: sessionmaker[Session], org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector, session: Session
) -> None:
    group, _ = setup
    action = send(session, org, group)
    session.commit()
    with unit_of_work(db) as first:
        assert prepare(first, action.id) is not None  # the worker dies before calling
    with unit_of_work(db) as retry:
        run_perform_job(retry, action.id)
        row = retry.get_one(OutboundAction, action.id)
        assert row.state == "uncertain"
        # The person looks and finds nothing: it was never sent.
        not_sent(retry, action.id, detail="not in the group")
        not_sent(retry, action.id)  # twice changes nothing
        assert row.state == "failed" and tasks_of(retry, action.id)[0].status == "cancelled"
        with pytest.raises(Conflict):
            confirm(retry, action.id)
    assert sim.sim.messages_in("g1") == []


@pytest.mark.parametrize("crash_after_call", [True, False])
def test_a_reconciling_platform_settles_a_crashed_attempt_itself(
    db: sessionmaker[Session], org: Organisation, owner: Staff, session: Session, crash_after_call: bool
) -> None:
    """Like Matrix's transaction ids: the platform remembers each key, so the next attempt asks
    it what became of the first one and, if it never arrived, sends it safely."""
    connection = default_connection(session, org.id, "simulator")
    group = add_group(session, org, "simulator", "g1", owner)
    matrix_like = SimulatorConnector(seed=1, reconcile=True)
    assert matrix_like.reconciles and matrix_like.key_idempotent
    matrix_like.sim.create_group("g1", group_id="g1")
    action = send(session, org, group)
    session.commit()
    with bind(connection.id, matrix_like):
        with unit_of_work(db) as first:
            prepared = prepare(first, action.id)
        assert prepared is not None
        if crash_after_call:
            first_answer = call(prepared)
            assert first_answer is not None
        with unit_of_work(db) as retry:
            run_perform_job(retry, action.id)
    with db() as check:
        row = check.get_one(OutboundAction, action.id)
        assert row.state == "sent" and row.attempts == 2
        if crash_after_call:
            assert row.external_ref == first_answer.external_ref
        assert tasks_of(check, action.id) == []
        assert states(check, action.id)[-3:] == [("queued", "sending"), ("sending", "sending"), ("sending", "sent")]
        assert "reconciled" in history(check, action.id)[-1].detail
    assert len(matrix_like.sim.messages_in("g1")) == 1


def test_a_call_that_breaks_off_is_uncertain(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, _ = setup
    action = send(session, org, group)
    prepared = prepare(session, action.id)
    assert prepared is not None
    record(session, prepared, ConnectionResetError("connection reset by peer"))
    assert action.state == "uncertain" and "ConnectionResetError" in (action.last_error or "")
    assert [t.kind for t in tasks_of(session, action.id)] == [TASK_UNCERTAIN_SEND]


def test_a_late_record_changes_nothing(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    """An attempt whose action moved on meanwhile (another attempt took over) writes nothing."""
    group, _ = setup
    action = send(session, org, group)
    prepared = prepare(session, action.id)
    assert prepared is not None
    assert prepare(session, action.id) is None  # the takeover: uncertain, with a task
    answer = call(prepared)
    assert answer is not None
    record(session, prepared, answer)
    assert action.state == "uncertain" and action.external_ref is None


def test_the_worker_runs_the_job(
    db: sessionmaker[Session], org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector, session: Session
) -> None:
    from qunyun.worker.runner import Worker

    group, member = setup
    action = request_action(
        session, org.id, "kick", group_id=group.id, member_id=member.id, payload={}, idempotency_key="k"
    )
    session.commit()
    worker = Worker("test", factory=db)
    assert worker.run_next()
    with db() as check:
        row = check.get(OutboundAction, action.id)
        assert row is not None and row.state == "sent"
        job = check.scalars(select(Job).where(Job.kind == PERFORM_JOB)).one()
        assert job.status == "done"
    assert not sim.sim.is_member("m1", "g1")


def test_kick_on_wecom_becomes_a_task_for_the_group_owner(
    session: Session, org: Organisation, owner: Staff, wecom: SimulatorConnector
) -> None:
    group = add_group(session, org, "wecom", "wr-1", owner)
    member = add_member(session, org, "wecom", "wm-1")
    action = request_action(
        session,
        org.id,
        "kick",
        group_id=group.id,
        member_id=member.id,
        payload={"reason": "发广告 3 次"},
        idempotency_key="moderation:kick:1",
    )
    assert action.state == "delegated"
    assert states(session, action.id) == [(None, "planned"), ("planned", "delegated")]
    assert perform_jobs(session, action.id) == []
    task = session.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action.id)).one()
    assert task.assignee_id == owner.id and task.group_id == group.id
    assert task.kind == TASK_PLATFORM_ACTION and task.status == "open"
    assert task.title == "Remove wm-1 from 群 wr-1 (by hand on WeCom)"
    assert task.title_key == "task.prefix.platform_action"
    assert task.detail["missing_capabilities"] == ["kick"]
    assert task.detail["payload"] == {"reason": "发广告 3 次"}
    assert "No API removes a member" in task.detail["reason"]

    # The owner removed the member by hand.
    confirm(session, action.id, detail="removed in the WeCom client")
    assert action.state == "confirmed" and task.status == "done" and task.done_at is not None


def test_an_explicit_assignee_gets_the_task(
    session: Session, org: Organisation, owner: Staff, wecom: SimulatorConnector
) -> None:
    admin = create_staff(session, org.id, username="admin1", password="password-123", role="admin")
    group = add_group(session, org, "wecom", "wr-1", owner)
    member = add_member(session, org, "wecom", "wm-1")
    action = request_action(
        session,
        org.id,
        "mute",
        group_id=group.id,
        member_id=member.id,
        payload={"seconds": 3600},
        idempotency_key="k",
        assignee_id=admin.id,
    )
    task = session.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action.id)).one()
    assert task.assignee_id == admin.id


def test_wecom_group_send_awaits_the_owner_then_is_confirmed(
    session: Session, org: Organisation, owner: Staff, wecom: SimulatorConnector
) -> None:
    wecom.sim.create_group("客户群", group_id="wr-1", owner="owner1")
    group = add_group(session, org, "wecom", "wr-1", owner)
    action = request_action(
        session,
        org.id,
        "send_group_message",
        group_id=group.id,
        payload={"text": "今晚 8 点直播，不见不散"},
        idempotency_key="sop:send:1",
    )
    assert action.state == "queued"
    run_perform_job(session, action.id)
    assert action.state == "awaiting_confirmation" and action.external_ref
    assert wecom.sim.messages_in("wr-1") == []
    task = session.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action.id)).one()
    assert task.kind == TASK_CONFIRM_SEND and task.assignee_id == owner.id
    assert task.title.startswith("Confirm the send on WeCom")

    run_perform_job(session, action.id)  # nothing more to do while it waits
    assert session.scalar(select(func.count()).select_from(StaffTask)) == 1

    wecom.sim.confirm_send(action.external_ref)  # the owner presses send in the client
    confirm(session, action.id, detail="WeCom reports the owner sent it")
    confirm(session, action.id)  # a second report changes nothing
    assert action.state == "confirmed" and task.status == "done"
    assert [m.text for m in wecom.sim.messages_in("wr-1")] == ["今晚 8 点直播，不见不散"]
    assert states(session, action.id) == [
        (None, "planned"),
        ("planned", "queued"),
        ("queued", "sending"),
        ("sending", "awaiting_confirmation"),
        ("awaiting_confirmation", "confirmed"),
    ]


def test_a_connection_whose_client_does_not_build_delegates_at_run_time(
    session: Session, org: Organisation, owner: Staff
) -> None:
    """Telegram's default connection has no bot token: the send goes to a person, saying why."""
    group = add_group(session, org, "telegram", "-100123", owner)
    action = request_action(
        session,
        org.id,
        "send_group_message",
        group_id=group.id,
        payload={"text": "hi"},
        idempotency_key="k",
    )
    assert action.state == "queued"  # Telegram can send; its client is just not configured
    run_perform_job(session, action.id)
    assert action.state == "delegated"
    task = session.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action.id)).one()
    assert "bot token" in task.detail["reason"]


def test_transient_errors_retry_with_backoff_then_fail(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, _ = setup
    action = send(session, org, group, "a")
    sim.sim.fail_next_api_calls(1)
    before = utcnow()
    run_perform_job(session, action.id)
    assert action.state == "queued" and action.attempts == 1
    assert states(session, action.id)[-2:] == [("queued", "sending"), ("sending", "queued")]
    assert action.last_error == "simulated outage (injected)"
    _first, retry = perform_jobs(session, action.id)
    assert retry.run_at >= before + timedelta(seconds=30)
    run_perform_job(session, action.id)
    assert action.state == "sent" and action.last_error is None and action.attempts == 2
    assert len(sim.sim.messages_in("g1")) == 1

    doomed = send(session, org, group, "b", key="k2")
    sim.sim.fail_next_api_calls(MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS):
        run_perform_job(session, doomed.id)
    assert doomed.state == "failed" and doomed.attempts == MAX_ATTEMPTS
    assert len(perform_jobs(session, doomed.id)) == MAX_ATTEMPTS  # the first and 4 retries
    assert states(session, doomed.id)[-1] == ("sending", "failed")


def test_a_rate_limit_retries_after_the_wait_the_platform_asked_for(
    session: Session,
    org: Organisation,
    setup: tuple[Group, Member],
    sim: SimulatorConnector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qunyun.connectors.telegram.botapi import RateLimited

    group, _ = setup
    action = send(session, org, group, "a")
    waits = [600.0, 5.0]

    def limited(*_args: Any) -> Any:
        raise RateLimited(waits.pop(0))  # Telegram's 429 with retry_after

    monkeypatch.setattr(sim, "perform", limited)
    before = utcnow()
    run_perform_job(session, action.id)
    assert action.state == "queued" and action.attempts == 1
    retry = perform_jobs(session, action.id)[-1]
    assert retry.run_at >= before + timedelta(seconds=600)  # not the 30 s backoff
    run_perform_job(session, action.id)
    again = perform_jobs(session, action.id)[-1]
    assert again.run_at >= before + timedelta(seconds=60)  # a short wait: the backoff is longer
    assert again.run_at < utcnow() + timedelta(seconds=61)


def test_platform_refusal_fails_the_action(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, member = setup
    sim.sim.leave("m1", "g1")
    action = request_action(
        session, org.id, "kick", group_id=group.id, member_id=member.id, payload={}, idempotency_key="k"
    )
    run_perform_job(session, action.id)
    assert action.state == "failed" and "not_a_member" in (action.last_error or "")


def test_deadlines_expire_actions(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, _ = setup
    now = sim.now()
    late = send(session, org, group, "早安", key="late", deadline=now - timedelta(minutes=1))
    assert late.state == "expired" and perform_jobs(session, late.id) == []

    action = send(session, org, group, "早安", deadline=now + timedelta(hours=1))
    assert action.state == "queued"
    sim.clock.advance(hours=2)  # the worker was down past the slot
    run_perform_job(session, action.id)
    assert action.state == "expired"
    assert sim.sim.messages_in("g1") == []


def test_unconfirmed_sends_expire(session: Session, org: Organisation, owner: Staff, wecom: SimulatorConnector) -> None:
    wecom.sim.create_group("客户群", group_id="wr-1")
    group = add_group(session, org, "wecom", "wr-1", owner)
    deadline = wecom.now() + timedelta(hours=4)
    action = send(session, org, group, "限时秒杀", deadline=deadline)
    run_perform_job(session, action.id)
    assert action.state == "awaiting_confirmation"
    assert expire_overdue(session, now=deadline - timedelta(seconds=1)) == []
    assert expire_overdue(session, now=deadline) == [action.id]
    task = session.scalars(select(StaffTask).where(StaffTask.outbound_action_id == action.id)).one()
    assert action.state == "expired" and task.status == "cancelled" and task.due_at == deadline
    with pytest.raises(Conflict):
        confirm(session, action.id)
    assert handler_for(EXPIRE_JOB) is not None


def test_bad_requests_name_the_field_and_write_nothing(
    session: Session, org: Organisation, setup: tuple[Group, Member], owner: Staff
) -> None:
    group, member = setup
    other = add_group(session, org, "telegram", "-100", owner)
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(action="send_group_message", group_id=group.id, payload={}), "payload.text"),
        (dict(action="send_group_message", group_id=group.id, payload={"text": "x", "colour": 1}), "payload.colour"),
        (dict(action="send_group_message", group_id=99999, payload={"text": "x"}), "group_id"),
        (dict(action="kick", group_id=group.id, payload={}), "member_id"),
        (dict(action="teleport", payload={}), "action"),
        (
            dict(action="send_group_message", group_id=group.id, payload={"text": "x", "deadline": "soon"}),
            "payload.deadline",
        ),
        (dict(action="kick", group_id=group.id, member_id=member.id, payload={}, assignee_id=424242), "assignee_id"),
    ]
    for kwargs, field in cases:
        with pytest.raises(InvalidInput) as exc:
            request_action(session, org.id, idempotency_key="k", **kwargs)
        assert exc.value.field == field, kwargs
    simulator = default_connection(session, org.id, "simulator")
    telegram = default_connection(session, org.id, "telegram")
    assert other.platform == "telegram"
    second = connection_row(org.id, "二号模拟器")
    session.add(second)
    session.flush()
    elsewhere = add_group(session, org, "simulator", "g9", owner)
    elsewhere.connection_id = second.id
    connection_cases: list[tuple[dict[str, Any], str]] = [
        (dict(action="create_group", payload={"name": "新群"}), "connection_id"),  # no target, no connection
        (dict(action="create_group", payload={"name": "新群"}, connection_id=424242), "connection_id"),
        (
            dict(action="send_group_message", group_id=group.id, payload={"text": "x"}, connection_id=telegram.id),
            "group_id",
        ),
        (dict(action="set_tags", member_id=member.id, payload={"add": ["a"]}, connection_id=telegram.id), "member_id"),
        (
            dict(action="send_group_message", group_id=elsewhere.id, payload={"text": "x"}, connection_id=simulator.id),
            "group_id",
        ),
        (
            dict(action="send_group_message", group_id=other.id, payload={"text": "x"}, connection_id=simulator.id),
            "group_id",
        ),
    ]
    for kwargs, field in connection_cases:
        with pytest.raises(InvalidInput) as exc:
            request_action(session, org.id, idempotency_key="k", **kwargs)
        assert exc.value.field == field, kwargs
    assert simulator.id != telegram.id
    assert session.scalar(select(func.count()).select_from(OutboundAction)) == 0
    assert session.scalar(select(func.count()).select_from(OutboundActionTransition)) == 0


def test_confirm_refuses_actions_not_waiting_on_a_person(
    session: Session, org: Organisation, setup: tuple[Group, Member]
) -> None:
    group, _ = setup
    action = send(session, org, group, "a")
    with pytest.raises(Conflict):
        confirm(session, action.id)
    with pytest.raises(Conflict):
        not_sent(session, action.id)


def test_simulator_operations_arrive_as_stored_events(session: Session, org: Organisation, owner: Staff) -> None:
    sim = SimulatorConnector(seed=5, sink=ingest_sink(session, org.id))
    with bind(default_connection(session, org.id, "simulator").id, sim):
        p = sim.sim
        g = p.create_group("读书会 1 群", owner="owner1", capacity=200)
        p.join("alice", g.id, scene="qr")
        p.join("bob", g.id, inviter="alice")
        p.post("alice", g.id, "大家好")
        p.pay("bob", "99.00", product="年卡", group=g.id)

        group = session.scalars(select(Group).where(Group.external_id == g.id)).one()
        assert group.platform == "simulator" and group.owner_id == owner.id and group.capacity == 200
        bob = session.scalars(select(Member).where(Member.external_id == "bob")).one()

        # Qunyun creates an invite link, someone joins through it, and a moderator kicks bob.
        link = request_action(
            session,
            org.id,
            "create_invite_link",
            group_id=group.id,
            payload={"member_limit": 1, "channel": "sms", "expire_at": (p.now() + timedelta(days=7)).isoformat()},
            idempotency_key="live-code:1",
        )
        run_perform_job(session, link.id)
        assert link.state == "sent" and link.external_ref
        p.join("carol", via_link=link.external_ref)
        kick = request_action(
            session, org.id, "kick", group_id=group.id, member_id=bob.id, payload={}, idempotency_key="k1"
        )
        run_perform_job(session, kick.id)
        assert kick.state == "sent"

        rows = session.scalars(select(Event).where(Event.org_id == org.id).order_by(Event.id)).all()
        assert [EventKind(r.kind) for r in rows] == [
            EventKind.GROUP_CREATED,
            EventKind.MEMBER_JOINED,
            EventKind.MEMBER_JOINED,
            EventKind.MESSAGE_POSTED,
            EventKind.ORDER_PAID,
            EventKind.MEMBER_JOINED,
            EventKind.MEMBER_LEFT,
        ]
        carol_join, bob_left = rows[-2], rows[-1]
        assert carol_join.scene == "link" and carol_join.channel_id is not None
        assert bob_left.reason == "removed" and bob_left.member_id == bob.id
        session.refresh(group)
        assert group.member_count == 2  # alice and carol
        bob_span = session.scalars(select(MembershipSpan).where(MembershipSpan.member_id == bob.id)).one()
        assert bob_span.left_at is not None


def test_a_new_action_kind_is_declared_by_its_class_alone(
    session: Session, org: Organisation, setup: tuple[Group, Member], owner: Staff, sim: SimulatorConnector
) -> None:
    """A kind defined here, and nowhere else: its class states the kind, the capability, the
    targets, the payload (its fields) and the task title; dispatch requests and routes it."""

    @dataclass(frozen=True)
    class PinMessage(
        ActionBase,
        kind="pin_message",
        capability=Capability.DELETE_MESSAGE,  # the simulator has it, WeCom has not
        targets=GROUP,
        title_key="task.title.delete_message",
    ):
        group: str
        message: str
        until: datetime | None = None

    try:
        assert ActionKind("pin_message").action_class is PinMessage
        assert "pin_message" in set(ActionKind)
        assert action_capabilities()[ActionKind("pin_message")] is Capability.DELETE_MESSAGE
        with pytest.raises(InvalidInput) as exc:
            action_from_payload("pin_message", {}, group="g1")
        assert exc.value.field == "payload.message"
        with pytest.raises(InvalidInput) as exc:
            action_from_payload("pin_message", {"message": "m", "until": "tomorrow"}, group="g1")
        assert exc.value.field == "payload.until"
        with pytest.raises(InvalidInput) as exc:
            action_from_payload("pin_message", {"message": "m"})
        assert exc.value.field == "group_id"

        group, _ = setup
        until = "2026-03-09T08:00:00+08:00"
        pin = request_action(
            session,
            org.id,
            "pin_message",
            group_id=group.id,
            payload={"message": "sim-msg1", "until": until},
            idempotency_key="pin:1",
        )
        assert pin.state == "queued" and pin.payload == {"message": "sim-msg1", "until": until}
        # The simulator has the capability but does not know the action: a person does it.
        run_perform_job(session, pin.id)
        assert pin.state == "delegated"
        [task] = tasks_of(session, pin.id)
        assert task.kind == TASK_PLATFORM_ACTION and task.assignee_id == owner.id
        assert task.title == "Delete a message in 群 g1 (by hand on Simulator)"

        # On WeCom, which lacks the capability, it is delegated when requested.
        wecom_group = add_group(session, org, "wecom", "wr-1", owner)
        on_wecom = request_action(
            session, org.id, "pin_message", group_id=wecom_group.id, payload={"message": "x"}, idempotency_key="pin:2"
        )
        assert on_wecom.state == "delegated"
        assert tasks_of(session, on_wecom.id)[0].detail["missing_capabilities"] == ["delete_message"]
    finally:
        unregister_action("pin_message")
    with pytest.raises(ValueError):
        ActionKind("pin_message")


def test_a_platform_that_cannot_answer_yet_is_asked_again_later(
    session: Session, org: Organisation, owner: Staff
) -> None:
    connection = default_connection(session, org.id, "simulator")
    group = add_group(session, org, "simulator", "g1", owner)
    matrix_like = SimulatorConnector(seed=1, reconcile=True)
    matrix_like.sim.create_group("g1", group_id="g1")
    action = send(session, org, group)
    with bind(connection.id, matrix_like):
        assert prepare(session, action.id) is not None  # the worker dies here
        matrix_like.sim.fail_next_api_calls(1)
        run_perform_job(session, action.id)  # the reconciliation meets an outage
        assert action.state == "sending" and action.attempts == 2
        assert action.last_error == "simulated outage (injected)"
        check = perform_jobs(session, action.id)[-1]
        assert check.key == f"{PERFORM_JOB}:{action.id}:check2" and check.run_at > utcnow()
        run_perform_job(session, action.id)
    assert action.state == "sent" and action.attempts == 3 and action.last_error is None
    assert len(matrix_like.sim.messages_in("g1")) == 1


def test_uncertain_sends_expire_with_their_task(
    session: Session, org: Organisation, setup: tuple[Group, Member], sim: SimulatorConnector
) -> None:
    group, _ = setup
    deadline = sim.now() + timedelta(hours=1)
    action = send(session, org, group, "早安", deadline=deadline)
    assert prepare(session, action.id) is not None  # the worker dies here
    run_perform_job(session, action.id)
    assert action.state == "uncertain"
    [task] = tasks_of(session, action.id)
    assert task.due_at == deadline
    assert expire_overdue(session, now=deadline) == [action.id]
    assert action.state == "expired" and task.status == "cancelled"

"""A platform that performs a call once per key but cannot be asked what became of one (Matrix:
the homeserver answers a repeated transaction id with the first event, for a while, and has no
call that looks one up). An attempt that finds the action ``sending`` calls again with the same
key while the platform still remembers it, and hands the action to a person after that."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

import qunyun.connectors.tasks  # noqa: F401  (registers the job handlers)
from qunyun.connections.service import default_connection
from qunyun.connectors.actions import Action
from qunyun.connectors.base import ActionResult
from qunyun.connectors.dispatch import (
    PERFORM_JOB,
    TASK_UNCERTAIN_SEND,
    call,
    prepare,
    record,
    request_action,
)
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.db.session import unit_of_work
from qunyun.models import Group, OutboundAction, OutboundActionTransition, StaffTask
from qunyun.team.service import create_organisation
from qunyun.timeutil import utcnow
from qunyun.worker.queue import handler_for


class TxnIdPlatform(SimulatorConnector):
    """Dedupes by key (its first answer), like Matrix's transaction ids; cannot ``reconcile``."""

    key_memory = timedelta(minutes=30)

    def __init__(self) -> None:
        super().__init__(seed=1)
        self.key_idempotent, self.reconciles = True, False

    def perform(self, action: Action, idempotency_key: str) -> ActionResult:
        first = self.sim.state.performed.get(idempotency_key)
        if first is not None:
            return first
        result = super().perform(action, idempotency_key)
        self.sim.state.performed[idempotency_key] = result
        return result


@pytest.fixture
def platform(session: Session) -> Iterator[tuple[TxnIdPlatform, int]]:
    """A bound platform with group g1 and a queued send to it (its id)."""
    org = create_organisation(session, name="读书会", slug="reading")
    connection = default_connection(session, org.id, "simulator")
    connector = TxnIdPlatform()
    connector.sim.create_group("g1", group_id="g1")
    group = Group(org_id=org.id, platform="simulator", external_id="g1", name="群 g1", created_at=utcnow())
    session.add(group)
    session.flush()
    action = request_action(
        session, org.id, "send_group_message", group_id=group.id, payload={"text": "hi"}, idempotency_key="k"
    )
    session.commit()
    with bind(connection.id, connector):
        yield connector, action.id


def run_perform_job(session: Session, action_id: int) -> None:
    handler = handler_for(PERFORM_JOB)
    assert handler is not None
    handler(session, {"action_id": action_id})


def tasks(session: Session, action_id: int) -> list[str]:
    return [t.kind for t in session.query(StaffTask).filter(StaffTask.outbound_action_id == action_id)]


@pytest.mark.parametrize("crash_after_call", [True, False])
def test_a_crashed_attempt_is_repeated_with_its_key_and_sent_once(
    db: sessionmaker[Session], platform: tuple[TxnIdPlatform, int], crash_after_call: bool
) -> None:
    connector, action_id = platform
    with unit_of_work(db) as first:
        prepared = prepare(first, action_id)
    assert prepared is not None
    answer = call(prepared) if crash_after_call else None  # then the worker dies
    with unit_of_work(db) as retry:
        run_perform_job(retry, action_id)
    with db() as check:
        row = check.get_one(OutboundAction, action_id)
        assert row.state == "sent" and row.attempts == 2
        if answer is not None:
            assert row.external_ref == answer.external_ref
        assert tasks(check, action_id) == []
    assert len(connector.sim.messages_in("g1")) == 1


def test_past_the_platform_s_memory_of_keys_a_person_checks(
    db: sessionmaker[Session], platform: tuple[TxnIdPlatform, int]
) -> None:
    connector, action_id = platform
    with unit_of_work(db) as first:
        prepared = prepare(first, action_id)
        assert prepared is not None
        first.execute(
            update(OutboundActionTransition)
            .where(OutboundActionTransition.action_id == action_id)
            .values(at=utcnow() - timedelta(minutes=31))
        )
    call(prepared)  # then the worker dies, and the platform forgets the key
    connector.sim.state.performed.clear()
    with unit_of_work(db) as retry:
        run_perform_job(retry, action_id)
    with db() as check:
        assert check.get_one(OutboundAction, action_id).state == "uncertain"
        assert tasks(check, action_id) == [TASK_UNCERTAIN_SEND]
    assert len(connector.sim.messages_in("g1")) == 1


def test_a_call_that_breaks_off_is_repeated_later_not_handed_over(
    db: sessionmaker[Session], platform: tuple[TxnIdPlatform, int]
) -> None:
    connector, action_id = platform
    with unit_of_work(db) as first:
        prepared = prepare(first, action_id)
    assert prepared is not None
    call(prepared)  # it reached the platform, but the answer was lost on the way back
    with unit_of_work(db) as after:
        record(after, prepared, ConnectionResetError("connection reset by peer"))
    with db() as check:
        row = check.get_one(OutboundAction, action_id)
        assert row.state == "sending" and "ConnectionResetError" in (row.last_error or "")
        assert tasks(check, action_id) == []
    with unit_of_work(db) as later:
        run_perform_job(later, action_id)
    with db() as check:
        assert check.get_one(OutboundAction, action_id).state == "sent"
    assert len(connector.sim.messages_in("g1")) == 1

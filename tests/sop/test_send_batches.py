"""The sends of SOP runs go out in batches of perform jobs: a worker's batch writes its actions'
``sending`` (with the attempt) before any call, and their ``sent`` with the jobs' completions,
each in one statement for the whole batch — and every action's history stays complete and in
order, also when one job of the batch takes the slow path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from qunyun.connectors.dispatch import PERFORM_JOB, ActionRequest, history, request_actions
from qunyun.connectors.registry import bind
from qunyun.db.session import unit_of_work
from qunyun.models import OutboundAction
from qunyun.worker.queue import enqueue
from tests.sop.conftest import SopWorld


@contextmanager
def counting(kind: str) -> Iterator[list[str]]:
    """The statements starting with ``kind`` (``UPDATE outbound_actions``…) run inside the block."""
    seen: list[str] = []

    def before(conn: object, cursor: object, statement: str, *args: object) -> None:
        text = " ".join(statement.split())
        if text.upper().startswith(kind.upper()):
            seen.append(text)

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", before)


def request_sends(world: SopWorld, count: int) -> list[int]:
    with unit_of_work(world.db) as s:
        requests = [
            ActionRequest("send_group_message", {"text": f"第{n}条"}, f"batch:{n}", group_id=world.groups["S1"])
            for n in range(count)
        ]
        actions = request_actions(s, world.org_id, requests)
        return [a.id for a in actions if isinstance(a, OutboundAction)]


def states(session: Session, action_id: int) -> list[tuple[str | None, str, int | None]]:
    return [(h.from_state, h.to_state, h.attempt) for h in history(session, action_id)]


def test_a_batch_of_sends_writes_sending_and_sent_once_for_the_batch(sop_world: SopWorld) -> None:
    ids = request_sends(sop_world, 8)
    with bind(sop_world.connection_id, sop_world.sim), counting("UPDATE outbound_actions") as updates:
        assert sop_world.run_jobs() == 8
    # One UPDATE marks the batch sending (committed before the calls), one records them sent.
    assert len(updates) == 2
    sent = [m.text for m in sop_world.sim.sim.messages_in("S1") if m.by_bot]
    assert sorted(sent) == sorted(f"第{n}条" for n in range(8))
    with sop_world.db() as s:
        for action_id in ids:
            row = s.get(OutboundAction, action_id)
            assert row is not None
            assert (row.state, row.attempts, row.last_error) == ("sent", 1, None)
            assert row.external_ref
            assert states(s, action_id) == [
                (None, "planned", None),
                ("planned", "queued", None),
                ("queued", "sending", 1),
                ("sending", "sent", 1),
            ]


def test_a_second_job_for_an_action_in_the_same_batch_sees_it_sending_and_never_sends_again(
    sop_world: SopWorld,
) -> None:
    [first, other] = request_sends(sop_world, 2)
    with unit_of_work(sop_world.db) as s:
        # A stray second perform job for the first action (as a sweep could add), claimed with it.
        enqueue(s, PERFORM_JOB, {"action_id": first}, org_id=sop_world.org_id, key=f"{PERFORM_JOB}:{first}:again")
    with bind(sop_world.connection_id, sop_world.sim):
        sop_world.run_jobs()
    sent = [m.text for m in sop_world.sim.sim.messages_in("S1") if m.by_bot]
    assert sorted(sent) == ["第0条", "第1条"]  # each once
    with sop_world.db() as s:
        row = s.scalar(select(OutboundAction).where(OutboundAction.id == first))
        assert row is not None
        # The simulator cannot say whether the first attempt went out: a person checks. The
        # deferred "sending" of the batch is written before the move the second job makes.
        assert row.state == "uncertain"
        assert states(s, first)[2:] == [("queued", "sending", 1), ("sending", "uncertain", 1)]
        assert states(s, other)[2:] == [("queued", "sending", 1), ("sending", "sent", 1)]

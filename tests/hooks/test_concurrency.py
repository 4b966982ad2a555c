"""The same delivery arriving twice at once is stored once; refusals counted at once all add up
(on SQLite the write lock serializes them; on PostgreSQL the unique keys decide)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from qunyun.connectors.webhooks import RejectReason, Verified
from qunyun.db.session import unit_of_work
from qunyun.hooks.schemas import Receipt
from qunyun.hooks.service import receive, record_rejection
from qunyun.models import Connection, WebhookDelivery
from tests.api.conftest import World
from tests.hooks.conftest import body_of, count, events, hook_jobs, rejections

THREADS = 6


def _at_once(world: World, work: Callable[[Any], Any]) -> list[Any]:
    """Run ``work(session)`` in THREADS threads that start together, each in its own unit of work."""
    barrier = threading.Barrier(THREADS)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            with unit_of_work(world.db) as session:
                results.append(work(session))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


def test_the_same_delivery_at_once_is_stored_once(world: World, connection: int) -> None:
    payload = events()
    verified = Verified(payload=payload, delivery_id="d-race", sent_at=datetime.now(UTC))

    def deliver(session: Any) -> Receipt:
        row = session.get(Connection, connection)
        return receive(session, row, verified, body_of(payload), now=datetime.now(UTC))

    receipts = _at_once(world, deliver)

    assert sorted(r.created for r in receipts) == [False] * (THREADS - 1) + [True]
    assert len({r.delivery_id for r in receipts}) == 1
    assert count(world.db, WebhookDelivery) == 1
    assert len(hook_jobs(world.db)) == 1


def test_refusals_at_once_all_count(world: World, connection: int) -> None:
    def refuse(session: Any) -> None:
        row = session.scalar(select(Connection).where(Connection.id == connection))
        record_rejection(session, row, RejectReason.BAD_SIGNATURE, now=datetime.now(UTC))
        record_rejection(session, None, RejectReason.NOT_FOUND, now=datetime.now(UTC))

    _at_once(world, refuse)

    assert rejections(world.db) == {(connection, "bad_signature"): THREADS, (None, "not_found"): THREADS}

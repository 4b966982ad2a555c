"""POST /hooks/{platform}/{connection_id}: signed deliveries are stored, answered at once and
ingested by a job, once; refusals are the right 4xx, counted, and store nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from qunyun.connectors.simulator.verification import signed_headers
from qunyun.models import Event, Group, Job, WebhookDelivery
from tests.api.conftest import World
from tests.hooks.conftest import (
    SECRET,
    TEXT,
    add_connection,
    count,
    deliver,
    deliveries,
    events,
    hook_jobs,
    rejections,
    run_jobs,
)


def _events_of(world: World, org_id: int) -> list[tuple[str, str]]:
    with world.db() as s:
        query = select(Event.external_id, Event.source).where(Event.org_id == org_id, Event.source == "webhook")
        return list(s.execute(query.order_by(Event.external_id)))


def test_a_signed_delivery_is_answered_at_once_and_ingested_once(
    client: TestClient, world: World, connection: int
) -> None:
    response = deliver(client, connection, events(), delivery_id="d-1")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "received"}
    [delivery] = deliveries(world.db)
    assert (delivery.status, delivery.connection_id, delivery.org_id) == ("received", connection, world.org_a)
    assert delivery.delivery_id == "d-1" and delivery.dedupe_key == "id:d-1"
    assert delivery.payload == events()
    assert _events_of(world, world.org_a) == []  # answered before anything is ingested
    [job] = hook_jobs(world.db)
    assert job.payload == {"delivery_id": delivery.id} and job.org_id == world.org_a

    run_jobs(world.db)

    [delivery] = deliveries(world.db)
    assert (delivery.status, delivery.events, delivery.events_stored, delivery.attempts) == ("processed", 3, 3, 1)
    assert delivery.processed_at is not None and delivery.error is None
    assert _events_of(world, world.org_a) == [("e-g", "webhook"), ("e-j", "webhook"), ("e-m", "webhook")]
    with world.db() as s:
        group = s.scalars(select(Group).where(Group.external_id == "G-hooks")).one()
        assert (group.org_id, group.connection_id, group.platform) == (world.org_a, connection, "simulator")
        assert s.scalar(select(Job.status).where(Job.id == job.id)) == "done"


def test_one_event_without_the_batch_wrapper_is_a_delivery_too(
    client: TestClient, world: World, connection: int
) -> None:
    event = events()["events"][0]
    assert deliver(client, connection, event).status_code == 200
    run_jobs(world.db)
    assert _events_of(world, world.org_a) == [("e-g", "webhook")]
    assert deliveries(world.db)[0].dedupe_key.startswith("sha256:")


def test_a_redelivery_changes_nothing(client: TestClient, world: World, connection: int) -> None:
    assert deliver(client, connection, events(), delivery_id="d-1").json() == {"status": "received"}
    run_jobs(world.db)
    before = deliveries(world.db)[0]

    # The platform retries the same delivery (a new timestamp, the same id), before and after processing.
    again = deliver(client, connection, events(), delivery_id="d-1", at=datetime.now(UTC) + timedelta(seconds=5))
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    # Without a delivery id the body's hash is the key.
    assert deliver(client, connection, events("x")).json() == {"status": "received"}
    assert deliver(client, connection, events("x")).json() == {"status": "duplicate"}

    assert count(world.db, WebhookDelivery) == 2
    assert len(hook_jobs(world.db)) == 2
    after = deliveries(world.db)[0]
    assert (after.status, after.processed_at, after.attempts) == (before.status, before.processed_at, before.attempts)
    run_jobs(world.db)
    assert len(_events_of(world, world.org_a)) == 6


def test_the_same_events_in_another_delivery_are_stored_once(client: TestClient, world: World, connection: int) -> None:
    deliver(client, connection, events(), delivery_id="d-1")
    deliver(client, connection, events(), delivery_id="d-2")
    run_jobs(world.db)

    first, second = deliveries(world.db)
    assert (first.status, first.events_stored) == ("processed", 3)
    assert (second.status, second.events, second.events_stored) == ("processed", 3, 0)
    assert len(_events_of(world, world.org_a)) == 3


def test_no_login_is_needed_and_a_forged_credential_does_not_matter(
    client: TestClient, world: World, connection: int
) -> None:
    response = deliver(client, connection, events(), headers={"Authorization": "Bearer forged"})
    assert response.status_code == 200, response.text


def _other_secret(client: TestClient, connection: int) -> object:
    return deliver(client, connection, events(), secret="not-the-secret-at-all")


def _tampered(client: TestClient, connection: int) -> object:
    """Signed for one body, sent with another."""
    headers = signed_headers(SECRET, orjson.dumps(events()), at=datetime.now(UTC))
    return client.post(f"/hooks/simulator/{connection}", content=orjson.dumps(events("changed")), headers=headers)


REFUSALS: dict[str, tuple[Callable[[TestClient, int], object], int, str]] = {
    "unsigned": (lambda c, conn: deliver(c, conn, events(), secret=None), 401, "unsigned"),
    "timestamp only": (
        lambda c, conn: deliver(c, conn, events(), secret=None, headers={"X-Qunyun-Timestamp": "1700000000"}),
        401,
        "unsigned",
    ),
    "tampered body": (_tampered, 401, "bad_signature"),
    "wrong secret": (_other_secret, 401, "bad_signature"),
    "not sha256": (
        lambda c, conn: deliver(c, conn, events(), headers={"X-Qunyun-Signature": "md5=abc"}),
        401,
        "bad_signature",
    ),
    "old timestamp": (
        lambda c, conn: deliver(c, conn, events(), at=datetime.now(UTC) - timedelta(seconds=301)),
        409,
        "replayed",
    ),
    "future timestamp": (
        lambda c, conn: deliver(c, conn, events(), at=datetime.now(UTC) + timedelta(seconds=400)),
        409,
        "replayed",
    ),
    "not json": (lambda c, conn: deliver(c, conn, b'{"events": [}'), 400, "malformed"),
    "not an object": (lambda c, conn: deliver(c, conn, b"[1, 2]"), 400, "malformed"),
    "NaN": (lambda c, conn: deliver(c, conn, b'{"x": NaN}'), 400, "malformed"),
    "infinite number": (lambda c, conn: deliver(c, conn, b'{"x": 1e999}'), 400, "malformed"),
    "deep nesting": (lambda c, conn: deliver(c, conn, b"[" * 100_000 + b"]" * 100_000), 400, "malformed"),
    "not utf-8": (lambda c, conn: deliver(c, conn, b'{"x": "\xff"}'), 400, "malformed"),
    "delivery id too long": (lambda c, conn: deliver(c, conn, events(), delivery_id="d" * 201), 400, "malformed"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_request_is_a_4xx_counted_and_stores_nothing(
    client: TestClient, world: World, connection: int, case: str
) -> None:
    send, status, reason = REFUSALS[case]

    response = send(client, connection)

    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.json()["code"] == reason  # type: ignore[attr-defined]
    assert count(world.db, WebhookDelivery) == 0
    assert hook_jobs(world.db) == []
    assert rejections(world.db) == {(connection, reason): 1}
    send(client, connection)
    assert rejections(world.db) == {(connection, reason): 2}


def test_unknown_addresses_are_404_and_counted_for_nobody(client: TestClient, world: World, connection: int) -> None:
    other_platform = deliver(client, connection, events(), platform="wecom")
    missing = deliver(client, 999_999, events())
    not_a_number = deliver(client, "abc", events())
    too_big = deliver(client, str(2**40), events())
    unknown_platform = deliver(client, connection, events(), platform="nope")

    for response in (other_platform, missing, not_a_number, too_big, unknown_platform):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "not_found"
    assert rejections(world.db) == {(None, "not_found"): 5}
    assert count(world.db, WebhookDelivery) == 0


def test_a_disabled_connection_refuses_its_webhooks(client: TestClient, world: World) -> None:
    disabled = add_connection(world, name="off", status="disabled")
    response = deliver(client, disabled, events())
    assert response.status_code == 410 and response.json()["code"] == "disabled"
    assert rejections(world.db) == {(disabled, "disabled"): 1}
    assert count(world.db, WebhookDelivery) == 0


def test_a_connection_without_a_webhook_secret_takes_no_webhooks(client: TestClient, world: World) -> None:
    bare = add_connection(world, name="no-secret", secret=None)
    response = deliver(client, bare, events())
    assert response.status_code == 401 and response.json()["code"] == "unsigned"
    assert rejections(world.db) == {(bare, "unsigned"): 1}


def test_a_platform_without_a_verifier_takes_no_webhooks(client: TestClient, world: World) -> None:
    imported = add_connection(world, name="imported", platform="import")  # imported data: no webhooks
    response = deliver(client, imported, events(), platform="import")
    assert response.status_code == 410 and response.json()["code"] == "disabled"


def test_the_replay_window_turned_off_accepts_old_timestamps(
    client: TestClient, world: World, connection: int, set_env: Callable[[str, str], None]
) -> None:
    set_env("QUNYUN_WEBHOOK_MAX_AGE", "0")
    response = deliver(client, connection, events(), at=datetime.now(UTC) - timedelta(days=30))
    assert response.status_code == 200, response.text


def test_a_narrower_replay_window(
    client: TestClient, world: World, connection: int, set_env: Callable[[str, str], None]
) -> None:
    set_env("QUNYUN_WEBHOOK_MAX_AGE", "60")
    assert deliver(client, connection, events(), at=datetime.now(UTC) - timedelta(seconds=90)).status_code == 409
    assert deliver(client, connection, events(), at=datetime.now(UTC) - timedelta(seconds=30)).status_code == 200


def test_the_body_cap_applies(
    client: TestClient, world: World, connection: int, set_env: Callable[[str, str], None]
) -> None:
    set_env("QUNYUN_MAX_BODY_BYTES", "2048")
    response = deliver(client, connection, events(text="长" * 2000))
    assert response.status_code == 413
    # A platform reads the refusal as JSON, not as the console's page.
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"]
    assert count(world.db, WebhookDelivery) == 0


def test_a_signed_handshake_is_echoed_and_stores_nothing(client: TestClient, world: World, connection: int) -> None:
    headers = signed_headers(SECRET, b"ping-123", at=datetime.now(UTC))
    response = client.get(f"/hooks/simulator/{connection}", params={"challenge": "ping-123"}, headers=headers)
    assert response.status_code == 200 and response.text == "ping-123"

    forged = client.get(f"/hooks/simulator/{connection}", params={"challenge": "other"}, headers=headers)
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"
    assert count(world.db, WebhookDelivery) == 0 and hook_jobs(world.db) == []


def test_nothing_of_the_content_is_logged(
    client: TestClient, world: World, connection: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    deliver(client, connection, events(), delivery_id="d-1")
    deliver(client, connection, events(), delivery_id="d-1")
    deliver(client, connection, events(), secret="wrong-secret-123")
    deliver(client, connection, events(), at=datetime.now(UTC) - timedelta(hours=1))
    deliver(client, connection, {"kind": "bogus", "text": TEXT})
    run_jobs(world.db)

    assert deliveries(world.db)[-1].status == "failed"
    logged = caplog.text
    assert "webhook refused" in logged and "webhook received" in logged  # it is logged…
    for secret in (TEXT, "13800000000", "bogus", SECRET, "wrong-secret-123", "Hooks 群"):
        assert secret not in logged  # …without content or secrets


def test_a_delivery_of_another_organisation_connection_belongs_to_it(client: TestClient, world: World) -> None:
    theirs = add_connection(world, world.org_b, name="theirs")
    assert deliver(client, theirs, events()).status_code == 200
    run_jobs(world.db)
    assert _events_of(world, world.org_a) == []
    assert len(_events_of(world, world.org_b)) == 3
    with world.db() as s:
        assert s.scalar(select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.org_id == world.org_b))


def test_hostile_but_valid_json_is_stored_and_fails_or_passes_without_an_error(
    client: TestClient, world: World, connection: int
) -> None:
    nul = events("nul", text="a\u0000b")
    huge = {"events": [{"id": "big", "ts": "2026-03-02T09:00:00+08:00", "kind": "order.paid", "order": "o",
                        "member": "m", "amount": "9" * 400}]}  # fmt: skip
    big_int = b'{"deep": [[[[[[[[[[{"x": 1000000000000000000000000000000}]]]]]]]]]]}'
    for payload in (nul, huge, big_int):
        assert deliver(client, connection, payload).status_code == 200
    run_jobs(world.db)
    assert {d.status for d in deliveries(world.db)} <= {"processed", "failed"}
    assert [j.status for j in hook_jobs(world.db)] == ["done"] * 3

"""A delivery that fails to normalize stays in the inbox as failed, shown to leads only, and
replays from the console once the cause is fixed; processed payloads are purged after the
retention period."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.connectors.registry import bind
from qunyun.connectors.simulator.client import SimulatorConnector
from qunyun.errors import InvalidInput
from qunyun.hooks.service import purge_payloads
from qunyun.locale import Msg
from qunyun.models import Event, Job, WebhookDelivery
from qunyun.worker.runner import Worker
from qunyun.worker.scheduler import periodic_jobs
from tests.api.conftest import World, console_login, csrf_from
from tests.hooks.conftest import SECRET, TEXT, add_connection, deliver, deliveries, events, hook_jobs, run_jobs


class BrokenUntilFixed(SimulatorConnector):
    """A connector whose normalize refuses every payload until ``fixed`` (a bug, say)."""

    fixed = False

    def normalize(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not self.fixed:
            raise InvalidInput(Msg("err.sim.events_list"), field="events")
        return super().normalize(raw)


def _event_ids(world: World) -> list[str]:
    with world.db() as s:
        query = select(Event.external_id).where(Event.org_id == world.org_a, Event.source == "webhook")
        return sorted(s.scalars(query))


def _replay(client: TestClient, delivery_id: int) -> Any:
    page = client.get(f"/inbox/{delivery_id}")
    assert page.status_code == 200, page.text
    return client.post(
        f"/inbox/{delivery_id}/replay", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False
    )


def test_a_payload_that_fails_to_normalize_stays_failed_then_replays(
    client: TestClient, world: World, connection: int
) -> None:
    connector = BrokenUntilFixed(namespace="broken")
    with bind(connection, connector):
        deliver(client, connection, events(), delivery_id="d-1")
        run_jobs(world.db)

        [delivery] = deliveries(world.db)
        assert (delivery.status, delivery.attempts) == ("failed", 1)
        assert delivery.error == "invalid_input events err.sim.events_list"
        assert delivery.payload == events()  # kept for inspection
        assert _event_ids(world) == []
        [job] = hook_jobs(world.db)
        assert job.status == "done"  # the failure is recorded, not retried forever

        console_login(client, "lead")
        page = client.get(f"/inbox/{delivery.id}")
        assert 'id="replay-form"' in page.text and TEXT in page.text

        connector.fixed = True
        response = _replay(client, delivery.id)
        assert response.status_code == 303 and response.headers["location"] == f"/inbox/{delivery.id}?done=replayed"
        assert deliveries(world.db)[0].status == "received"
        assert _replay(client, delivery.id).status_code == 409  # only a failed delivery replays
        run_jobs(world.db)

    [delivery] = deliveries(world.db)
    assert (delivery.status, delivery.attempts, delivery.events_stored, delivery.error) == ("processed", 2, 3, None)
    assert _event_ids(world) == ["e-g", "e-j", "e-m"]
    assert [j.key for j in hook_jobs(world.db)] == [f"hooks.process:{delivery.id}#0", f"hooks.process:{delivery.id}#1"]
    assert 'id="replay-form"' not in client.get(f"/inbox/{delivery.id}").text


def test_an_invalid_event_fails_the_delivery_without_quoting_it(
    client: TestClient, world: World, connection: int
) -> None:
    deliver(client, connection, {"events": [{"id": "x", "kind": TEXT}]})
    run_jobs(world.db)
    [delivery] = deliveries(world.db)
    assert delivery.status == "failed"
    assert delivery.error == "invalid_input events[0].kind err.sim.unknown_kind"
    assert _event_ids(world) == []


def test_a_delivery_of_a_connection_disabled_meanwhile_fails_and_replays_once_enabled(
    client: TestClient, world: World, connection: int
) -> None:
    from qunyun.models import Connection

    deliver(client, connection, events())
    with world.db() as s:
        row = s.get(Connection, connection)
        assert row is not None
        row.status = "disabled"
        s.commit()
    run_jobs(world.db)
    [delivery] = deliveries(world.db)
    assert delivery.status == "failed" and delivery.error is not None and "connection_id" in delivery.error

    with world.db() as s:
        row = s.get(Connection, connection)
        assert row is not None
        row.status = "active"
        row.updated_at = datetime.now(UTC)
        s.commit()
    console_login(client, "lead")
    assert _replay(client, delivery.id).status_code == 303
    run_jobs(world.db)
    assert deliveries(world.db)[0].status == "processed"
    assert _event_ids(world) == ["e-g", "e-j", "e-m"]


def test_the_inbox_page_lists_deliveries_and_refusals(client: TestClient, world: World, connection: int) -> None:
    deliver(client, connection, events(), delivery_id="d-ok")
    deliver(client, connection, {"kind": "bogus"}, delivery_id="d-bad")
    deliver(client, connection, events(), secret="wrong-secret-123")
    run_jobs(world.db)
    theirs = add_connection(world, world.org_b, name="theirs")
    deliver(client, theirs, events(), delivery_id="d-theirs")

    console_login(client, "lead")
    page = client.get("/inbox")
    assert page.status_code == 200
    assert 'href="/inbox"' in page.text  # the navigation links it for leads
    assert "d-ok" in page.text and "d-bad" in page.text and "d-theirs" not in page.text
    assert page.text.index("d-bad") < page.text.index("d-ok")  # newest first
    assert 'data-reason="bad_signature"' in page.text and "签名错误" in page.text
    assert TEXT not in page.text  # payloads only on a delivery's own page

    failed = client.get("/inbox", params={"status": "failed"}).text
    assert "d-bad" in failed and "d-ok" not in failed
    assert "d-ok" in client.get("/inbox", params={"connection": str(connection)}).text
    assert "d-ok" not in client.get("/inbox", params={"connection": str(theirs)}).text
    assert client.get("/inbox", params={"status": "nonsense", "connection": "x" * 50}).status_code == 200


@pytest.mark.parametrize("who", ["owner", "admin", "operator", "analyst"])
def test_the_inbox_is_for_leads_only(client: TestClient, world: World, connection: int, who: str) -> None:
    deliver(client, connection, {"kind": "bogus", "text": TEXT})
    run_jobs(world.db)
    [delivery] = deliveries(world.db)

    console_login(client, who)
    assert client.get("/").status_code == 200
    assert 'href="/inbox"' not in client.get("/").text
    for path in ("/inbox", f"/inbox/{delivery.id}"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert TEXT not in response.text
    token = csrf_from(client.get("/").text)
    replay = client.post(f"/inbox/{delivery.id}/replay", data={"csrf_token": token}, follow_redirects=False)
    assert replay.status_code == 403
    assert deliveries(world.db)[0].status == "failed"


def test_another_organisation_s_delivery_is_not_found(client: TestClient, world: World) -> None:
    theirs = add_connection(world, world.org_b, name="theirs")
    deliver(client, theirs, {"kind": "bogus"})
    run_jobs(world.db)
    [delivery] = deliveries(world.db)

    console_login(client, "lead")
    assert client.get(f"/inbox/{delivery.id}").status_code == 404
    token = csrf_from(client.get("/inbox").text)
    assert client.post(f"/inbox/{delivery.id}/replay", data={"csrf_token": token}).status_code == 404
    assert client.get("/inbox/0").status_code == 404
    assert client.get("/inbox/99999999999999999999").status_code == 404


def test_a_replay_needs_the_csrf_token(client: TestClient, world: World, connection: int) -> None:
    deliver(client, connection, {"kind": "bogus"})
    run_jobs(world.db)
    [delivery] = deliveries(world.db)
    console_login(client, "lead")
    assert client.post(f"/inbox/{delivery.id}/replay", data={"csrf_token": "forged"}).status_code == 403
    assert deliveries(world.db)[0].status == "failed"


def test_processed_payloads_are_purged_after_the_retention(
    client: TestClient, world: World, connection: int, set_env: Callable[[str, str], None]
) -> None:
    deliver(client, connection, events(), delivery_id="d-1")
    deliver(client, connection, {"kind": "bogus"}, delivery_id="d-bad")
    run_jobs(world.db)
    now = datetime.now(UTC)

    with world.db() as s:
        assert purge_payloads(s, now=now + timedelta(days=6), retention_days=7) == 0
        assert purge_payloads(s, now=now + timedelta(days=7, seconds=1), retention_days=7) == 1
        s.commit()
    processed, failed = deliveries(world.db)
    assert (processed.payload, processed.purged_at is not None) == (None, True)
    assert failed.payload == {"kind": "bogus"}  # kept for inspection and replay
    # The row stays: a late redelivery is still recognised.
    assert deliver(client, connection, events(), delivery_id="d-1").json() == {"status": "duplicate"}

    console_login(client, "lead")
    page = client.get(f"/inbox/{processed.id}")
    assert 'id="delivery-payload-purged"' in page.text and TEXT not in page.text


def test_the_hourly_purge_job_and_retention_zero(
    client: TestClient, world: World, connection: int, set_env: Callable[[str, str], None]
) -> None:
    assert any(p.kind == "hooks.purge_payloads" and p.every == timedelta(hours=1) for p in periodic_jobs())
    set_env("QUNYUN_WEBHOOK_PAYLOAD_RETENTION_DAYS", "0")
    deliver(client, connection, events(), delivery_id="d-1")
    run_jobs(world.db)
    [delivery] = deliveries(world.db)
    assert (delivery.status, delivery.payload) == ("processed", None)  # 0: gone once processed

    worker = Worker("hooks-purge", factory=world.db)
    [key] = [k for k in worker.schedule_periodic(force=True) if k.startswith("hooks.purge_payloads")]
    while worker.run_next():
        pass
    with world.db() as s:
        assert s.scalar(select(Job.status).where(Job.key == key)) == "done"
        assert s.scalar(select(WebhookDelivery.purged_at)) is not None


def test_a_purged_delivery_cannot_be_replayed(client: TestClient, world: World, connection: int) -> None:
    deliver(client, connection, {"kind": "bogus"})
    run_jobs(world.db)
    with world.db() as s:
        delivery = s.scalars(select(WebhookDelivery)).one()
        delivery.payload = None
        s.commit()
        delivery_id = delivery.id
    console_login(client, "lead")
    page = client.get(f"/inbox/{delivery_id}")
    assert 'id="replay-form"' not in page.text
    token = csrf_from(page.text)
    assert client.post(f"/inbox/{delivery_id}/replay", data={"csrf_token": token}).status_code == 409


def test_the_secret_is_never_shown(client: TestClient, world: World, connection: int) -> None:
    deliver(client, connection, events())
    console_login(client, "lead")
    for path in ("/inbox", f"/inbox/{deliveries(world.db)[0].id}"):
        assert SECRET not in client.get(path).text


def test_hostile_inbox_urls_are_never_a_500(client: TestClient, world: World, connection: int) -> None:
    deliver(client, connection, {"kind": "bogus"})
    run_jobs(world.db)
    console_login(client, "lead")
    for value in ("0", "-1", "abc", str(2**31), str(2**63), "9" * 40):
        assert client.get(f"/inbox/{value}").status_code == 404
        for name in ("page", "status", "connection"):
            assert client.get(f"/inbox?{name}={value}").status_code == 200
    page = client.get("/inbox?page=2")
    assert page.status_code == 200


class Crashing(SimulatorConnector):
    """A connector whose normalize fails with an unexpected error (a bug, not bad content)."""

    def normalize(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise RuntimeError("boom")


def test_an_unexpected_error_is_retried_and_fails_the_delivery_on_the_last_attempt(
    client: TestClient, world: World, connection: int
) -> None:
    with bind(connection, Crashing(namespace="crashing")):
        deliver(client, connection, events())
        run_jobs(world.db)
        [job] = hook_jobs(world.db)
        assert (job.status, job.attempts) == ("queued", 1)  # retried later, with backoff
        [delivery] = deliveries(world.db)
        assert (delivery.status, delivery.attempts) == ("received", 0)

        with world.db() as s:
            stored = s.get(Job, job.id)
            assert stored is not None
            stored.run_at = datetime.now(UTC)
            stored.max_attempts = 2
            s.commit()
        run_jobs(world.db)

    [job] = hook_jobs(world.db)
    assert job.status == "done"
    [delivery] = deliveries(world.db)
    assert (delivery.status, delivery.error) == ("failed", "retries_exhausted RuntimeError")


def test_a_replay_is_audited(client: TestClient, world: World, connection: int) -> None:
    from qunyun.models import AuditLog

    deliver(client, connection, {"kind": "bogus"})
    run_jobs(world.db)
    [delivery] = deliveries(world.db)
    console_login(client, "lead")
    assert _replay(client, delivery.id).status_code == 303
    with world.db() as s:
        entry = s.scalars(select(AuditLog).where(AuditLog.action == "webhook.replay")).one()
        assert (entry.staff_id, entry.target_type, entry.target_id) == (
            world.staff["lead"],
            "webhook_delivery",
            str(delivery.id),
        )

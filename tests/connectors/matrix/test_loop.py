"""The whole loop against a real Synapse, in bot mode (the worker's /sync) and in appservice mode
(transactions pushed to the webhook inbox): a room created from a playbook → members join through
a live code's link → they post → moderation warns twice and on the third strike redacts the
message and kicks → an SOP step posts on time, exactly once → the stats and the group's timeline
show it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.connections.secrets import encrypt
from qunyun.connectors.actions import CreateGroup
from qunyun.connectors.dispatch import request_action
from qunyun.connectors.matrix.sync import sync_connection
from qunyun.db.session import unit_of_work
from qunyun.groups.service import group_timeline
from qunyun.livecodes.jobs import maintain
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.livecodes.service import create_live_code
from qunyun.models import (
    Connection,
    DeliveryStatus,
    Group,
    GroupDaily,
    ModerationDecision,
    OutboundAction,
    Playbook,
    Role,
    SopRun,
    WebhookDelivery,
)
from qunyun.moderation import service as moderation
from qunyun.sop import runs
from qunyun.sop import service as sop
from qunyun.sop.execute import claim_due
from qunyun.sop.types import StepSpec
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from qunyun.worker.runner import Worker, load_handler_modules
from tests.connections.helpers import connection_row
from tests.connectors.matrix.homeserver import Homeserver, User

ZONE = ZoneInfo("Asia/Shanghai")
SPAM = "加我微信领红包"
SOP_TEXT = "{group_name}的朋友们晚上好"


@dataclass
class Loop:
    db: sessionmaker[Session]
    synapse: Homeserver
    client: TestClient
    mode: str
    org_id: int
    lead_id: int
    owner_id: int
    playbook_id: int
    connection_id: int
    bot: User  # the account the connector acts as (bot mode: its own; appservice: the AS sender)
    mark: int = 0  # appservice mode: the relay's transactions seen so far

    def scope(self) -> Scope:
        return Scope(staff_id=self.lead_id, org_id=self.org_id, role=Role.LEAD)

    def run_jobs(self, now: datetime | None = None) -> int:
        clock = (lambda: int(now.timestamp() * 1_000_000)) if now is not None else None
        worker = Worker("matrix-loop", factory=self.db, **({"clock": clock} if clock else {}))
        ran = 0
        while True:
            jobs = worker.claim_batch(50)
            if not jobs:
                return ran
            worker.execute_batch(jobs)
            ran += len(jobs)

    def pump(self, now: datetime | None = None, *, expect: str | None = None) -> None:
        """Bring in what happened on the homeserver, then run what is due (and what it queues).
        Appservice mode: wait for the transaction that carries ``expect`` (an event or room id)."""
        if self.mode == "bot":
            with unit_of_work(self.db) as s:
                sync_connection(s, s.get_one(Connection, self.connection_id), now=utcnow())
        else:
            self._wait_for_transactions(expect)
        self.run_jobs(now)

    def _wait_for_transactions(self, expect: str | None) -> None:
        """Appservice mode: the homeserver pushes on its own, late on a busy machine. Wait for a
        transaction carrying ``expect`` (or for the next one, up to 15 s), then until the
        homeserver has sent nothing for 1.5 s."""
        relay = self.synapse.relay
        mark = self.mark
        needle = expect.encode() if expect is not None else None
        deadline = time.monotonic() + (90 if needle is not None else 15)
        while time.monotonic() < deadline:
            fresh = relay.bodies[mark:]
            if (needle is None and fresh) or (needle is not None and any(needle in b for b in fresh)):
                break
            time.sleep(0.05)
        else:
            if needle is not None:
                raise AssertionError(f"no transaction with {expect} was taken: {relay.errors[-3:]}")
        quiet_since, seen = time.monotonic(), relay.calls
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if relay.calls != seen:
                quiet_since, seen = time.monotonic(), relay.calls
            elif time.monotonic() - quiet_since > 1.5:
                break
        self.mark = len(relay.bodies)

    def action(self, key: str) -> OutboundAction:
        with self.db() as s:
            return s.scalars(select(OutboundAction).where(OutboundAction.idempotency_key == key)).one()


def make_loop(db: sessionmaker[Session], synapse: Homeserver, client: TestClient, mode: str, bot: User) -> Loop:
    load_handler_modules()
    with unit_of_work(db) as s:
        org = create_organisation(s, name="骑迹单车", slug="qiji")
        owner = create_staff(s, org.id, username="owner1", password="password-1", role="owner", display_name="王群主")
        lead = create_staff(s, org.id, username="lead1", password="password-1", role="lead")
        book = Playbook(org_id=org.id, name="Matrix 骑友群", settings={}, created_at=utcnow(), welcome_text="")
        s.add(book)
        if mode == "bot":
            settings = {"mode": "bot", "homeserver": synapse.url, "user_id": bot.user_id}
            secrets = {"access_token": bot.token}
        else:
            settings = {"mode": "appservice", "homeserver": synapse.url, "user_id": synapse.as_user}
            secrets = {"as_token": synapse.as_token, "hs_token": synapse.hs_token}
        row = connection_row(org.id, "matrix", platform="matrix", settings=settings, secrets=encrypt(secrets))
        s.add(row)
        s.flush()
        ids = (org.id, lead.id, owner.id, book.id, row.id)
    loop = Loop(db, synapse, client, mode, *ids, bot=bot)
    with unit_of_work(db) as s:
        moderation.create_policy(
            s,
            loop.scope(),
            name="群规",
            target_type="organisation",
            settings={"rules": [{"name": "广告", "kind": "words"}]},
            words=[{"word": "加我微信", "category": "广告"}],
        )
    return loop


@pytest.fixture(params=["bot", "appservice"])
def loop(
    request: pytest.FixtureRequest,
    db: sessionmaker[Session],
    synapse: Homeserver,
    new_user: Callable[[str], User],
    api_app: FastAPI,
) -> Iterator[Loop]:
    mode = str(request.param)
    with TestClient(api_app) as client:
        bot = new_user("bot") if mode == "bot" else synapse.user(synapse.as_user, synapse.as_token)
        world = make_loop(db, synapse, client, mode, bot)
        world.mark = len(synapse.relay.bodies)
        if mode == "appservice":

            def forward(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
                keep = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
                url = f"/hooks/matrix/{world.connection_id}{path}" + (f"?{query}" if query else "")
                response = client.request(method, url, headers=keep, content=body)
                return response.status_code, response.content

            synapse.relay.forward = forward
        try:
            yield world
        finally:
            synapse.relay.forward = None


def test_the_whole_loop_on_synapse(loop: Loop, new_user: Callable[[str], User]) -> None:
    fan, spammer = new_user("fan"), new_user("spammer")
    if loop.mode == "bot":
        loop.pump()  # the first sync: where the bot's history starts

    # A room created from the playbook (through the two-phase send path, by the worker).
    with unit_of_work(loop.db) as s:
        request_action(
            s,
            loop.org_id,
            CreateGroup.kind,
            connection_id=loop.connection_id,
            payload={"name": "Matrix 骑友1群"},
            idempotency_key="loop:room",
        )
    loop.run_jobs()
    created = loop.action("loop:room")
    assert created.state == "sent", created.state
    room = str(created.external_ref)
    loop.pump(expect=room)
    with unit_of_work(loop.db) as s:
        group = s.scalars(select(Group).where(Group.org_id == loop.org_id, Group.external_id == room)).first()
        if group is None:
            deliveries = s.execute(
                select(WebhookDelivery.status, WebhookDelivery.error, WebhookDelivery.events, WebhookDelivery.payload)
            ).all()
            raise AssertionError(f"room {room} not ingested; {deliveries} {loop.synapse.relay.errors[-3:]}")
        assert group.name == "Matrix 骑友1群" and group.connection_id == loop.connection_id
        group.playbook_id, group.owner_id = loop.playbook_id, loop.owner_id
        group_id = group.id
        code = create_live_code(s, loop.scope(), LiveCodeCreate(name="海报活码", group_ids=[group_id])).code

    # The live code's link: an alias of the room, made by the worker, stored by the maintenance pass.
    loop.run_jobs()
    with unit_of_work(loop.db) as s:
        maintain(s, utcnow(), org_id=loop.org_id)
    page = loop.client.get(f"/c/{code}", follow_redirects=False)
    found = re.search(
        r"https://matrix\.to/#/(%23|#)qy-link-[0-9a-f]+:[A-Za-z0-9.\-]+", page.headers.get("location", "") + page.text
    )
    assert found, page.text[:500]
    alias = unquote(found.group(0).split("/#/", 1)[1])
    assert fan.join(alias) == room and spammer.join(alias) == room

    # They post; the spammer's third strike is redacted and gets them kicked.
    loop.pump(expect=fan.send(room, "今天骑了50公里"))
    spam_ids = []
    for n in range(3):
        spam_ids.append(spammer.send(room, f"{SPAM} {n}"))
        loop.pump(expect=spam_ids[-1])
        loop.pump()  # the kick's performance reaches the log with the next batch
    with loop.db() as s:
        decisions = [
            (d.action, d.rule)
            for d in s.scalars(
                select(ModerationDecision)
                .where(ModerationDecision.org_id == loop.org_id)
                .order_by(ModerationDecision.id)
            )
        ]
    assert decisions == [("warn", "广告"), ("warn", "广告"), ("kick", "广告")]
    assert fan.state(room, "m.room.member", spammer.user_id)["membership"] == "leave"
    assert fan.event(room, spam_ids[2])["content"] == {}  # redacted
    assert fan.event(room, spam_ids[0])["content"]["body"].startswith(SPAM)
    warnings = [e for e in fan.messages(room) if e["type"] == "m.room.message" and e["sender"] == loop.bot.user_id]
    assert len(warnings) == 2 and all(
        spammer.user_id in w["content"]["body"] or "广告" in w["content"]["body"] for w in warnings
    )

    # An SOP step tomorrow at 20:00 posts then, once, however often its time is passed.
    tomorrow = datetime.now(UTC).astimezone(ZONE).date() + timedelta(days=1)
    with unit_of_work(loop.db) as s:
        plan = sop.create_plan(
            s,
            loop.scope(),
            name="晚安计划",
            kind="daily",
            steps=[StepSpec(at=clock_time(20, 0), category="晚安语", title="晚安", script=SOP_TEXT)],
        )
        runs.apply(s, loop.scope(), plan.id, group_id, tomorrow)
    with loop.db() as s:
        first = s.scalars(select(SopRun).where(SopRun.group_id == group_id).order_by(SopRun.due_at)).first()
        assert first is not None
        due = first.due_at
    before = due - timedelta(minutes=5)
    with unit_of_work(loop.db) as s:
        assert claim_due(s, before) == 0
    for at in (due + timedelta(seconds=1), due + timedelta(seconds=30)):
        with unit_of_work(loop.db) as s:
            claim_due(s, at)
        loop.run_jobs(at)
    loop.pump()
    sop_posts = [
        e
        for e in fan.messages(room, limit=100)
        if e["type"] == "m.room.message" and e["content"].get("body") == "Matrix 骑友1群的朋友们晚上好"
    ]
    assert len(sop_posts) == 1

    # The stats and the group's timeline show it all.
    with loop.db() as s:
        group = s.get_one(Group, group_id)
        assert group.member_count == 1  # the fan; the spammer was removed
        days = s.scalars(select(GroupDaily).where(GroupDaily.group_id == group_id)).all()
        assert sum(d.joins for d in days) == 2 and sum(d.messages for d in days) == 4
        timeline = group_timeline(s, loop.scope(), group_id, None)
    items = timeline["items"]
    assert [i["kind"] for i in items] == ["leave", "message", "message", "message", "message", "join", "join"]
    assert items[0]["reason"] == "removed" and items[0]["member_id"] == items[1]["member_id"]
    assert items[1]["text"] == ""  # the redacted message keeps no text
    assert [i["text"] for i in items[2:5]] == [f"{SPAM} 1", f"{SPAM} 0", "今天骑了50公里"]
    assert [i["scene"] for i in items[5:]] == ["link", "link"]
    if loop.mode == "appservice":
        with loop.db() as s:
            statuses = set(
                s.scalars(select(WebhookDelivery.status).where(WebhookDelivery.connection_id == loop.connection_id))
            )
        assert statuses == {DeliveryStatus.PROCESSED.value}

"""The Matrix connector against a real Synapse: every action, the bot's sync into ingestion, and
application-service transactions through the webhook inbox."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.connections.secrets import encrypt
from qunyun.connectors.actions import (
    CreateGroup,
    CreateInviteLink,
    DeleteMessage,
    Kick,
    Mute,
    RevokeInviteLink,
    SendGroupMessage,
    SendWelcome,
    Unmute,
)
from qunyun.connectors.actions_entry import Ban, SetGroupDescription, Unban
from qunyun.connectors.actions_rooms import InviteMember
from qunyun.connectors.base import ResultStatus, UnsupportedAction
from qunyun.connectors.matrix.client import MatrixConnector
from qunyun.connectors.matrix.factory import MatrixCheckFailed, check
from qunyun.connectors.matrix.sync import sync_connection
from qunyun.connectors.registry import ConnectionConfig
from qunyun.hooks.service import process_delivery
from qunyun.models import Event, Group, Member, WebhookDelivery
from qunyun.models.matrix_state import MatrixSyncState
from qunyun.timeutil import utcnow
from tests.api.conftest import World
from tests.connections.helpers import connection_row
from tests.connectors.matrix.homeserver import Homeserver, User

NewUser = Callable[..., User]


def bot_connection(world: World, bot: User, synapse: Homeserver, name: str = "matrix-bot") -> int:
    with world.db() as s:
        row = connection_row(
            world.org_a,
            name,
            platform="matrix",
            settings={"mode": "bot", "homeserver": synapse.url, "user_id": bot.user_id},
            secrets=encrypt({"access_token": bot.token}),
        )
        s.add(row)
        s.commit()
        return row.id


def test_check_asks_whose_token_it_is(synapse: Homeserver, new_user: NewUser) -> None:
    bot = new_user("bot")
    settings = {"mode": "bot", "homeserver": synapse.url, "user_id": bot.user_id}
    check(ConnectionConfig(1, 1, "matrix", "m", settings, {"access_token": bot.token}))
    with pytest.raises(MatrixCheckFailed, match="refused"):
        check(ConnectionConfig(1, 1, "matrix", "m", settings, {"access_token": "wrong-token-123"}))
    other = {**settings, "user_id": "@someone:qunyun.test"}
    with pytest.raises(MatrixCheckFailed, match="not to @someone"):
        check(ConnectionConfig(1, 1, "matrix", "m", other, {"access_token": bot.token}))


def test_every_action_on_a_real_room(synapse: Homeserver, new_user: NewUser) -> None:
    bot, alice, bob = new_user("bot"), new_user("alice"), new_user("bob")
    connector = MatrixConnector(synapse.url, bot.token)
    assert connector.user_id == bot.user_id

    # A room, created once per key: the repeat answers with the same room.
    room = connector.perform(CreateGroup(name="Matrix 群 1"), "create:1").external_ref
    assert room is not None
    assert connector.perform(CreateGroup(name="Matrix 群 1"), "create:1").external_ref == room
    assert bot.state(room, "m.room.name")["name"] == "Matrix 群 1"
    # Another account's call with the same key is another room (keys repeat across organisations).
    elsewhere = MatrixConnector(synapse.url, bob.token)
    assert elsewhere.perform(CreateGroup(name="别处"), "create:1").external_ref not in (None, room)
    elsewhere.api.close()

    # A live-code link: a matrix.to link to a new alias that anyone may join by.
    link = connector.perform(CreateInviteLink(group=room, channel="poster"), "link:1")
    assert link.external_ref is not None and link.external_ref.startswith("https://matrix.to/#/%23qy-link-")
    assert connector.perform(CreateInviteLink(group=room), "link:1").external_ref == link.external_ref
    alias = link.detail
    assert alice.join(alias) == room

    # Invite (twice: the second finds the invitation there).
    connector.perform(InviteMember(group=room, member=bob.user_id), "invite:bob")
    connector.perform(InviteMember(group=room, member=bob.user_id), "invite:bob")
    assert bob.join(room) == room

    # Send, with a mention; the same key twice is one event (the transaction id).
    sent = connector.perform(SendGroupMessage(group=room, text="大家好"), "send:1").external_ref
    assert connector.perform(SendGroupMessage(group=room, text="大家好"), "send:1").external_ref == sent
    welcome = connector.perform(SendWelcome(group=room, member=alice.user_id, text="欢迎"), "welcome:1")
    content = alice.event(room, str(welcome.external_ref))["content"]
    assert content["m.mentions"] == {"user_ids": [alice.user_id]}
    assert "matrix.to/#/@" in content["formatted_body"] and content["body"].endswith("欢迎")
    bodies = [e["content"].get("body") for e in alice.messages(room) if e["type"] == "m.room.message"]
    assert bodies.count("大家好") == 1

    # Redact a member's message.
    posted = alice.send(room, "广告 加我微信")
    connector.perform(DeleteMessage(group=room, message=posted), "redact:1")
    assert alice.event(room, posted)["content"] == {}

    # Mute and unmute through power levels; a timed mute goes to a person.
    connector.perform(Mute(group=room, member=alice.user_id), "mute:1")
    with pytest.raises(AssertionError, match="403"):
        alice.send(room, "still here?")
    connector.perform(Unmute(group=room, member=alice.user_id), "unmute:1")
    alice.send(room, "back")
    with pytest.raises(UnsupportedAction):
        connector.perform(Mute(group=room, member=alice.user_id, seconds=600), "mute:2")

    # Kick, twice (the second finds the member gone).
    connector.perform(Kick(group=room, member=bob.user_id, reason="spam"), "kick:bob")
    connector.perform(Kick(group=room, member=bob.user_id, reason="spam"), "kick:bob")
    assert bot.state(room, "m.room.member", bob.user_id)["membership"] == "leave"

    # Ban (twice), unban; a timed ban goes to a person. The topic is the group's description.
    connector.perform(Ban(group=room, member=bob.user_id, reason="spam"), "ban:bob")
    connector.perform(Ban(group=room, member=bob.user_id, reason="spam"), "ban:bob")
    assert bot.state(room, "m.room.member", bob.user_id)["membership"] == "ban"
    connector.perform(Unban(group=room, member=bob.user_id), "unban:bob")
    connector.perform(Unban(group=room, member=bob.user_id), "unban:bob")
    assert bot.state(room, "m.room.member", bob.user_id)["membership"] == "leave"
    with pytest.raises(UnsupportedAction):
        connector.perform(Ban(group=room, member=bob.user_id, until=utcnow()), "ban:2")
    connector.perform(SetGroupDescription(group=room, text="骑友交流"), "topic:1")
    assert bot.state(room, "m.room.topic")["topic"] == "骑友交流"

    # Revoke the link: the alias is gone.
    connector.perform(RevokeInviteLink(group=room, link=str(link.external_ref)), "revoke:1")
    with pytest.raises(AssertionError, match="404"):
        alice.call("GET", f"/_matrix/client/v3/directory/room/{alias.replace('#', '%23')}")

    # A refusal the connector cannot turn into "done" stays an error (not the bot's room).
    other_room = str(alice.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"})["room_id"])
    refused = connector.perform(SendGroupMessage(group=other_room, text="x"), "send:2")
    assert refused.status == ResultStatus.FAILED and "M_FORBIDDEN" in refused.detail


def _sync(db: sessionmaker[Session], connection_id: int) -> Any:
    from qunyun.models import Connection

    with db() as s:
        row = s.get(Connection, connection_id)
        assert row is not None
        result = sync_connection(s, row, now=utcnow())
        s.commit()
        return result


def test_bot_sync_ingests_room_events(world: World, synapse: Homeserver, new_user: NewUser) -> None:
    bot, alice, carol = new_user("bot"), new_user("alice"), new_user("carol")
    connection_id = bot_connection(world, bot, synapse)
    first = _sync(world.db, connection_id)
    assert not first.live
    connector = MatrixConnector(synapse.url, bot.token, user_id=bot.user_id)
    room = str(connector.perform(CreateGroup(name="同步群"), "room:sync").external_ref)
    link = connector.perform(CreateInviteLink(group=room), "link:sync")
    alice.join(str(link.detail))
    carol.join(room)
    posted = alice.send(room, "第一条消息")
    connector.perform(DeleteMessage(group=room, message=posted), "redact:sync")
    carol.leave(room)
    # An invitation to the bot is accepted on the next sync.
    invited = str(alice.call("POST", "/_matrix/client/v3/createRoom", {"invite": [bot.user_id]})["room_id"])

    result = _sync(world.db, connection_id)
    assert result.live and result.joined == 1
    with world.db() as s:
        group = s.scalar(select(Group).where(Group.external_id == room))
        assert group is not None and group.name == "同步群" and group.connection_id == connection_id
        kinds = s.execute(
            select(Event.kind, Member.external_id)
            .outerjoin(Member, Member.id == Event.member_id)
            .where(Event.group_id == group.id)
            .order_by(Event.ts, Event.id)
        ).all()
        names = [(int(k), m) for k, m in kinds]
        assert (2, alice.user_id) in names and (2, carol.user_id) in names  # joins
        assert (4, alice.user_id) in names  # the message
        assert (7, None) in names  # its redaction
        assert (3, carol.user_id) in names  # carol left
        assert all(m != bot.user_id for _, m in names if m is not None and _ == 4)
        state = s.get(MatrixSyncState, connection_id)
        assert state is not None and state.failures == 0
    assert bot.state(invited, "m.room.member", bot.user_id)["membership"] == "join"

    # The joined room's timeline comes with the next sync; after it, nothing new.
    assert _sync(world.db, connection_id).stored >= 1
    assert _sync(world.db, connection_id).events == 0


def as_connection(world: World, synapse: Homeserver) -> int:
    with world.db() as s:
        row = connection_row(
            world.org_a,
            "matrix-as",
            platform="matrix",
            settings={"mode": "appservice", "homeserver": synapse.url, "user_id": synapse.as_user},
            secrets=encrypt({"as_token": synapse.as_token, "hs_token": synapse.hs_token}),
        )
        s.add(row)
        s.commit()
        return row.id


def relay_to(client: TestClient, connection_id: int) -> Any:
    def forward(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        keep = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
        url = f"/hooks/matrix/{connection_id}{path}" + (f"?{query}" if query else "")
        response = client.request(method, url, headers=keep, content=body)
        return response.status_code, response.content

    return forward


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_appservice_transactions_through_the_inbox(
    world: World, synapse: Homeserver, new_user: NewUser, api_app: Any
) -> None:
    connection_id = as_connection(world, synapse)
    connector = MatrixConnector(synapse.url, synapse.as_token, user_id=synapse.as_user)
    alice = new_user("alice")
    with TestClient(api_app) as client:
        # Refusals: no token, a wrong token, a path that is no transaction.
        url = f"/hooks/matrix/{connection_id}/_matrix/app/v1/transactions/t1"
        assert client.put(url, json={"events": []}).status_code == 401
        assert client.put(url, json={"events": []}, headers={"Authorization": "Bearer nope"}).status_code == 401
        bad = client.put(
            f"/hooks/matrix/{connection_id}/_matrix/app/v1/users/x",
            headers={"Authorization": f"Bearer {synapse.hs_token}"},
        )
        assert bad.status_code == 400
        # The legacy query-string token is accepted; the same txnId twice is one delivery.
        legacy = client.put(f"{url}?access_token={synapse.hs_token}", json={"events": []})
        assert legacy.status_code == 200 and legacy.json() == {}
        assert (
            client.put(url, json={"events": []}, headers={"Authorization": f"Bearer {synapse.hs_token}"}).json() == {}
        )
        with world.db() as s:
            count = s.scalar(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.delivery_id == "txn:t1")
            )
            assert count == 1

        synapse.relay.forward = relay_to(client, connection_id)
        try:
            room = str(connector.perform(CreateGroup(name="应用服务群"), "as-room").external_ref)
            link = connector.perform(CreateInviteLink(group=room), "as-link")
            alice.join(str(link.detail))
            posted = alice.send(room, "通过应用服务")

            def delivered() -> bool:
                with world.db() as s:
                    rows = s.scalars(select(WebhookDelivery).where(WebhookDelivery.connection_id == connection_id))
                    return any(posted in str(r.payload) for r in rows)

            wait_for(delivered)
        finally:
            synapse.relay.forward = None
        with world.db() as s:
            ids = s.scalars(select(WebhookDelivery.id).where(WebhookDelivery.connection_id == connection_id)).all()
            for delivery_id in ids:
                process_delivery(s, delivery_id, now=utcnow(), retention_days=30)
            s.commit()
            group = s.scalar(select(Group).where(Group.external_id == room))
            assert group is not None and group.name == "应用服务群"
            refs = s.scalars(select(Event.message_ref).where(Event.group_id == group.id)).all()
            assert posted in refs

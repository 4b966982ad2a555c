"""WeCom callbacks: URL verification and messages with the official vectors through the webhook
inbox, refusals, and a fixture per callback type normalized into interchange events."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.connectors.wecom.crypto import WeComCrypto
from qunyun.connectors.wecom.events import normalize
from qunyun.connectors.wecom.fake import FakeWeCom, callback_request
from qunyun.models import Group, WebhookDelivery
from tests.api.conftest import World
from tests.connectors.wecom.conftest import AES_KEY, TOKEN, add_wecom
from tests.connectors.wecom.test_crypto import (
    MESSAGE_BODY,
    MESSAGE_NONCE,
    MESSAGE_SIGNATURE,
    MESSAGE_TIMESTAMP,
    VERIFY,
)
from tests.hooks.conftest import rejections, run_jobs

FIXTURES = Path(__file__).parent / "fixtures"
CHAT = "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"
A = "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA"
B = "wmOgQhDgAAaaaaaaaaaaaaaaaaaaBBBB"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.xml").read_text(encoding="utf-8").strip()


def from_fixture(name: str) -> list[dict[str, object]]:
    from qunyun.connectors.wecom.crypto import parse_xml

    return normalize(parse_xml(fixture(name)))


def test_official_url_verification_through_the_inbox(
    client: TestClient, world: World, set_env: Callable[[str, str], None]
) -> None:
    set_env("QUNYUN_WEBHOOK_MAX_AGE", "0")  # the sample was signed in 2016
    cid = add_wecom(world)
    sig, ts, nonce, echostr, answer = VERIFY
    client.get(f"/hooks/wecom/{cid}")  # warm the app up (first request imports lazily)
    started = time.monotonic()
    response = client.get(
        f"/hooks/wecom/{cid}", params={"msg_signature": sig, "timestamp": ts, "nonce": nonce, "echostr": echostr}
    )
    assert time.monotonic() - started < 1.0
    assert response.status_code == 200
    assert response.text == answer
    assert response.headers["content-type"].startswith("text/plain")


def test_official_message_is_verified_decrypted_and_stored(
    client: TestClient, world: World, set_env: Callable[[str, str], None]
) -> None:
    set_env("QUNYUN_WEBHOOK_MAX_AGE", "0")
    cid = add_wecom(world)
    query = {"msg_signature": MESSAGE_SIGNATURE, "timestamp": MESSAGE_TIMESTAMP, "nonce": MESSAGE_NONCE}
    response = client.post(f"/hooks/wecom/{cid}", params=query, content=MESSAGE_BODY.encode())
    assert response.status_code == 200
    assert response.text == ""  # WeCom neither retries nor expects a passive reply
    again = client.post(f"/hooks/wecom/{cid}", params=query, content=MESSAGE_BODY.encode())
    assert again.status_code == 200
    with world.db() as s:
        rows = list(s.scalars(select(WebhookDelivery)))
    assert len(rows) == 1  # the retry is the same delivery
    assert rows[0].payload is not None and rows[0].payload["Content"] == "你好"
    assert rows[0].payload["FromUserName"] == "ChenJiaShun"


def test_refusals(client: TestClient, world: World, crypto: WeComCrypto) -> None:
    cid = add_wecom(world)
    xml = fixture("chat_add_member")
    query, body = callback_request(crypto, xml)
    # A signature that does not match.
    bad = dict(query, msg_signature="0" * 40)
    assert client.post(f"/hooks/wecom/{cid}", params=bad, content=body.encode()).status_code == 401
    # No signature at all.
    assert client.post(f"/hooks/wecom/{cid}", content=body.encode()).status_code == 401
    # Stale: signed an hour ago (outside the default replay window).
    old_query, old_body = callback_request(crypto, xml, timestamp=int(time.time()) - 3600)
    assert client.post(f"/hooks/wecom/{cid}", params=old_query, content=old_body.encode()).status_code == 409
    # Encrypted for another corp with our token and key: the receive id is not ours.
    other = WeComCrypto(TOKEN, AES_KEY, "wwanothercorp00000")
    other_query, other_body = callback_request(other, xml)
    assert client.post(f"/hooks/wecom/{cid}", params=other_query, content=other_body.encode()).status_code == 401
    # Signed, but not a WeCom body.
    junk = "<xml><Encrypt><![CDATA[bm90IGEgY2lwaGVydGV4dA==]]></Encrypt></xml>"
    junk_query = {
        "msg_signature": crypto.sign("1", "2", "bm90IGEgY2lwaGVydGV4dA=="),
        "timestamp": str(int(time.time())),
        "nonce": "2",
    }
    junk_query["msg_signature"] = crypto.sign(junk_query["timestamp"], "2", "bm90IGEgY2lwaGVydGV4dA==")
    assert client.post(f"/hooks/wecom/{cid}", params=junk_query, content=junk.encode()).status_code == 400
    counts = rejections(world.db)
    assert counts[(cid, "bad_signature")] == 2
    assert counts[(cid, "unsigned")] == 1
    assert counts[(cid, "replayed")] == 1
    assert counts[(cid, "malformed")] == 1
    # And the genuine one is accepted.
    assert client.post(f"/hooks/wecom/{cid}", params=query, content=body.encode()).status_code == 200


def test_a_join_per_member_with_its_scene() -> None:
    events = from_fixture("chat_add_member")
    assert [(e["kind"], e["group"], e["member"], e["scene"]) for e in events] == [
        ("member.joined", CHAT, A, "qr"),
        ("member.joined", CHAT, B, "qr"),
    ]
    assert events[0]["ts"] == "2025-12-03T08:00:00+00:00"
    assert len({e["id"] for e in events}) == 2
    invited = from_fixture("chat_add_member_invited_no_versions")
    assert [(e["member"], e["scene"]) for e in invited] == [("zhangsan", "invite")]


def test_a_leave_per_member_removed_when_quit_scene_is_1() -> None:
    assert [(e["kind"], e["member"], e["reason"]) for e in from_fixture("chat_del_member_removed")] == [
        ("member.left", A, "removed")
    ]
    assert [(e["kind"], e["member"], e["reason"]) for e in from_fixture("chat_del_member_left")] == [
        ("member.left", B, "left")
    ]


@pytest.mark.parametrize(
    "name",
    [
        "chat_create",
        "chat_change_owner",
        "chat_change_name",
        "chat_change_notice",
        "chat_dismiss",
        "contact_add",
        "contact_edit",
        "contact_del",
        "contact_del_follow_user",
        "tag_create",
    ],
)
def test_callbacks_without_membership_carry_no_event(name: str) -> None:
    assert from_fixture(name) == []


def test_lenient_parsing() -> None:
    # No JoinScene, one member as text, an unknown detail.
    payload = {
        "MsgType": "event",
        "Event": "change_external_chat",
        "ChatId": "c",
        "ChangeType": "update",
        "UpdateDetail": "add_member",
        "MemChangeList": "m1",
        "CreateTime": "x",
    }
    events = normalize(payload)
    assert [(e["member"], "scene" in e) for e in events] == [("m1", False)]
    assert normalize(dict(payload, UpdateDetail="something_new")) == []
    assert normalize(dict(payload, MemChangeList="")) == []


def test_callbacks_through_the_inbox_become_memberships(
    client: TestClient, world: World, crypto: WeComCrypto, fake: tuple[FakeWeCom, str]
) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group(CHAT, "VIP 1 群", "owner1")
    for name in ("chat_create", "chat_add_member", "chat_del_member_removed", "contact_add", "tag_create"):
        query, body = callback_request(crypto, fixture(name))
        assert client.post(f"/hooks/wecom/{cid}", params=query, content=body.encode()).status_code == 200
    run_jobs(world.db)
    with world.db() as s:
        statuses = [d.status for d in s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))]
        group = s.scalar(select(Group).where(Group.external_id == CHAT))
    assert statuses == ["processed"] * 5
    assert group is not None and group.connection_id == cid
    assert group.member_count == 1  # A and B joined, A was removed


def test_an_api_failure_never_holds_back_the_callback(client: TestClient, world: World, crypto: WeComCrypto) -> None:
    cid = add_wecom(world, "http://127.0.0.1:9")  # nothing listens: groupchat/get cannot answer
    query, body = callback_request(crypto, fixture("chat_add_member"))
    assert client.post(f"/hooks/wecom/{cid}", params=query, content=body.encode()).status_code == 200
    run_jobs(world.db)
    with world.db() as s:
        group = s.scalar(select(Group).where(Group.external_id == CHAT))
    assert group is not None and group.member_count == 2

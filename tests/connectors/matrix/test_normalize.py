"""Room events, as the client-server specification shows them, → interchange v1 events."""

from __future__ import annotations

from typing import Any

from qunyun.connectors.matrix.client import MatrixConnector, alias_of_link, matrix_to, txn_id
from qunyun.connectors.matrix.normalize import normalize_events, redacted_id
from qunyun.ingestion.parse import parse_event

ROOM = "!636q39766251:example.com"
TS = 1432735824653


def ev(kind: str, content: dict[str, Any], *, sender: str = "@example:example.org", **extra: Any) -> dict[str, Any]:
    event = {
        "type": kind,
        "content": content,
        "event_id": f"$e{abs(hash((kind, str(content), sender, str(extra)))) % 10**9}:example.org",
        "origin_server_ts": TS,
        "room_id": ROOM,
        "sender": sender,
        "unsigned": {"age": 1234},
    }
    event.update(extra)
    return event


def member(membership: str, target: str, *, sender: str | None = None, prev: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"state_key": target}
    if prev is not None:
        extra["unsigned"] = {"prev_content": {"membership": prev}}
    content: dict[str, Any] = {"membership": membership}
    if membership == "join":
        content["displayname"] = "Alice Margatroid"
    return ev("m.room.member", content, sender=sender or target, **extra)


def one(raw: dict[str, Any], own: str | None = None) -> dict[str, Any] | None:
    out = normalize_events([raw], own_user=own)
    assert len(out) <= 1
    if out:
        parse_event(out[0])  # what ingestion accepts
    return out[0] if out else None


def test_joins_leaves_kicks_and_bans() -> None:
    alice = "@alice:example.org"
    joined = one(member("join", alice, prev="invite"))
    assert joined is not None
    assert joined["kind"] == "member.joined" and joined["member"] == alice and joined["group"] == ROOM
    assert joined["member_name"] == "Alice Margatroid" and joined["scene"] == "invite"
    assert joined["ts"].startswith("2015-05-27T14:10:24.653")
    assert one(member("join", alice))["scene"] == "link"  # type: ignore[index]
    assert one(member("join", alice, prev="join")) is None  # a display name change
    left = one(member("leave", alice, prev="join"))
    assert left is not None and left["kind"] == "member.left" and left["reason"] == "left"
    kicked = one(member("leave", alice, sender="@mod:example.org", prev="join"))
    assert kicked is not None and kicked["reason"] == "removed"
    banned = one(member("ban", alice, sender="@mod:example.org", prev="join"))
    assert banned is not None and banned["kind"] == "member.left" and banned["reason"] == "removed"
    assert one(member("leave", alice, prev="invite")) is None  # an invitation declined
    assert one(member("leave", alice, sender="@mod:example.org", prev="ban")) is None  # an unban
    assert one(member("invite", alice, sender="@mod:example.org")) is None


def test_messages_by_type() -> None:
    text = one(ev("m.room.message", {"msgtype": "m.text", "body": "This is an example text message"}))
    assert text is not None
    assert text["kind"] == "message.posted" and text["msg_type"] == "text"
    assert text["text"] == "This is an example text message" and text["message"] == text["id"]
    notice = one(ev("m.room.message", {"msgtype": "m.notice", "body": "notice"}))
    assert notice is not None and notice["msg_type"] == "text"
    image = one(ev("m.room.message", {"msgtype": "m.image", "body": "filename.jpg", "url": "mxc://example.org/a"}))
    assert image is not None and image["msg_type"] == "image" and "text" not in image
    audio = one(ev("m.room.message", {"msgtype": "m.audio", "body": "a.ogg", "url": "mxc://example.org/b"}))
    assert audio is not None and audio["msg_type"] == "voice"
    odd = one(ev("m.room.message", {"msgtype": "org.example.poll", "body": "?"}))
    assert odd is not None and odd["msg_type"] == "other"
    encrypted = one(ev("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA"}))
    assert encrypted is not None and encrypted["msg_type"] == "other" and "text" not in encrypted
    edit = {
        "msgtype": "m.text",
        "body": "* fixed",
        "m.new_content": {"msgtype": "m.text", "body": "fixed"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"},
    }
    assert one(ev("m.room.message", edit)) is None
    assert one(ev("m.room.message", {"msgtype": "m.text", "body": "mine"}, sender="@bot:x"), own="@bot:x") is None


def test_redactions_in_both_room_version_shapes() -> None:
    old = ev("m.room.redaction", {"reason": "Spamming"}, redacts="$fukweghifu23:localhost")
    v11 = ev("m.room.redaction", {"reason": "Spamming", "redacts": "$fukweghifu23:localhost"})
    for raw in (old, v11):
        assert redacted_id(raw) == "$fukweghifu23:localhost"
        deleted = one(raw)
        assert deleted is not None
        assert deleted["kind"] == "message.deleted" and deleted["message"] == "$fukweghifu23:localhost"
    assert normalize_events([ev("m.room.redaction", {"reason": "none"})]) == []


def test_room_name_and_what_is_left_out() -> None:
    named = one(ev("m.room.name", {"name": "The room name"}, state_key=""))
    assert named is not None and named["kind"] == "group.created" and named["name"] == "The room name"
    assert one(ev("m.room.topic", {"topic": "t"}, state_key="")) is None
    assert normalize_events(["not an event", {"type": "m.room.message"}]) == []
    long_id = ev("m.room.message", {"msgtype": "m.text", "body": "x"}, event_id="$" + "a" * 200)
    assert normalize_events([long_id]) == []


def test_connector_normalizes_a_transaction_body_and_links() -> None:
    connector = MatrixConnector("http://127.0.0.1:1", "token-not-used", user_id="@bot:example.org")
    raw = ev("m.room.message", {"msgtype": "m.text", "body": "hi"})
    assert len(connector.normalize({"events": [raw]})) == 1
    assert connector.normalize({"events": "nope"}) == []
    assert "token-not-used" not in repr(connector) and "token-not-used" not in repr(connector.api)
    link = matrix_to("#qy-link-1:example.org")
    assert link == "https://matrix.to/#/%23qy-link-1:example.org"
    assert alias_of_link(link) == "#qy-link-1:example.org"
    assert alias_of_link("https://example.org/x") is None
    assert txn_id("k") == txn_id("k") != txn_id("k2")

"""The simulated platform: state, virtual clock, events, perform (plain, reconciling, recorded),
emulated profiles."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qunyun.connectors import (
    CreateGroup,
    CreateInviteLink,
    DeleteMessage,
    Kick,
    Mute,
    ResultStatus,
    RevokeInviteLink,
    SendGroupMessage,
    SendWelcome,
    SetTags,
    SetWelcomeMessage,
    SyncInterceptRules,
    TransientError,
    Unmute,
    UnsupportedAction,
    get_profile,
)
from qunyun.connectors.simulator import SimulatedPlatform, SimulatorConnector, SimulatorError, VirtualClock
from qunyun.connectors.simulator.clock import DEFAULT_START
from qunyun.connectors.simulator.recording import read_calls
from qunyun.errors import InvalidInput


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in events]


@pytest.fixture
def sim() -> SimulatorConnector:
    return SimulatorConnector(seed=7)


def test_virtual_clock() -> None:
    clock = VirtualClock()
    assert clock.now() == DEFAULT_START and clock.now().utcoffset() == timedelta(hours=8)
    assert clock.advance(hours=2, minutes=30) == DEFAULT_START + timedelta(hours=2, minutes=30)
    assert clock.advance(timedelta(days=1)) == DEFAULT_START + timedelta(days=1, hours=2, minutes=30)
    with pytest.raises(ValueError):
        clock.advance(seconds=-1)
    with pytest.raises(ValueError):
        clock.advance_to(DEFAULT_START)


def test_operations_emit_interchange_events(sim: SimulatorConnector) -> None:
    p = sim.sim
    group = p.create_group("读书会 1 群", owner="owner1", capacity=3)
    p.join("alice", group.id, scene="qr")
    p.clock.advance(minutes=5)
    p.join("bob", group.id, inviter="alice")
    p.post("alice", group.id, "大家好")
    p.post("bob", group.id, msg_type="image")
    order = p.pay("bob", "59.90", product="年卡", group=group.id)
    p.refund(order.id, "9.90")
    p.leave("alice", group.id)
    events = p.drain_events()
    assert kinds(events) == [
        "group.created",
        "member.joined",
        "member.joined",
        "message.posted",
        "message.posted",
        "order.paid",
        "order.refunded",
        "member.left",
    ]
    created, alice, bob, hello, image, paid, refunded, left = events
    assert created == {
        "id": "sim-ev1",
        "ts": "2026-03-02T08:00:00+08:00",
        "kind": "group.created",
        "group": "sim-g1",
        "name": "读书会 1 群",
        "capacity": 3,
        "owner": "owner1",
    }
    assert alice["scene"] == "qr" and "channel" not in alice
    assert bob["scene"] == "invite" and bob["inviter"] == "alice"
    assert bob["ts"] == "2026-03-02T08:05:00+08:00"
    assert hello["text"] == "大家好" and hello["msg_type"] == "text"
    assert image["msg_type"] == "image" and "text" not in image
    assert paid["amount"] == "59.90" and paid["product"] == "年卡" and paid["group"] == group.id
    assert refunded == {**refunded, "order": order.id, "amount": "9.90"}
    assert left["reason"] == "left"
    assert len({e["id"] for e in events}) == len(events)
    assert p.drain_events() == []
    for event in events:
        assert sim.normalize(event) == [event]


def test_sink_receives_each_operation_as_a_batch() -> None:
    batches: list[list[dict[str, Any]]] = []
    p = SimulatedPlatform(sink=batches.append)
    group = p.create_group("g")
    p.join("m1", group.id)
    assert [kinds(b) for b in batches] == [["group.created"], ["member.joined"]]
    assert p.pending_events == []


def test_platform_rules() -> None:
    p = SimulatedPlatform()
    group = p.create_group("g", capacity=1)
    p.join("m1", group.id)
    with pytest.raises(SimulatorError) as exc:
        p.join("m1", group.id)
    assert exc.value.code == "already_member"
    with pytest.raises(SimulatorError) as exc:
        p.join("m2", group.id)
    assert exc.value.code == "group_full"
    with pytest.raises(SimulatorError) as exc:
        p.post("m2", group.id, "hi")
    assert exc.value.code == "not_a_member"
    order = p.pay("m1", 100)
    with pytest.raises(SimulatorError) as exc:
        p.refund(order.id, "100.01")
    assert exc.value.code == "invalid"
    assert p.refund(order.id) == Decimal("100.00")
    with pytest.raises(SimulatorError):
        p.pay("m1", "1.001")


def test_invite_link_member_limit_expiry_and_channel(sim: SimulatorConnector) -> None:
    p = sim.sim
    group = p.create_group("福利群")
    expire_at = p.now() + timedelta(days=7)
    result = sim.perform(
        CreateInviteLink(group=group.id, name="包裹卡", member_limit=2, expire_at=expire_at, channel="card"),
        "link-1",
    )
    assert result.status is ResultStatus.DONE and result.external_ref
    url = result.external_ref
    p.drain_events()

    p.join("m1", via_link=url)
    p.join("m2", via_link=url)
    with pytest.raises(SimulatorError) as exc:
        p.join("m3", via_link=url)
    assert exc.value.code == "link_full"
    # The limit counts members who joined through the link and are still in (Telegram's rule).
    p.leave("m1", group.id)
    p.join("m3", via_link=url)
    assert p.link(url).uses == 3 and p.link_member_count(url) == 2
    p.join("m4", group.id)  # other ways in are not limited by the link

    joined = [e for e in p.drain_events() if e["kind"] == "member.joined"]
    assert [(e["member"], e.get("scene"), e.get("channel")) for e in joined] == [
        ("m1", "link", "card"),
        ("m2", "link", "card"),
        ("m3", "link", "card"),
        ("m4", None, None),
    ]

    p.leave("m2", group.id)  # room under the limit again, but the week is over
    p.clock.advance_to(expire_at)
    with pytest.raises(SimulatorError) as exc:
        p.join("m5", via_link=url)
    assert exc.value.code == "link_expired"


def test_invite_link_expiry_boundary_and_revocation(sim: SimulatorConnector) -> None:
    p = sim.sim
    group = p.create_group("g")
    url = p.create_invite_link(group.id, expire_at=p.now() + timedelta(hours=1)).url
    p.clock.advance(minutes=59, seconds=59)
    p.join("early", via_link=url)
    p.clock.advance(seconds=1)
    with pytest.raises(SimulatorError) as exc:
        p.join("late", via_link=url)
    assert exc.value.code == "link_expired"

    other = p.create_invite_link(group.id).url
    assert sim.perform(RevokeInviteLink(group=group.id, link=other), "revoke-1").status is ResultStatus.DONE
    with pytest.raises(SimulatorError) as exc:
        p.join("someone", via_link=other)
    assert exc.value.code == "link_revoked"


def test_perform_sends_again_with_the_same_key(sim: SimulatorConnector) -> None:
    """Like a real platform, the plain simulator does not deduplicate by key: the dispatcher's
    two-phase sends, not the platform, keep a retry from sending twice."""
    p = sim.sim
    group = p.create_group("g")
    first = sim.perform(SendGroupMessage(group=group.id, text="早安"), "sop:1:day1:08")
    again = sim.perform(SendGroupMessage(group=group.id, text="早安"), "sop:1:day1:08")
    assert first.status is again.status is ResultStatus.DONE and first.external_ref != again.external_ref
    assert [m.text for m in p.messages_in(group.id)] == ["早安", "早安"]
    assert not sim.reconciles and not sim.key_idempotent
    with pytest.raises(UnsupportedAction):
        sim.reconcile(SendGroupMessage(group=group.id, text="早安"), "sop:1:day1:08")
    # Bot sends are not member activity: nothing is reported for them.
    assert kinds(p.drain_events()) == ["group.created"]


def test_a_reconciling_simulator_remembers_keys_like_transaction_ids() -> None:
    sim = SimulatorConnector(seed=7, reconcile=True)
    p = sim.sim
    group = p.create_group("g")
    send = SendGroupMessage(group=group.id, text="早安")
    assert sim.reconcile(send, "k1") is None  # never received
    first = sim.perform(send, "k1")
    assert sim.perform(send, "k1") == first  # the platform dedupes by key
    assert sim.reconcile(send, "k1") == first
    assert len(p.messages_in(group.id)) == 1
    sim.perform(send, "k2")
    assert len(p.messages_in(group.id)) == 2
    # Refusals are answers too: the same key gets the same one.
    refused = sim.perform(Kick(group=group.id, member="nobody"), "kick-1")
    assert refused.status is ResultStatus.FAILED and "not_a_member" in refused.detail
    p.join("nobody", group.id)
    assert sim.perform(Kick(group=group.id, member="nobody"), "kick-1") == refused
    assert p.is_member("nobody", group.id)


def test_the_recording_keeps_every_call_across_connectors(tmp_path: Path) -> None:
    """Two simulators (two worker processes) sharing one recording file see one platform."""
    path = tmp_path / "received.jsonl"
    settings = {"reconcile": True, "record_to": str(path), "groups": ["g1"]}
    one = SimulatorConnector.from_settings(settings, namespace="sim1")
    two = SimulatorConnector.from_settings(settings, namespace="sim1")
    send = SendGroupMessage(group="g1", text="早安")
    first = one.perform(send, "k1")
    assert two.reconcile(send, "k1") == first
    assert two.perform(send, "k1") == first  # deduplicated through the shared record
    two.perform(SendGroupMessage(group="g1", text="午安"), "k2")
    assert [(c.key, c.kind, c.group, c.text) for c in one.received()] == [
        ("k1", "send_group_message", "g1", "早安"),
        ("k2", "send_group_message", "g1", "午安"),
    ]
    assert read_calls(path)[0].result == first

    plain = SimulatorConnector.from_settings({"record_to": str(path), "groups": ["g1"]})
    plain.perform(send, "k1")
    assert [c.key for c in plain.received()] == ["k1", "k2", "k1"]  # received twice: recorded twice


def test_kick_emits_member_left_removed(sim: SimulatorConnector) -> None:
    p = sim.sim
    group = p.create_group("g")
    p.join("spammer", group.id)
    p.drain_events()
    assert sim.perform(Kick(group=group.id, member="spammer"), "kick-1").status is ResultStatus.DONE
    assert not p.is_member("spammer", group.id)
    [left] = p.drain_events()
    assert left["kind"] == "member.left" and left["reason"] == "removed" and left["member"] == "spammer"
    sim.perform(Kick(group=group.id, member="spammer"), "kick-1")
    assert p.drain_events() == []


def test_create_group_through_perform(sim: SimulatorConnector) -> None:
    result = sim.perform(CreateGroup(name="核心群", capacity=200), "create-1")
    assert result.status is ResultStatus.DONE
    [created] = sim.sim.drain_events()
    assert created["kind"] == "group.created" and created["group"] == result.external_ref
    assert created["capacity"] == 200


def test_mute_runs_on_the_virtual_clock(sim: SimulatorConnector) -> None:
    p = sim.sim
    group = p.create_group("g")
    p.join("m", group.id)
    sim.perform(Mute(group=group.id, member="m", seconds=600), "mute-1")
    with pytest.raises(SimulatorError) as exc:
        p.post("m", group.id, "hi")
    assert exc.value.code == "muted"
    p.clock.advance(minutes=10)
    p.post("m", group.id, "back")
    sim.perform(Mute(group=group.id, member="m"), "mute-2")
    p.clock.advance(days=30)
    assert p.is_muted(group.id, "m")
    sim.perform(Unmute(group=group.id, member="m"), "unmute-1")
    p.post("m", group.id, "free")


def test_delete_tags_welcome_and_intercept_rules(sim: SimulatorConnector) -> None:
    p = sim.sim
    group = p.create_group("g")
    sim.perform(SetWelcomeMessage(group=group.id, text="欢迎！请修改群名片"), "welcome-1")
    p.join("m", group.id)
    [welcome] = p.messages_in(group.id)
    assert welcome.by_bot and welcome.text == "@m 欢迎！请修改群名片"

    ad = p.post("m", group.id, "加我微信领红包")
    assert sim.perform(DeleteMessage(group=group.id, message=ad.id), "del-1").status is ResultStatus.DONE
    assert ad not in p.messages_in(group.id)
    again = sim.perform(DeleteMessage(group=group.id, message=ad.id), "del-2")
    assert again.status is ResultStatus.FAILED

    sim.perform(SetTags(member="m", add=("高意向", "宝妈")), "tags-1")
    sim.perform(SetTags(member="m", remove=("宝妈",)), "tags-2")
    assert p.state.members["m"].tags == {"高意向"}

    sim.perform(SyncInterceptRules(name="广告", words=("加我微信", "VX")), "rules-1")
    with pytest.raises(SimulatorError) as exc:
        p.post("m", group.id, "加我微信 送资料")
    assert exc.value.code == "intercepted"
    with pytest.raises(SimulatorError):
        p.post("m", group.id, "私聊 vx")  # case-insensitive
    assert [i.rule for i in p.state.interceptions] == ["广告", "广告"]

    greeting = sim.perform(SendWelcome(group=group.id, member="m", text="新人福利见群公告"), "hello-m")
    assert p.state.messages[greeting.external_ref or ""].text == "@m 新人福利见群公告"


def test_transient_failures_change_nothing_and_are_not_remembered(sim: SimulatorConnector) -> None:
    p = sim.sim
    group = p.create_group("g")
    p.fail_next_api_calls(2)
    for _ in range(2):
        with pytest.raises(TransientError):
            sim.perform(SendGroupMessage(group=group.id, text="hi"), "k")
    assert p.messages_in(group.id) == []
    assert sim.perform(SendGroupMessage(group=group.id, text="hi"), "k").status is ResultStatus.DONE
    assert len(p.messages_in(group.id)) == 1


def test_deterministic_for_a_seed() -> None:
    def run(seed: int) -> tuple[list[dict[str, Any]], str]:
        sim = SimulatorConnector(seed=seed)
        p = sim.sim
        group = p.create_group("g")
        url = sim.perform(CreateInviteLink(group=group.id, member_limit=5), "l").external_ref or ""
        p.join("a", via_link=url)
        p.clock.advance(hours=1)
        p.post("a", group.id, "hi")
        return p.drain_events(), url

    assert run(3) == run(3)
    assert run(3)[1] != run(4)[1]


def test_emulating_wecom() -> None:
    wecom = SimulatorConnector(profile=get_profile("wecom"))
    p = wecom.sim
    assert wecom.platform == "wecom"
    group = p.create_group("客户群")
    p.join("m", group.id)
    with pytest.raises(UnsupportedAction):
        wecom.perform(Kick(group=group.id, member="m"), "kick-1")
    with pytest.raises(UnsupportedAction):
        wecom.perform(CreateInviteLink(group=group.id, member_limit=10), "link-1")

    held = wecom.perform(SendGroupMessage(group=group.id, text="今晚 8 点直播"), "send-1")
    assert held.status is ResultStatus.AWAITING_CONFIRMATION
    assert p.messages_in(group.id) == []
    message = p.confirm_send(held.external_ref or "")
    assert p.confirm_send(held.external_ref or "") is message
    assert [m.text for m in p.messages_in(group.id)] == ["今晚 8 点直播"]

    # WeCom does not report messages without the archive feature.
    p.post("m", group.id, "收到")
    assert kinds(p.drain_events()) == ["group.created", "member.joined"]


def test_emulating_matrix_joins_carry_no_link() -> None:
    matrix = SimulatorConnector(profile=get_profile("matrix"))
    p = matrix.sim
    room = p.create_group("room")
    url = matrix.perform(CreateInviteLink(group=room.id, channel="weibo"), "l").external_ref or ""
    p.join("m", via_link=url)
    joined = p.drain_events()[-1]
    assert joined["kind"] == "member.joined" and "channel" not in joined and "scene" not in joined


def test_normalize_rejects_malformed_events(sim: SimulatorConnector) -> None:
    good = {"id": "x1", "ts": "2026-03-02T08:00:00+08:00", "kind": "member.joined", "group": "g", "member": "m"}
    assert sim.normalize({"events": [good, good]}) == [good, good]
    with pytest.raises(InvalidInput) as exc:
        sim.normalize({**good, "kind": "member.danced"})
    assert exc.value.field == "events[0].kind"
    with pytest.raises(InvalidInput) as exc:
        sim.normalize({"events": [good, {**good, "member": ""}]})
    assert exc.value.field == "events[1].member"
    with pytest.raises(InvalidInput):
        sim.normalize({**good, "ts": "2026-03-02T08:00:00"})

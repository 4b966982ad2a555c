"""Declared capability profiles, the action vocabulary and the connector registry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from qunyun.connectors import (
    ActionKind,
    Capability,
    CreateInviteLink,
    Kick,
    SendGroupMessage,
    SetWelcomeMessage,
    action_capabilities,
    action_from_payload,
    action_kinds,
    all_profiles,
    get_profile,
    missing_capabilities,
    needs_confirmation,
)
from qunyun.errors import InvalidInput

C = Capability


def test_builtin_profiles_are_declared() -> None:
    names = [p.platform for p in all_profiles()]
    assert names[:4] == ["simulator", "wecom", "telegram", "matrix"]
    # A platform's profile stops being a bare declaration when its connector lands.
    assert not get_profile("simulator").declaration_only
    assert not get_profile("wecom").declaration_only


def test_wecom_customer_groups() -> None:
    wecom = get_profile("wecom").capabilities
    assert C.SEND_GROUP_MESSAGE not in wecom
    assert C.SEND_REQUIRES_CONFIRMATION in wecom
    for cannot in (C.KICK, C.DELETE_MESSAGE, C.MUTE, C.CREATE_GROUP, C.READ_MESSAGES):
        assert cannot not in wecom, cannot
    for can in (C.TAGS, C.INTERCEPT_RULES, C.WELCOME_ON_JOIN, C.CREATE_INVITE_LINK):
        assert can in wecom, can
    assert C.INVITE_LINK_MEMBER_LIMIT not in wecom and C.INVITE_LINK_EXPIRY not in wecom


def test_telegram_bot_api() -> None:
    telegram = get_profile("telegram").capabilities
    for can in (
        C.SEND_GROUP_MESSAGE,
        C.DELETE_MESSAGE,
        C.MUTE,
        C.KICK,
        C.CREATE_INVITE_LINK,
        C.INVITE_LINK_MEMBER_LIMIT,
        C.INVITE_LINK_EXPIRY,
        C.READ_MESSAGES,
        C.WELCOME_ON_JOIN,
    ):
        assert can in telegram, can
    assert C.CREATE_GROUP not in telegram and C.TAGS not in telegram
    assert C.SEND_REQUIRES_CONFIRMATION not in telegram
    assert get_profile("telegram").limits["invite_link_member_limit_max"] == 99_999


def test_matrix_rooms() -> None:
    matrix = get_profile("matrix").capabilities
    for can in (C.SEND_GROUP_MESSAGE, C.DELETE_MESSAGE, C.KICK, C.MUTE, C.CREATE_GROUP, C.CREATE_INVITE_LINK):
        assert can in matrix, can
    assert C.INVITE_LINK_MEMBER_LIMIT not in matrix and C.INVITE_LINK_EXPIRY not in matrix
    # A join names no link; a live code invites the visitor by their Matrix ID instead.
    assert C.INVITE_LINK_ATTRIBUTION not in matrix and C.INVITATION_ATTRIBUTION in matrix


def test_simulator_can_do_everything_without_confirmation() -> None:
    sim = get_profile("simulator").capabilities
    assert sim == frozenset(Capability) - {C.SEND_REQUIRES_CONFIRMATION}


def test_every_missing_capability_of_wecom_is_explained() -> None:
    profile = get_profile("wecom")
    for capability in (C.SEND_GROUP_MESSAGE, C.KICK, C.DELETE_MESSAGE, C.CREATE_GROUP, C.READ_MESSAGES):
        assert profile.note(capability), capability


def test_every_action_kind_needs_a_capability() -> None:
    for kind in action_kinds():
        assert isinstance(kind.capability, Capability)
        assert action_capabilities()[kind] is kind.capability
    assert ActionKind("kick").capability is C.KICK
    assert ActionKind("set_welcome_message").capability is C.WELCOME_ON_JOIN
    with pytest.raises(ValueError):
        ActionKind("teleport")


def test_routing_by_capabilities() -> None:
    wecom, telegram, matrix = (get_profile(p).capabilities for p in ("wecom", "telegram", "matrix"))
    kick = Kick(group="g", member="m")
    assert missing_capabilities(kick, wecom) == {C.KICK}
    assert not missing_capabilities(kick, telegram)

    send = SendGroupMessage(group="g", text="早上好")
    assert not missing_capabilities(send, wecom)
    assert needs_confirmation(send, wecom)
    assert not needs_confirmation(send, telegram)

    limited = CreateInviteLink(group="g", member_limit=200, expire_at=datetime(2026, 3, 9, tzinfo=UTC))
    assert not missing_capabilities(limited, telegram)
    assert missing_capabilities(limited, matrix) == {C.INVITE_LINK_MEMBER_LIMIT, C.INVITE_LINK_EXPIRY}
    assert not missing_capabilities(CreateInviteLink(group="g"), matrix)


def test_payload_validation_names_the_field() -> None:
    with pytest.raises(InvalidInput) as exc:
        action_from_payload("send_group_message", {}, group="g")
    assert exc.value.field == "payload.text"
    with pytest.raises(InvalidInput) as exc:
        action_from_payload("create_invite_link", {"member_limt": 5}, group="g")
    assert exc.value.field == "payload.member_limt"
    with pytest.raises(InvalidInput) as exc:
        action_from_payload("create_invite_link", {"expire_at": "2026-03-09T08:00:00"}, group="g")
    assert exc.value.field == "payload.expire_at"
    with pytest.raises(InvalidInput) as exc:
        action_from_payload("create_invite_link", {"member_limit": 0}, group="g")
    assert exc.value.field == "payload.member_limit"
    with pytest.raises(InvalidInput) as exc:
        action_from_payload("kick", {}, group="g")
    assert exc.value.field == "member_id"
    with pytest.raises(InvalidInput) as exc:
        action_from_payload("send_group_message", {"text": "hi"}, group="g", member="m")
    assert exc.value.field == "member_id"
    with pytest.raises(InvalidInput) as exc:
        action_from_payload("fly", {})
    assert exc.value.field == "action"


def test_payload_round_trip() -> None:
    link = action_from_payload(
        "create_invite_link",
        {"name": "包裹卡", "member_limit": 200, "expire_at": "2026-03-09T08:00:00+08:00", "channel": "card"},
        group="g1",
    )
    assert isinstance(link, CreateInviteLink)
    assert link.expire_at == datetime.fromisoformat("2026-03-09T08:00:00+08:00")
    assert action_from_payload("create_invite_link", link.to_payload(), group="g1") == link
    welcome = action_from_payload("set_welcome_message", {"text": "欢迎"})
    assert welcome == SetWelcomeMessage(group=None, text="欢迎")


def test_docs_matrix_matches_the_profiles() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "connectors.md").read_text(encoding="utf-8")
    header = "| Capability | simulator | wecom | telegram | matrix |"
    assert header in doc
    rows = doc.split(header, 1)[1].strip().splitlines()[1:]
    table = {}
    for row in rows:
        if not row.startswith("| `"):
            break
        cells = [c.strip() for c in row.strip("|").split("|")]
        table[cells[0].strip("`")] = [c == "yes" for c in cells[1:]]
    profiles = [get_profile(p) for p in ("simulator", "wecom", "telegram", "matrix")]
    assert table == {c.value: [c in p.capabilities for p in profiles] for c in Capability}

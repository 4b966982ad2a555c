"""The entry-administration action kinds: their payloads are checked field by field, their
capabilities route them, and a platform without those capabilities hands them to a person."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qunyun.connectors.actions import action_from_payload
from qunyun.connectors.actions_entry import Ban, EditInviteLink, SetGroupDescription
from qunyun.connectors.base import Capability, get_profile, missing_capabilities
from qunyun.errors import InvalidInput
from qunyun.locale import catalogue


def test_payloads_round_trip_and_bad_fields_are_named() -> None:
    ban = action_from_payload("ban", {"until": "2026-12-10T00:00:00+08:00", "reason": "广告"}, group="g", member="m")
    assert ban == Ban(group="g", member="m", until=datetime(2026, 12, 9, 16, tzinfo=UTC), reason="广告")
    assert action_from_payload("ban", ban.to_payload(), group="g", member="m") == ban
    with pytest.raises(InvalidInput) as raised:
        action_from_payload("set_group_description", {"text": "x" * 256}, group="g")
    assert raised.value.field == "payload.text"
    with pytest.raises(InvalidInput) as raised:
        action_from_payload("approve_join_request", {}, group="g")
    assert raised.value.field == "member_id"
    with pytest.raises(InvalidInput) as raised:
        action_from_payload("edit_invite_link", {"link": "https://t.me/+a", "member_limit": 0}, group="g")
    assert raised.value.field == "payload.member_limit"
    assert action_from_payload("set_group_description", {}, group="g") == SetGroupDescription(group="g", text="")


def test_a_link_whose_joins_are_requests_needs_join_requests_and_has_no_member_limit() -> None:
    link = action_from_payload("create_invite_link", {"name": "活码", "join_request": True}, group="g")
    assert Capability.JOIN_REQUESTS in link.required_capabilities()
    assert action_from_payload("create_invite_link", link.to_payload(), group="g") == link
    with pytest.raises(InvalidInput) as raised:
        action_from_payload("create_invite_link", {"join_request": True, "member_limit": 5}, group="g")
    assert raised.value.field == "payload.member_limit"
    with pytest.raises(InvalidInput) as raised:
        action_from_payload("create_invite_link", {"join_request": "yes"}, group="g")
    assert raised.value.field == "payload.join_request"


def test_capabilities_route_them() -> None:
    wecom, telegram = get_profile("wecom").capabilities, get_profile("telegram").capabilities
    approve = action_from_payload("approve_join_request", {}, group="g", member="m")
    assert missing_capabilities(approve, wecom) == {Capability.JOIN_REQUESTS}
    assert not missing_capabilities(approve, telegram)
    limited = EditInviteLink(group="g", link="l", member_limit=5)
    assert limited.required_capabilities() == {Capability.CREATE_INVITE_LINK, Capability.INVITE_LINK_MEMBER_LIMIT}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_kind_has_a_task_title(lang: str) -> None:
    titles = catalogue(lang)
    for kind in ("approve_join_request", "decline_join_request", "ban", "unban", "set_group_description"):
        assert f"task.title.{kind}" in titles
    assert "task.title.edit_invite_link" in titles

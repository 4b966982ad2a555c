"""Real-shaped Bot API updates → interchange v1 events (every event is valid for ingestion)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qunyun.connectors.telegram.botapi import BotApi
from qunyun.connectors.telegram.client import TelegramConnector
from qunyun.connectors.telegram.updates import join_requests, parse_update
from qunyun.errors import InvalidInput
from qunyun.ingestion.parse import parse_event
from tests.connectors.telegram.fakebot import TOKEN

FIXTURE_FILE = Path(__file__).parent / "fixtures" / "updates.json"
FIXTURES: dict[str, dict[str, Any]] = json.loads(FIXTURE_FILE.read_text("utf-8"))
SUPER = "-1001987654321"


def connector() -> TelegramConnector:
    return TelegramConnector(BotApi(TOKEN, "http://127.0.0.1:9"))


def normalize(name: str, conn: TelegramConnector | None = None) -> list[dict[str, Any]]:
    events = (conn or connector()).normalize(FIXTURES[name])
    for event in events:
        parse_event(event)  # what ingestion accepts
    return events


def test_a_text_message_in_a_supergroup_is_a_post_with_its_id_and_sender_name() -> None:
    [event] = normalize("text_in_supergroup")
    assert event == {
        "id": "tg123456789:900000001",
        "ts": "2025-12-03T00:00:00+00:00",
        "kind": "message.posted",
        "group": SUPER,
        "member": "5550001",
        "msg_type": "text",
        "message": "4411",
        "text": "早上好 @qy_bot",
        "member_name": "李 雷",
    }


def test_a_photo_in_a_basic_group_is_an_image_post_with_its_caption() -> None:
    [event] = normalize("photo_with_caption_in_group")
    assert (event["group"], event["msg_type"], event["text"], event["member_name"]) == (
        "-4012345678",
        "image",
        "今天的配速",
        "Han Meimei",
    )


def test_private_chats_and_join_service_messages_make_no_events() -> None:
    assert normalize("private_chat") == []
    assert normalize("new_chat_members_service") == []  # chat_member reports that join


def test_a_join_through_an_invite_link_names_the_link() -> None:
    [event] = normalize("joined_through_link")
    assert event["kind"] == "member.joined"
    assert (event["group"], event["member"], event["member_name"]) == (SUPER, "5550003", "Wei")
    assert (event["link"], event["scene"]) == ("https://t.me/+Ab12Cd34Ef56", "link")


def test_a_rejoin_has_no_link_and_an_addition_names_the_inviter() -> None:
    [rejoin] = normalize("rejoined_without_link")
    assert rejoin["kind"] == "member.joined" and "link" not in rejoin and "inviter" not in rejoin
    [added] = normalize("added_by_admin")
    assert (added["member"], added["inviter"], added["scene"]) == ("5550004", "5550001", "invite")


def test_leaving_and_being_removed_have_their_reasons() -> None:
    [left] = normalize("left")
    assert (left["kind"], left["member"], left["reason"]) == ("member.left", "5550003", "left")
    [kicked] = normalize("kicked")
    assert (kicked["kind"], kicked["member"], kicked["reason"]) == ("member.left", "5550004", "removed")


def test_a_restriction_is_not_a_membership_change() -> None:
    assert normalize("restricted_still_member") == []


def test_a_join_request_is_listed_but_not_ingested() -> None:
    assert normalize("join_request") == []
    [request] = join_requests(parse_update(FIXTURES["join_request"]))
    assert (request.chat, request.user, request.name, request.link) == (
        SUPER,
        "5550005",
        "Zhang",
        "https://t.me/+Req99",
    )
    assert (request.username, request.bio) == ("zhang_runs", "马拉松爱好者")


def test_a_new_title_renames_the_group_and_adding_the_bot_announces_it() -> None:
    [renamed] = normalize("renamed")
    assert (renamed["kind"], renamed["group"], renamed["name"]) == ("group.created", SUPER, "晨跑群")
    [added] = normalize("bot_added")
    assert (added["kind"], added["group"], added["name"]) == ("group.created", "-4012345678", "Basic group")


@pytest.mark.parametrize("first", ["migrate_to", "migrate_from"])
def test_a_migrated_group_stays_one_group_under_its_first_chat_id(first: str) -> None:
    conn = connector()
    [migration] = normalize(first, conn)
    second = "migrate_from" if first == "migrate_to" else "migrate_to"
    [again] = normalize(second, conn)
    # Both service messages record the same migration (one event id: stored once).
    assert migration["id"] == again["id"] == "tgmig:123456789:-1002222333444"
    assert migration["group"] == "-4012345678" and migration["kind"] == "group.created"
    [post] = normalize("after_migration", conn)
    assert (post["group"], post["text"]) == ("-4012345678", "we are a supergroup now")
    assert conn.chat_of("-4012345678") == "-1002222333444"  # actions go to the supergroup


def test_something_that_is_not_an_update_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidInput):
        connector().normalize({"message": {"chat": "nope"}})

"""perform() against the fake Bot API on loopback: each action's method and parameters, the
documented errors (429 retry_after, 400 migrate_to_chat_id), the group rate limit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from qunyun.connectors.actions import (
    CreateInviteLink,
    DeleteMessage,
    Kick,
    Mute,
    RevokeInviteLink,
    SendGroupMessage,
    SendWelcome,
    SetTags,
    Unmute,
    WelcomeMembers,
)
from qunyun.connectors.actions_entry import (
    ApproveJoinRequest,
    Ban,
    DeclineJoinRequest,
    EditInviteLink,
    SetGroupDescription,
    Unban,
)
from qunyun.connectors.base import ResultStatus, TransientError, UnsupportedAction
from qunyun.connectors.pace import LocalWindows
from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.telegram.botapi import BotApi, OutcomeUnknown, RateLimited
from qunyun.connectors.telegram.client import Limiter, TelegramConnector
from qunyun.connectors.telegram.factory import build, check
from tests.connectors.telegram.fakebot import TOKEN, FakeBotApi

G = "-1001987654321"


_OPEN: list[BotApi] = []


def connector(fake: FakeBotApi) -> TelegramConnector:
    api = BotApi(TOKEN, fake.url, timeout=5)
    _OPEN.append(api)
    return TelegramConnector(api)


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def test_sends_return_the_message_id_and_mentions_are_links(fakebot: FakeBotApi) -> None:
    tg = connector(fakebot)
    sent = tg.perform(SendGroupMessage(group=G, text="今晚 8 点 <直播>"), "k1")
    assert sent.status == ResultStatus.DONE and sent.external_ref is not None and sent.external_ref.isdigit()
    assert fakebot.called("sendMessage")[0] == {"chat_id": int(G), "text": "今晚 8 点 <直播>"}
    tg.perform(SendWelcome(group=G, member="5550003", text="欢迎 <新朋友>"), "k2")
    welcome = fakebot.called("sendMessage")[1]
    assert welcome["parse_mode"] == "HTML"
    assert welcome["text"] == '<a href="tg://user?id=5550003">@1</a> 欢迎 &lt;新朋友&gt;'
    tg.perform(WelcomeMembers(group=G, text="欢迎两位", mentions=("1", "2")), "k3")
    assert fakebot.called("sendMessage")[2]["text"].count("tg://user?id=") == 2
    tg.perform(SendGroupMessage(group=G, text="海报", msg_type="image", material="https://x.example/p.png"), "k4")
    assert fakebot.called("sendPhoto") == [{"chat_id": int(G), "photo": "https://x.example/p.png", "caption": "海报"}]


def test_moderation_actions_call_their_methods(fakebot: FakeBotApi) -> None:
    tg = connector(fakebot)
    assert tg.perform(DeleteMessage(group=G, message="4411"), "d").status == ResultStatus.DONE
    assert fakebot.deleted == [(int(G), 4411)]
    before = int(time.time())
    tg.perform(Mute(group=G, member="5550001", seconds=3600), "m")
    [mute] = fakebot.called("restrictChatMember")
    assert mute["permissions"]["can_send_messages"] is False
    assert before + 3600 <= mute["until_date"] <= int(time.time()) + 3600
    tg.perform(Unmute(group=G, member="5550001"), "u")
    assert fakebot.called("restrictChatMember")[1]["permissions"]["can_send_messages"] is True
    tg.perform(Kick(group=G, member="5550004", reason="third strike"), "kick")
    assert [m for m, _ in fakebot.calls[-2:]] == ["banChatMember", "unbanChatMember"]  # removed, may return
    until = datetime.now(UTC) + timedelta(days=7)
    tg.perform(Ban(group=G, member="5550004", until=until), "ban")
    assert fakebot.called("banChatMember")[1] == {
        "chat_id": int(G),
        "user_id": 5550004,
        "until_date": int(until.timestamp()),
    }
    tg.perform(Unban(group=G, member="5550004"), "unban")
    assert fakebot.called("unbanChatMember")[-1] == {"chat_id": int(G), "user_id": 5550004, "only_if_banned": True}


def test_invite_links_join_requests_and_the_description(fakebot: FakeBotApi) -> None:
    tg = connector(fakebot)
    expire = datetime.now(UTC) + timedelta(days=3)
    made = tg.perform(
        CreateInviteLink(group=G, name="活码 春季 第一批 渠道 A 超长的名字" * 2, member_limit=200, expire_at=expire),
        "l",
    )
    link = made.external_ref
    assert link is not None and link.startswith("https://t.me/+")
    [params] = fakebot.called("createChatInviteLink")
    assert (
        len(params["name"]) == 32 and params["member_limit"] == 200 and params["expire_date"] == int(expire.timestamp())
    )
    edited = tg.perform(EditInviteLink(group=G, link=link, name="秋季", member_limit=50), "e")
    assert edited.external_ref == link and fakebot.links[link]["member_limit"] == 50
    tg.perform(RevokeInviteLink(group=G, link=link), "r")
    assert fakebot.links[link]["is_revoked"] is True
    tg.perform(ApproveJoinRequest(group=G, member="5550005"), "a")
    tg.perform(DeclineJoinRequest(group=G, member="5550006"), "x")
    assert fakebot.called("approveChatJoinRequest") == [{"chat_id": int(G), "user_id": 5550005}]
    assert fakebot.called("declineChatJoinRequest") == [{"chat_id": int(G), "user_id": 5550006}]
    tg.perform(SetGroupDescription(group=G, text="每天 6 点晨跑打卡"), "s")
    assert fakebot.called("setChatDescription") == [{"chat_id": int(G), "description": "每天 6 点晨跑打卡"}]


def test_what_telegram_cannot_do_is_refused_for_a_person() -> None:
    tg = TelegramConnector(BotApi(TOKEN, "http://127.0.0.1:9"))
    with pytest.raises(UnsupportedAction):
        tg.perform(SetTags(member="1", add=("vip",)), "t")


def test_a_permanent_error_is_a_failed_result(fakebot: FakeBotApi) -> None:
    fakebot.fail_next("deleteMessage", 400, "Bad Request: message to delete not found")
    result = connector(fakebot).perform(DeleteMessage(group=G, message="1"), "d")
    assert result.status == ResultStatus.FAILED and "message to delete not found" in result.detail


def test_a_short_429_is_waited_out_and_a_long_one_is_transient(fakebot: FakeBotApi) -> None:
    tg = connector(fakebot)
    fakebot.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    started = time.monotonic()
    assert tg.perform(SendGroupMessage(group=G, text="a"), "k").status == ResultStatus.DONE
    assert time.monotonic() - started >= 1.0 and len(fakebot.called("sendMessage")) == 2
    fakebot.fail_next("sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30)
    with pytest.raises(RateLimited) as raised:
        tg.perform(SendGroupMessage(group=G, text="b"), "k2")
    assert isinstance(raised.value, TransientError) and raised.value.retry_after == 30
    calls = len(fakebot.calls)
    with pytest.raises(RateLimited):  # held back without calling Telegram until the wait has passed
        tg.perform(SendGroupMessage(group=G, text="c"), "k3")
    assert len(fakebot.calls) == calls


def test_waiting_out_a_short_429_leaves_a_longer_block_set_meanwhile(fakebot: FakeBotApi) -> None:
    """Two callers of one bot share its budget (two processes through Redis, here two connectors
    on one process's windows): one waits out a 1 s 429 while the other meets a 30 s one. The
    first then lifts only what is left of its own wait; the 30 s block holds them both."""
    shared = LocalWindows()
    first, second = (
        TelegramConnector(BotApi(TOKEN, fakebot.url, timeout=5), limiter=Limiter(windows=shared)) for _ in range(2)
    )
    _OPEN.extend([first.api, second.api])
    fakebot.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    outcome: list[BaseException | ResultStatus] = []

    def send() -> None:
        try:
            outcome.append(first.perform(SendGroupMessage(group=G, text="a"), "k").status)
        except RateLimited as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=send)
    waiting.start()
    time.sleep(0.3)
    second.limiter.block(30)  # the other caller's 429, while the first waits
    waiting.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], RateLimited) and outcome[0].retry_after > 25, outcome
    assert len(fakebot.called("sendMessage")) == 1  # not called again during the 30 s
    with pytest.raises(RateLimited):
        second.limiter.before_call(None, send=False)


def test_a_migrated_group_is_followed_to_its_supergroup(fakebot: FakeBotApi) -> None:
    fakebot.migrated[-4012345678] = -1002222333444
    tg = connector(fakebot)
    result = tg.perform(SendGroupMessage(group="-4012345678", text="hi"), "k")
    assert result.status == ResultStatus.DONE
    assert [p["chat_id"] for p in fakebot.called("sendMessage")] == [-4012345678, -1002222333444]
    tg.perform(DeleteMessage(group="-4012345678", message="5"), "d")  # straight to the new chat now
    assert fakebot.called("deleteMessage") == [{"chat_id": -1002222333444, "message_id": 5}]


def test_twenty_messages_a_minute_per_group() -> None:
    clock = [0.0]
    limiter = Limiter(clock=lambda: clock[0])
    for _ in range(20):
        limiter.before_call("g", send=True)
    with pytest.raises(RateLimited) as raised:
        limiter.before_call("g", send=True)
    assert 59 <= raised.value.retry_after <= 60
    limiter.before_call("other", send=True)  # another group has its own budget
    clock[0] = 60.5
    limiter.before_call("g", send=True)


def test_no_answer_to_a_send_is_an_unknown_outcome_not_a_retry() -> None:
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    api = BotApi(TOKEN, f"http://127.0.0.1:{port}", timeout=0.5)
    _OPEN.append(api)
    tg = TelegramConnector(api)
    with pytest.raises(OutcomeUnknown):
        tg.perform(SendGroupMessage(group=G, text="a"), "k")
    server.close()
    for conn in accepted:
        conn.close()


def test_the_check_asks_who_the_bot_is_and_readies_polling(fakebot: FakeBotApi) -> None:
    settings = {"mode": "polling", "api_base": fakebot.url}
    config = ConnectionConfig(1, 1, "telegram", "tg", settings, {"bot_token": TOKEN})
    check(config)
    assert [m for m, _ in fakebot.calls] == ["getMe", "deleteWebhook"]
    built = build(config)
    assert isinstance(built, TelegramConnector)
    built.api.close()
    bad = ConnectionConfig(1, 1, "telegram", "tg", settings, {"bot_token": "999:" + "x" * 35})
    with pytest.raises(Exception, match="401"):
        check(bad)


def test_the_token_never_reaches_the_logs(fakebot: FakeBotApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tg = connector(fakebot)
    tg.perform(SendGroupMessage(group=G, text="秘密内容"), "k")
    fakebot.fail_next("deleteMessage", 400, "Bad Request: message can't be deleted")
    tg.perform(DeleteMessage(group=G, message="1"), "d")
    assert "/bot***/sendMessage" in caplog.text  # httpx logged the request, masked
    assert TOKEN not in caplog.text and TOKEN.split(":")[1] not in caplog.text

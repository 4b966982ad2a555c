"""The WeCom client against the fake server: the shared token cache (one gettoken for many
processes' worth of callers, refreshed on 40014/42001 without a stampede), retries on
-1/45009/45033, typed errors in words, and the connector's actions with WeCom's limits."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from qunyun.connectors.actions import (
    CreateInviteLink,
    Kick,
    RevokeInviteLink,
    SendGroupMessage,
    SetTags,
    SyncInterceptRules,
)
from qunyun.connectors.base import ResultStatus, UnsupportedAction
from qunyun.connectors.wecom import tokens
from qunyun.connectors.wecom.client import WeComApiError, WeComBusy, WeComClient
from qunyun.connectors.wecom.connector import WeComConnector
from qunyun.connectors.wecom.fake import FakeWeCom
from qunyun.connectors.wecom.tokens import TokenCache
from qunyun.models.wecom_state import WeComToken
from tests.api.conftest import World
from tests.connectors.wecom.conftest import CORP_ID, SECRET, add_wecom


def _client(cid: int, base: str, *, secret: str = SECRET, corp_id: str = CORP_ID) -> WeComClient:
    return WeComClient(corp_id, secret, TokenCache(cid), api_base=base, sleep=lambda s: None)


def test_one_gettoken_for_every_client_and_it_is_stored_encrypted(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "群", "o1")
    for _ in range(3):
        _client(cid, base).get_group_chat("c1")
    assert server.gettoken_calls == 1
    tokens.forget_memory()  # another process: memory empty, the database has it
    _client(cid, base).get_group_chat("c1")
    assert server.gettoken_calls == 1
    with world.db() as s:
        row = s.get(WeComToken, cid)
        assert row is not None and row.refreshed == 1 and row.token
        assert next(iter(server.tokens)) not in row.token  # encrypted at rest


def test_expired_token_is_refreshed_once_for_many_callers(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "群", "o1")
    _client(cid, base).get_group_chat("c1")
    server.expire_tokens()  # WeCom now answers 42001 to the token everyone holds
    errors: list[BaseException] = []

    def call() -> None:
        try:
            _client(cid, base).get_group_chat("c1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert server.gettoken_calls == 2  # the first token and one refresh, not one per caller


def test_invalid_token_40014_is_refreshed(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "群", "o1")
    _client(cid, base).get_group_chat("c1")
    server.tokens.clear()  # WeCom forgot it: 40014
    assert _client(cid, base).get_group_chat("c1")["chat_id"] == "c1"
    assert server.gettoken_calls == 2


def test_busy_and_rate_limits_are_retried_with_backoff(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "群", "o1")
    slept: list[float] = []
    client = WeComClient(CORP_ID, SECRET, TokenCache(cid), api_base=base, sleep=slept.append)
    server.fail_next["externalcontact/groupchat/get"] = [45009, -1, 45033]
    assert client.get_group_chat("c1")["chat_id"] == "c1"
    assert slept == [0.2, 0.4, 0.8]
    server.fail_next["externalcontact/groupchat/get"] = [45009] * 4
    with pytest.raises(WeComBusy) as busy:
        client.get_group_chat("c1")
    assert busy.value.errcode == 45009


def test_errors_in_words(world: World, fake: tuple[FakeWeCom, str]) -> None:
    _server, base = fake
    cid = add_wecom(world, base)
    with pytest.raises(WeComApiError) as wrong_corp:
        _client(cid, base, corp_id="wwnotthecorp0000").fetch_token()
    assert wrong_corp.value.errcode == 40013
    assert "企业 ID" in wrong_corp.value.localized("zh") and "corp id" in wrong_corp.value.localized("en")
    with pytest.raises(WeComApiError) as wrong_secret:
        _client(cid, base, secret="not-the-secret").fetch_token()
    assert wrong_secret.value.errcode == 40001 and "secret" in wrong_secret.value.localized("en")
    with pytest.raises(WeComApiError) as unknown:
        _client(cid, base).call("externalcontact/no_such_api", {})
    assert unknown.value.errcode == 48002 and "permission" in unknown.value.localized("en")
    # Unreachable: temporary.
    with pytest.raises(WeComBusy):
        _client(cid, "http://127.0.0.1:9").fetch_token()


def test_group_chat_list_pages_through_the_cursor(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    for i in range(7):
        server.add_group(f"c{i}", f"群{i}", "o1")
    chats = [c["chat_id"] for c in _client(cid, base).list_group_chats(limit=3)]
    assert chats == [f"c{i}" for i in range(7)]
    pages = [body for api, body in server.calls if api == "externalcontact/groupchat/list"]
    assert [p.get("cursor") for p in pages] == [None, "3", "6"]


def test_the_connectors_actions(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "群1", "owner1", {"wmcust01": {}})
    connector = WeComConnector(cid, _client(cid, base), enrich=False)

    # A join way per group, its state from the key; the same key again gives the same one.
    made = connector.perform(CreateInviteLink(group="c1", name="活码"), "livecode:1:link:1")
    assert made.status == ResultStatus.DONE and made.external_ref and made.external_ref.startswith("https://")
    assert connector.perform(CreateInviteLink(group="c1"), "livecode:1:link:1").external_ref == made.external_ref
    assert len(server.join_ways) == 1
    assert (
        connector.perform(RevokeInviteLink(group="c1", link=made.external_ref), "revoke:1").status == ResultStatus.DONE
    )
    assert server.join_ways == {}
    # More than 5 groups in one join way: WeCom's 40058 (the client names it).
    for i in range(2, 8):
        server.add_group(f"c{i}", "群", "owner1")
    with pytest.raises(WeComApiError) as too_many:
        connector.client.add_join_way([f"c{i}" for i in range(1, 7)], state="s")
    assert too_many.value.errcode == 40058

    # A mass send waits for the owner.
    sent = connector.perform(SendGroupMessage(group="c1", text="早安"), "sop:1")
    assert sent.status == ResultStatus.AWAITING_CONFIRMATION
    assert server.msg_templates[str(sent.external_ref)]["results"] == [
        {"chat_id": "c1", "userid": "owner1", "status": 0}
    ]

    # Intercept rules: added, then updated by name; more than 300 words is refused.
    first = connector.perform(SyncInterceptRules(name="qunyun-广告-1", words=("加微信", "代理")), "rules:1")
    again = connector.perform(SyncInterceptRules(name="qunyun-广告-1", words=("加微信",)), "rules:2")
    assert (first.detail, again.detail, first.external_ref) == ("added", "updated", again.external_ref)
    assert server.rules[str(first.external_ref)]["word_list"] == ["加微信"]
    # The rule list is a GET in WeCom's documentation, the rest of them POSTs.
    rule_calls = {(m, a) for m, a in server.methods if "intercept_rule" in a}
    assert rule_calls == {
        ("GET", "externalcontact/get_intercept_rule_list"),
        ("POST", "externalcontact/add_intercept_rule"),
        ("POST", "externalcontact/update_intercept_rule"),
    }
    big = connector.perform(SyncInterceptRules(name="big", words=tuple(f"w{i}" for i in range(301))), "rules:3")
    assert big.status == ResultStatus.FAILED and "300" in big.detail

    # Tags: created when missing, marked through the member's follow user.
    tagged = connector.perform(SetTags(member="wmcust01", add=("高意向",)), "tags:1")
    assert tagged.status == ResultStatus.DONE
    assert server.marks[-1]["userid"] == "owner1" and len(server.marks[-1]["add_tag"]) == 1

    # No API kicks from a customer group: the dispatcher makes it a staff task.
    with pytest.raises(UnsupportedAction):
        connector.perform(Kick(group="c1", member="wmcust01"), "kick:1")

    # A refusal becomes a failed result with the reason in words.
    failed = connector.perform(SendGroupMessage(group="nope", text="x"), "sop:2")
    assert failed.status == ResultStatus.FAILED


def test_the_connection_check_names_the_gettoken_error(world: World, fake: tuple[FakeWeCom, str]) -> None:
    from qunyun.connections.service import probe
    from qunyun.connectors.registry import config_of
    from qunyun.models import Connection

    server, base = fake
    cid = add_wecom(world, base)
    with world.db() as s:
        row = s.scalar(select(Connection).where(Connection.id == cid))
        assert row is not None
        config = config_of(row)
    assert probe(config) is None
    server.secret = "rotated-secret-000"
    reason = probe(config)
    assert reason is not None and "40001" in reason and "secret" in reason


def test_the_rest_of_the_clients_endpoints_against_the_fake(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    for i in range(1, 7):
        server.add_group(f"c{i}", f"群{i}", "owner1", {f"wm{i}": {}})
    client = _client(cid, base)

    # Join ways: updated to another ≤5 groups; 6 is WeCom's 40058; deleted.
    config_id = client.add_join_way(["c1"], state="qytest")
    client.update_join_way(config_id, ["c1", "c2", "c3", "c4", "c5"], state="qytest")
    assert client.get_join_way(config_id)["chat_id_list"] == ["c1", "c2", "c3", "c4", "c5"]
    with pytest.raises(WeComApiError) as six:
        client.update_join_way(config_id, [f"c{i}" for i in range(1, 7)], state="qytest")
    assert six.value.errcode == 40058
    client.del_join_way(config_id)
    assert server.join_ways == {}

    # A contact way with a state, the group statistic by day, a moment task.
    assert client.add_contact_way(["owner1"], state="qycontact")["config_id"]
    (day,) = client.group_statistic_by_day(1764720000, ["owner1"])
    assert day["data"]["member_total"] == 12  # 6 groups of the owner and one customer each
    assert client.add_moment_task("新品上市")

    # A mass send: reminded at most 3 times, then cancelled.
    msgid = str(client.add_group_msg_template("owner1", ["c1"], "早安")["msgid"])
    for _ in range(3):
        client.remind_groupmsg_send(msgid)
    with pytest.raises(WeComApiError):
        client.remind_groupmsg_send(msgid)
    client.cancel_groupmsg_send(msgid)
    assert server.msg_templates[msgid]["cancelled"]

    # An intercept rule read back and deleted.
    rule_id = client.add_intercept_rule("广告", ["加微信"])
    assert client.get_intercept_rule(rule_id)["word_list"] == ["加微信"]
    client.del_intercept_rule(rule_id)
    assert client.get_intercept_rule_list() == []
    client.close()

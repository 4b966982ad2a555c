"""Mass sends after a crash (issue 13): a group mass send whose worker died after calling
add_msg_template but before recording the msgid is found on WeCom (get_groupmsg_list_v2, the
task and its chats) and adopted, never sent twice; one that never reached WeCom is sent once the
attempt is certainly over; too early, or WeCom not answering, leaves it ``sending`` to be checked
again. Against the fake WeCom server, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from qunyun.connectors import dispatch
from qunyun.connectors.actions import SendGroupMessage
from qunyun.connectors.dispatch import request_action
from qunyun.connectors.wecom.fake import FakeWeCom
from qunyun.connectors.wecom.sync import callbacks_job
from qunyun.db.session import unit_of_work
from qunyun.models import Group, Job, OutboundAction, OutboundActionTransition
from qunyun.modules import load_domain_modules
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import PeriodicPayload
from tests.api.conftest import World
from tests.connectors.wecom.conftest import add_wecom
from tests.hooks.conftest import run_jobs

CHAT = "wrOgQhDgAAreconcile00000000001"
TEXT = "今晚 8 点直播，记得来"


def _setup(world: World, server: FakeWeCom, base: str) -> int:
    load_domain_modules()
    server.add_group(CHAT, "骑友 1 群", "owner1", {"wmcust0001": {}})
    add_wecom(world, base)
    with unit_of_work(world.db) as s:
        callbacks_job(s, PeriodicPayload())  # the first sync: the group exists in qunyun
    with world.db() as s:
        group_id = s.scalar(select(Group.id).where(Group.external_id == CHAT))
        assert group_id is not None
        return group_id


def _request(world: World, group_id: int, key: str, text: str = TEXT) -> int:
    with unit_of_work(world.db) as s:
        return request_action(
            s, world.org_a, SendGroupMessage.kind, group_id=group_id, payload={"text": text}, idempotency_key=key
        ).id


def _crash(world: World, action_id: int, *, called: bool, minutes_ago: int = 10) -> None:
    """The worker commits ``sending``, maybe calls WeCom, and dies before recording anything;
    ``minutes_ago`` later its job runs again."""
    with unit_of_work(world.db) as s:
        prepared = dispatch.prepare(s, action_id)
    assert prepared is not None and prepared.mode == dispatch.CallMode.SEND
    if called:
        dispatch.call(prepared)
    with unit_of_work(world.db) as s:
        s.execute(
            update(OutboundActionTransition)
            .where(OutboundActionTransition.action_id == action_id)
            .values(at=utcnow() - timedelta(minutes=minutes_ago))
        )


def _action(world: World, action_id: int) -> OutboundAction:
    with world.db() as s:
        row = s.get(OutboundAction, action_id)
        assert row is not None
        return row


def _due_now(world: World) -> None:
    with unit_of_work(world.db) as s:
        s.execute(update(Job).where(Job.status == "queued").values(run_at=utcnow()))


def test_a_mass_send_made_before_the_crash_is_adopted_not_sent_again(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    group_id = _setup(world, server, base)
    action_id = _request(world, group_id, "sop:run:7:step:1")
    _crash(world, action_id, called=True)
    [msgid] = server.msg_templates
    run_jobs(world.db)  # the perform job again: it finds "sending" and asks WeCom
    action = _action(world, action_id)
    assert (action.state, action.external_ref) == ("awaiting_confirmation", msgid)
    assert list(server.msg_templates) == [msgid]  # no second mass send
    assert ("externalcontact/get_groupmsg_list_v2") in [api for api, _ in server.calls]

    # The owner confirms: the action is confirmed as any other mass send.
    server.confirm(msgid)
    with unit_of_work(world.db) as s:
        callbacks_job(s, PeriodicPayload())
    assert _action(world, action_id).state == "confirmed"


def test_a_mass_send_that_never_reached_wecom_is_sent_once_the_attempt_is_over(
    world: World, fake: tuple[FakeWeCom, str]
) -> None:
    server, base = fake
    group_id = _setup(world, server, base)
    # An earlier run sent the same text to the same group: its msgid is that action's, not ours.
    first = _request(world, group_id, "sop:run:1:step:1")
    run_jobs(world.db)
    earlier = _action(world, first).external_ref
    assert earlier in server.msg_templates

    action_id = _request(world, group_id, "sop:run:2:step:1")
    _crash(world, action_id, called=False)
    run_jobs(world.db)
    action = _action(world, action_id)
    assert action.state == "awaiting_confirmation"
    assert action.external_ref not in (None, earlier)
    assert len(server.msg_templates) == 2  # the earlier one and this one, each once


def test_too_early_to_tell_or_wecom_not_answering_leaves_it_sending_to_check_later(
    world: World, fake: tuple[FakeWeCom, str]
) -> None:
    server, base = fake
    group_id = _setup(world, server, base)
    action_id = _request(world, group_id, "sop:run:3:step:1")
    # Not found, but the attempt began 30 s ago: a call of it may still arrive. Nothing is sent.
    _crash(world, action_id, called=False, minutes_ago=0)
    run_jobs(world.db)
    action = _action(world, action_id)
    assert action.state == "sending" and "check later" in (action.last_error or "")
    assert server.msg_templates == {}

    # Later: WeCom stays busy through every retry. Still sending; nothing sent.
    with unit_of_work(world.db) as s:
        s.execute(
            update(OutboundActionTransition)
            .where(OutboundActionTransition.action_id == action_id)
            .values(at=utcnow() - timedelta(minutes=10))
        )
    server.fail_next["externalcontact/get_groupmsg_list_v2"] = [-1, -1, -1, -1]
    _due_now(world)
    run_jobs(world.db)
    action = _action(world, action_id)
    assert action.state == "sending" and "get_groupmsg_list_v2" in (action.last_error or "")
    assert server.msg_templates == {}

    # WeCom answers again: not found, the attempt long over → sent now, once.
    _due_now(world)
    run_jobs(world.db)
    action = _action(world, action_id)
    assert action.state == "awaiting_confirmation" and action.external_ref in server.msg_templates
    assert len(server.msg_templates) == 1


def test_a_mass_send_whose_answer_is_lost_is_reconciled_not_retried(world: World, fake: tuple[FakeWeCom, str]) -> None:
    import httpx

    from qunyun.connectors import registry
    from qunyun.connectors.wecom.connector import WeComConnector
    from qunyun.models import Connection

    server, base = fake
    group_id = _setup(world, server, base)
    with world.db() as s:
        connection = s.scalar(select(Connection).where(Connection.platform == "wecom"))
        assert connection is not None
        connector = registry.connector_of(connection)
    assert isinstance(connector, WeComConnector)
    connector.client.http.timeout = httpx.Timeout(0.5)
    # WeCom makes the mass send, but its answer comes after the client gave up.
    server.delay_next["externalcontact/add_msg_template"] = 1.5
    action_id = _request(world, group_id, "sop:run:9:step:1")
    run_jobs(world.db)
    action = _action(world, action_id)
    assert action.state == "sending" and "add_msg_template" in (action.last_error or "")
    [msgid] = server.msg_templates  # made once; not sent again as a "temporary" failure

    with unit_of_work(world.db) as s:
        s.execute(
            update(OutboundActionTransition)
            .where(OutboundActionTransition.action_id == action_id)
            .values(at=utcnow() - timedelta(minutes=10))
        )
    _due_now(world)
    run_jobs(world.db)
    action = _action(world, action_id)
    assert (action.state, action.external_ref) == ("awaiting_confirmation", msgid)
    assert list(server.msg_templates) == [msgid]

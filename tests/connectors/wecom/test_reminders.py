"""A group mass send waits for its owner to press send in the WeCom client (issue 12: "≤3
reminders per 24 h"): one left unsent gets WeCom's own reminder (remind_groupmsg_send) half an
hour on, then every two hours, never more than three in 24 hours, each in the action's history;
none once the owner sent it. Against the fake WeCom server, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from qunyun.connectors.wecom.fake import FakeWeCom
from qunyun.connectors.wecom.sync import REMINDED, callbacks_job
from qunyun.db.session import unit_of_work
from qunyun.locale import Msg
from qunyun.models import OutboundAction, OutboundActionTransition
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import PeriodicPayload
from tests.api.conftest import World
from tests.connectors.wecom.test_reconcile import _request, _setup
from tests.hooks.conftest import run_jobs


def _pass(world: World) -> None:
    """One run of the WeCom callbacks job (confirmations and reminders)."""
    with unit_of_work(world.db) as s:
        callbacks_job(s, PeriodicPayload())


def _later(world: World, action_id: int, minutes: int) -> None:
    """``minutes`` pass: the action's history moves that far into the past."""
    with unit_of_work(world.db) as s:
        for row in s.scalars(select(OutboundActionTransition).where(OutboundActionTransition.action_id == action_id)):
            row.at -= timedelta(minutes=minutes)


def _reminders(world: World, action_id: int) -> list[OutboundActionTransition]:
    with world.db() as s:
        return list(
            s.scalars(
                select(OutboundActionTransition)
                .where(OutboundActionTransition.action_id == action_id, OutboundActionTransition.detail_key == REMINDED)
                .order_by(OutboundActionTransition.id)
            )
        )


def test_an_unsent_mass_send_is_reminded_on_wecom_three_times_a_day_at_most(
    world: World, fake: tuple[FakeWeCom, str]
) -> None:
    server, base = fake
    group_id = _setup(world, server, base)
    action_id = _request(world, group_id, "sop:run:7:step:1")
    run_jobs(world.db)
    with world.db() as s:
        action = s.get(OutboundAction, action_id)
        assert action is not None and action.state == "awaiting_confirmation"
        msgid = str(action.external_ref)

    def reminded() -> int:
        return int(server.msg_templates[msgid]["reminded"])

    _pass(world)  # just made: the owner has half an hour before the first reminder
    assert reminded() == 0
    _later(world, action_id, 31)
    _pass(world)
    assert reminded() == 1
    _pass(world)  # the next comes two hours after the last
    assert reminded() == 1
    _later(world, action_id, 121)
    _pass(world)
    _later(world, action_id, 121)
    _pass(world)
    assert reminded() == 3
    _later(world, action_id, 121)
    _pass(world)  # three in the last 24 hours: WeCom's limit, not asked a fourth time
    assert reminded() == 3
    assert [api for api, _ in server.calls].count("externalcontact/remind_groupmsg_send") == 3

    rows = _reminders(world, action_id)
    assert [(r.from_state, r.to_state) for r in rows] == [("awaiting_confirmation", "awaiting_confirmation")] * 3
    assert [r.detail_values for r in rows] == [{"count": 1}, {"count": 2}, {"count": 3}]
    assert Msg(REMINDED, count=1).render("zh") == "已通过企业微信提醒群主发送（第 1 次）"

    # Once the owner has sent it: confirmed, and no more reminders.
    _later(world, action_id, 24 * 60)
    server.confirm(msgid)
    _pass(world)
    with world.db() as s:
        assert s.get(OutboundAction, action_id).state == "confirmed"  # type: ignore[union-attr]
    assert reminded() == 3


def test_a_reminder_wecom_refuses_is_not_recorded(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    group_id = _setup(world, server, base)
    action_id = _request(world, group_id, "sop:run:8:step:1")
    run_jobs(world.db)
    with world.db() as s:
        msgid = str(s.scalar(select(OutboundAction.external_ref).where(OutboundAction.id == action_id)))
    server.msg_templates[msgid]["reminded"] = 3  # reminded from elsewhere (the admin console) already
    _later(world, action_id, 31)
    _pass(world)
    assert _reminders(world, action_id) == []
    with world.db() as s:
        action = s.get(OutboundAction, action_id)
        assert action is not None and action.state == "awaiting_confirmation"
        assert action.updated_at <= utcnow()

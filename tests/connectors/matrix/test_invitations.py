"""Live-code attribution on Matrix against a real Synapse, in bot and appservice mode: a join
names no link, so the code's page offers an invitation — the visitor enters their Matrix ID, the
bot invites them (two-phase), they join, and the join carries the code's channel and counts in
the code's figures."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select

from qunyun.acquisition.service import members_acquired
from qunyun.connectors.actions import CreateGroup
from qunyun.connectors.dispatch import request_action
from qunyun.db.session import unit_of_work
from qunyun.livecodes import service as livecodes
from qunyun.livecodes.jobs import maintain
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.models import Channel, Group, LiveCodeGroup, LiveCodeJoin, Member, OutboundAction
from qunyun.models.livecode import LiveCodeInvitation
from qunyun.timeutil import utcnow
from tests.connectors.matrix.homeserver import User
from tests.connectors.matrix.test_loop import Loop, loop

__all__ = ["loop"]


def _hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, html[:800]
    return found.group(1)


def test_a_visitor_invited_from_the_code_page_joins_attributed(loop: Loop, new_user: Callable[[str], User]) -> None:
    fan = new_user("fan")
    if loop.mode == "bot":
        loop.pump()  # the first sync: where the bot's history starts
    with unit_of_work(loop.db) as s:
        request_action(
            s,
            loop.org_id,
            CreateGroup.kind,
            connection_id=loop.connection_id,
            payload={"name": "Matrix 邀请群"},
            idempotency_key="invite:room",
        )
    loop.run_jobs()
    room = str(loop.action("invite:room").external_ref)
    loop.pump(expect=room)
    with unit_of_work(loop.db) as s:
        group = s.scalars(select(Group).where(Group.org_id == loop.org_id, Group.external_id == room)).one()
        group.owner_id = loop.owner_id
        channel = Channel(org_id=loop.org_id, code="meetup", name="线下聚会", kind="offline", created_at=utcnow())
        s.add(channel)
        s.flush()
        # The homeserver outlives each test's database: a link's alias derives from its pool
        # entry's id, so this test's entry must not share test_loop's id (1) in either order.
        spare = livecodes.create_live_code(s, loop.scope(), LiveCodeCreate(name="占位", paused=True))
        s.add(
            LiveCodeGroup(
                org_id=loop.org_id,
                live_code_id=spare.id,
                group_id=group.id,
                scan_limit=1,
                active=False,
                added_at=utcnow(),
            )
        )
        s.flush()
        code = livecodes.create_live_code(
            s, loop.scope(), LiveCodeCreate(name="聚会活码", group_ids=[group.id], channel_id=channel.id)
        )
        group_id, channel_id, code_id, short = group.id, channel.id, code.id, code.code
    loop.run_jobs()  # the room's alias link
    with unit_of_work(loop.db) as s:
        maintain(s, utcnow(), org_id=loop.org_id)

    # The page shows the room's link and the invitation form.
    page = loop.client.get(f"/c/{short}", follow_redirects=False)
    assert page.status_code == 200 and "https://matrix.to/#/" in page.text and 'name="matrix_id"' in page.text
    form = {k: _hidden(page.text, k) for k in ("_e", "_v", "_sig")}

    # Not a Matrix ID: the page again, 400, naming the field; nothing recorded, nobody invited.
    bad = loop.client.post(f"/c/{short}/invite", data={**form, "matrix_id": "fan@example.org"})
    assert bad.status_code == 400 and "matrix_id" in bad.text
    forged = loop.client.post(
        f"/c/{short}/invite", data={**form, "_sig": "0" * 24, "matrix_id": fan.user_id}, follow_redirects=False
    )
    assert forged.status_code == 303
    with loop.db() as s:
        assert s.scalars(select(LiveCodeInvitation.id)).all() == []

    # The visitor's own ID: recorded, and the bot invites them (once, however often they ask).
    sent = loop.client.post(f"/c/{short}/invite", data={**form, "matrix_id": f"  {fan.user_id} "})
    assert sent.status_code == 200 and fan.user_id in sent.text
    assert loop.client.post(f"/c/{short}/invite", data={**form, "matrix_id": fan.user_id}).status_code == 200
    loop.run_jobs()
    with loop.db() as s:
        [invitation] = s.scalars(select(LiveCodeInvitation)).all()
        assert (invitation.live_code_id, invitation.channel_id, invitation.group_id, invitation.user_id) == (
            code_id,
            channel_id,
            group_id,
            fan.user_id,
        )
        action = s.get_one(OutboundAction, invitation.action_id)
        assert (action.action, action.state) == ("invite_member", "sent")
    assert loop.bot.state(room, "m.room.member", fan.user_id)["membership"] == "invite"

    # They accept: the join is the code's and its channel's.
    fan.join(room)
    loop.pump(expect=fan.user_id)
    with loop.db() as s:
        member_id = s.scalars(
            select(Member.id).where(Member.org_id == loop.org_id, Member.external_id == fan.user_id)
        ).one()
        [join] = s.scalars(select(LiveCodeJoin).where(LiveCodeJoin.live_code_id == code_id)).all()
        assert (join.member_id, join.channel_id, join.group_id, join.matched_by) == (
            member_id,
            channel_id,
            group_id,
            "invitation",
        )
        assert join.scan_id is not None  # the visitor's scan of the page
        assert s.get_one(LiveCodeInvitation, invitation.id).joined_at is not None
        assert members_acquired(s, loop.org_id, [channel_id]) == {channel_id: 1}
        summary = livecodes.summary(s, loop.scope(), code_id)
    assert [g["joined"] for g in summary["groups"]] == [1]

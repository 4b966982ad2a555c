"""Invitations from a live code's page, for platforms whose joins carry no link (Matrix).

A Matrix join says nothing of the alias or link the member used, so a join through a live
code's room link cannot be told from any other. The scan page of a code whose group is on a
Matrix connection therefore also offers "get an invitation": the visitor enters their Matrix ID
(``@local:server``), qunyun records the invitation (code, channel, group, visitor, the user id,
when) and the bot invites them (``invite_member`` through the outbound path: recorded, then
called by the worker in two phases). When that user's join of that room arrives within
:data:`WINDOW`, the funnel attributes it to the code and its channel (:func:`match_join`,
``matched_by`` ``invitation``), exactly as a join through a Telegram link is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.connectors.actions_rooms import InviteMember
from qunyun.connectors.base import Capability, get_profile
from qunyun.connectors.dispatch import request_action
from qunyun.errors import InvalidInput, NotFound
from qunyun.livecodes.join_requests import member_for
from qunyun.locale import Msg
from qunyun.models import Connection, Group, LiveCode, LiveCodeGroup, LiveCodeScan, Member
from qunyun.models.livecode import LiveCodeInvitation
from qunyun.timeutil import utcnow

# A join this long after the invitation is still the invitation's.
WINDOW = timedelta(days=7)
MAX_USER_ID = 255
# The user id grammar of the Matrix spec (historical localparts allowed, as servers accept them).
_MATRIX_ID = re.compile(r"@[\x21-\x39\x3b-\x7e]+:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?")


def offers_invitation(platform: str) -> bool:
    """Whether the scan page offers an invitation for a group on ``platform``: it can invite by
    id and attribute that join, and a join through the link is not attributable."""
    if not platform:
        return False
    try:
        profile = get_profile(platform)
    except InvalidInput:
        return False
    return profile.has(Capability.INVITATION_ATTRIBUTION) and not profile.has(Capability.INVITE_LINK_ATTRIBUTION)


def matrix_id(value: str | None, field: str = "matrix_id") -> str:
    """A Matrix user id as entered (spaces around it dropped); ``InvalidInput`` naming the field
    when it is not ``@localpart:server``."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput(Msg("err.invitation.required"), field=field)
    if len(text) > MAX_USER_ID or _MATRIX_ID.fullmatch(text) is None:
        raise InvalidInput(Msg("err.invitation.matrix_id"), field=field)
    return text


@dataclass(frozen=True)
class Invited:
    invitation: LiveCodeInvitation
    group_name: str
    new: bool  # False: the same user was invited to the group by this code already (not again)


def invite(
    session: Session, code: str, entry_id: int, visitor: str, user_id: str, *, now: datetime | None = None
) -> Invited:
    """Record an invitation from the page of ``code`` into the group of pool entry ``entry_id``
    and ask the bot to invite ``user_id`` (validated: ``InvalidInput`` naming ``matrix_id``).
    The same user asking again for the same group within the window is not invited twice."""
    now = now or utcnow()
    found = session.execute(
        select(LiveCode, LiveCodeGroup, Group, Connection.platform)
        .join(LiveCodeGroup, LiveCodeGroup.live_code_id == LiveCode.id)
        .join(Group, Group.id == LiveCodeGroup.group_id)
        .join(Connection, Connection.id == Group.connection_id)
        .where(LiveCode.code == code, LiveCodeGroup.id == entry_id, LiveCodeGroup.active.is_(True))
    ).first()
    if found is None or not offers_invitation(found[3]) or found[0].paused:
        raise NotFound(Msg("err.invitation.no_group"), field="entry")
    live_code, _, group, _ = found
    user = matrix_id(user_id)
    earlier = session.scalar(
        select(LiveCodeInvitation)
        .where(
            LiveCodeInvitation.group_id == group.id,
            LiveCodeInvitation.user_id == user,
            LiveCodeInvitation.live_code_id == live_code.id,
            LiveCodeInvitation.created_at >= now - WINDOW,
        )
        .order_by(LiveCodeInvitation.id.desc())
        .limit(1)
    )
    if earlier is not None:
        return Invited(earlier, group.name, new=False)
    member = member_for(session, live_code.org_id, "matrix", user, "", now)
    row = LiveCodeInvitation(
        org_id=live_code.org_id,
        live_code_id=live_code.id,
        channel_id=live_code.channel_id,
        group_id=group.id,
        visitor=visitor[:32],
        user_id=user,
        member_id=member.id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    action = request_action(
        session,
        live_code.org_id,
        InviteMember.kind,
        group_id=group.id,
        member_id=member.id,
        payload={},
        idempotency_key=f"live-code-invitation:{row.id}",
    )
    row.action_id = action.id
    session.flush()
    return Invited(row, group.name, new=True)


@dataclass(frozen=True)
class InvitedJoin:
    live_code_id: int
    channel_id: int | None
    scan_id: int | None


def match_join(
    session: Session, org_id: int, group_id: int, member_id: int, event_id: int, at: datetime
) -> InvitedJoin | None:
    """The invitation a join of ``member_id`` into ``group_id`` at ``at`` answers (the latest
    within :data:`WINDOW` before it, not matched yet), marked joined; None when there is none."""
    row = session.scalar(
        select(LiveCodeInvitation)
        .join(Member, Member.external_id == LiveCodeInvitation.user_id)
        .where(
            Member.id == member_id,
            Member.org_id == org_id,
            LiveCodeInvitation.org_id == org_id,
            LiveCodeInvitation.group_id == group_id,
            LiveCodeInvitation.joined_at.is_(None),
            LiveCodeInvitation.created_at <= at + timedelta(minutes=5),  # platform clocks differ a little
            LiveCodeInvitation.created_at >= at - WINDOW,
        )
        .order_by(LiveCodeInvitation.created_at.desc(), LiveCodeInvitation.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    row.joined_at = at
    row.join_event_id = event_id
    scan_id = session.scalar(
        select(LiveCodeScan.id)
        .where(
            LiveCodeScan.org_id == org_id,
            LiveCodeScan.live_code_id == row.live_code_id,
            LiveCodeScan.visitor == row.visitor,
            LiveCodeScan.first.is_(True),
        )
        .order_by(LiveCodeScan.id)
        .limit(1)
    )
    return InvitedJoin(row.live_code_id, row.channel_id, scan_id)

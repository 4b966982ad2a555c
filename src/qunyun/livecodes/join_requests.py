"""Requests to join a group (Telegram links that create join requests), decided as entry
thresholds (门槛).

A request is stored when its update is ingested (:func:`record_requests`, in the ingest's
transaction): the requester (platform id, name, username, bio when Telegram sends one), the
invite link it came through and so the live code and channel of that link, when it came. Then it
is decided at once, by rule, or handed to staff:

- a requester on the organisation's blacklist (``blacklist.is_blacklisted``: blacklist tags and
  moderation's blacklist) is **declined**, whatever the code says (rule ``blacklist``);
- the live code's ``join_request_policy`` ``approve``: **approved** (rule ``approve``);
- ``review``, and ``direct`` (the default: the code's links are made without approval, so a
  request through one comes from a link an admin changed by hand) and requests through links of
  no live code: **pending**, with a task
  in the task inbox of the group's owner; staff approve or decline it on the console's join
  request page or through ``POST /api/v1/join-requests/{id}/approve|decline``
  (:func:`decide`), which completes the task.

A code whose policy is ``review`` or ``approve`` asks the platform for links whose joins are
requests (``CreateInviteLink.join_request``; Telegram's ``creates_join_request``, which excludes
a member limit); ``direct`` links let members straight in, member-limited to the entry's room.

A decision is performed through the outbound path (``approve_join_request`` /
``decline_join_request`` with ``request_action``: recorded, then called by the worker in two
phases); the request keeps the action's id. An approved requester's join then arrives as any
join through that link (``chat_member`` with the link) and is attributed to the link's live
code by the funnel's link matching.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import record_by
from qunyun.auth.scope import Scope, group_id_visible, require_write
from qunyun.connectors.actions_entry import ApproveJoinRequest, DeclineJoinRequest
from qunyun.connectors.dispatch import request_action
from qunyun.db.unique import insert_or_get, try_insert
from qunyun.errors import Conflict, NotFound
from qunyun.livecodes.attribution import entry_for_link
from qunyun.livecodes.blacklist import is_blacklisted
from qunyun.locale import Msg
from qunyun.models import Connection, Group, LiveCode, Member, StaffTask, TaskKind, TaskStatus
from qunyun.models.telegram_state import JoinRequest
from qunyun.timeutil import utcnow

PENDING, APPROVED, DECLINED = "pending", "approved", "declined"
POLICIES = ("direct", "review", "approve")
MAX_BIO = 500


@dataclass(frozen=True)
class Requested:
    """A request to join as a connector reads it from the platform."""

    chat: str  # the chat id it came from
    group: str  # the group's external id (a migrated chat: its first id)
    user: str
    name: str
    at: datetime
    link: str | None = None
    username: str = ""
    bio: str = ""


def member_for(session: Session, org_id: int, platform: str, external_id: str, name: str, at: datetime) -> Member:
    """The member of a platform account, created on first sight (as ingestion would)."""

    def lookup() -> Member | None:
        return session.scalar(
            select(Member).where(
                Member.org_id == org_id, Member.platform == platform, Member.external_id == external_id
            )
        )

    found = lookup()
    if found is not None:
        return found
    row = Member(
        org_id=org_id,
        platform=platform,
        external_id=external_id,
        display_name=name[:200],
        display_name_at=at if name else None,
        first_seen_at=at,
    )
    member, _ = insert_or_get(session, row, lookup)
    return member


def record_requests(session: Session, connection: Connection, requests: Sequence[Requested]) -> list[JoinRequest]:
    """Store the requests of an ingested update (once each: a redelivered update changes
    nothing) and decide the new ones; returns the new rows."""
    stored: list[JoinRequest] = []
    for req in requests:
        group = session.scalar(
            select(Group).where(
                Group.org_id == connection.org_id,
                Group.connection_id == connection.id,
                Group.external_id == req.group,
            )
        )
        member = member_for(session, connection.org_id, connection.platform, req.user, req.name, req.at)
        entry = entry_for_link(session, connection.org_id, req.link) if req.link else None
        if entry is not None and group is not None and entry.group_id != group.id:
            entry = None  # a link of another group: not this code's
        row = JoinRequest(
            org_id=connection.org_id,
            connection_id=connection.id,
            chat=req.chat[:64],
            group_id=group.id if group is not None else None,
            user_id=req.user[:64],
            member_id=member.id,
            name=req.name[:200],
            username=req.username[:64],
            bio=req.bio[:MAX_BIO],
            invite_link=req.link[:500] if req.link else None,
            live_code_id=entry.live_code_id if entry is not None else None,
            channel_id=entry.channel_id if entry is not None else None,
            requested_at=req.at,
            status=PENDING,
        )
        if not try_insert(session, row):
            continue
        _decide_by_rule(session, row)
        stored.append(row)
    return stored


def _decide_by_rule(session: Session, row: JoinRequest) -> None:
    if row.group_id is None:
        return  # a chat qunyun does not know yet: nothing to act on it with; staff see it listed
    if row.member_id is not None and is_blacklisted(session, row.org_id, [row.member_id]):
        _perform(session, row, approve=False, decided_by="rule", rule="blacklist")
        return
    policy = None
    if row.live_code_id is not None:
        policy = session.scalar(select(LiveCode.join_request_policy).where(LiveCode.id == row.live_code_id))
    if policy == "approve":
        _perform(session, row, approve=True, decided_by="rule", rule="approve")
        return
    group_name = session.scalar(select(Group.name).where(Group.id == row.group_id)) or row.chat
    from qunyun.tasks.service import open_task  # tasks imports dispatch, which imports us late

    task = open_task(
        session,
        org_id=row.org_id,
        kind=TaskKind.OTHER,
        title=Msg("task.title.join_request", member=row.name or row.user_id, group=group_name),
        detail={
            "join_request_id": row.id,
            "member": row.name,
            "username": row.username,
            "bio": row.bio,
            "link": "/join-requests",
        },
        group_id=row.group_id,
    )
    row.task_id = task.id
    session.flush()


def _perform(
    session: Session,
    row: JoinRequest,
    *,
    approve: bool,
    decided_by: str,
    rule: str | None = None,
    staff_id: int | None = None,
) -> None:
    kind = ApproveJoinRequest.kind if approve else DeclineJoinRequest.kind
    action = request_action(
        session,
        row.org_id,
        kind,
        connection_id=row.connection_id,
        group_id=row.group_id,
        member_id=row.member_id,
        payload={},
        idempotency_key=f"join-request:{row.id}:{'approve' if approve else 'decline'}",
    )
    row.status = APPROVED if approve else DECLINED
    row.decided_by = decided_by
    row.rule = rule
    row.decided_by_id = staff_id
    row.decided_at = utcnow()
    row.action_id = action.id
    session.flush()


# --- staff --------------------------------------------------------------------------------------


def _visible(scope: Scope) -> ColumnElement[bool]:
    return and_(JoinRequest.org_id == scope.org_id, group_id_visible(JoinRequest.group_id, scope))


def list_requests(
    session: Session, scope: Scope, *, status: str | None = PENDING, limit: int = 50, offset: int = 0
) -> list[JoinRequest]:
    """The join requests ``scope`` sees (of its groups), newest first; ``status`` None: all."""
    query = select(JoinRequest).where(_visible(scope))
    if status is not None:
        query = query.where(JoinRequest.status == status)
    rows = session.scalars(query.order_by(JoinRequest.id.desc()).limit(limit).offset(offset))
    return list(rows)


def names_for(session: Session, scope: Scope, rows: Sequence[JoinRequest]) -> tuple[dict[int, str], dict[int, str]]:
    """The names of the groups and live codes the listed requests point at (of ``scope``'s
    organisation): ``(groups, codes)`` by id."""
    group_ids = {r.group_id for r in rows if r.group_id is not None}
    code_ids = {r.live_code_id for r in rows if r.live_code_id is not None}
    groups: dict[int, str] = {}
    codes: dict[int, str] = {}
    if group_ids:
        found = session.execute(
            select(Group.id, Group.name).where(Group.org_id == scope.org_id, Group.id.in_(group_ids))
        )
        groups = {i: n for i, n in found}
    if code_ids:
        named = session.execute(
            select(LiveCode.id, LiveCode.name).where(LiveCode.org_id == scope.org_id, LiveCode.id.in_(code_ids))
        )
        codes = {i: n for i, n in named}
    return groups, codes


def get_request(session: Session, scope: Scope, request_id: int) -> JoinRequest:
    row = session.scalar(select(JoinRequest).where(JoinRequest.id == request_id, _visible(scope)))
    if row is None:
        raise NotFound(Msg("err.join_request.not_found", id=request_id), field="request_id")
    return row


def decide(
    session: Session,
    scope: Scope,
    request_id: int,
    *,
    approve: bool,
    request: HTTPConnection | None = None,
) -> JoinRequest:
    """A staff member approves or declines a pending request: the action is requested, the
    request's task completed. Deciding it again the same way changes nothing; the other way is a
    Conflict."""
    require_write(scope)
    row = get_request(session, scope, request_id)
    wanted = APPROVED if approve else DECLINED
    if row.status == wanted:
        return row
    if row.status != PENDING:
        raise Conflict(Msg("err.join_request.decided", id=row.id, status=row.status), field="request_id")
    if row.group_id is None:
        raise Conflict(Msg("err.join_request.no_group", id=row.id), field="request_id")
    _perform(session, row, approve=approve, decided_by="staff", staff_id=scope.staff_id or None)
    _close_task(session, scope, row)
    record_by(
        session,
        scope,
        action="join_request.approve" if approve else "join_request.decline",
        target_type="join_request",
        target_id=row.id,
        detail={"group_id": row.group_id, "live_code_id": row.live_code_id},
        request=request,
    )
    return row


def _close_task(session: Session, scope: Scope, row: JoinRequest) -> None:
    """Complete the request's task (the decision is its evidence)."""
    if row.task_id is None:
        return
    status = session.scalar(select(StaffTask.status).where(StaffTask.id == row.task_id))
    if status != TaskStatus.OPEN.value:
        return
    from qunyun.tasks.service import complete

    # A task of the group's owner this staff member does not see stays theirs to close.
    with contextlib.suppress(NotFound):
        complete(session, scope, row.task_id, evidence_text=row.status, confirm_action=False)


# --- personal data ------------------------------------------------------------------------------


def export_for_member(session: Session, org_id: int, member_id: int) -> dict[str, list[dict[str, object]]]:
    """A member's join requests and live-code invitations (privacy export)."""
    from qunyun.models.livecode import LiveCodeInvitation

    requests = session.scalars(
        select(JoinRequest)
        .where(JoinRequest.org_id == org_id, JoinRequest.member_id == member_id)
        .order_by(JoinRequest.id)
    ).all()
    invitations = session.scalars(
        select(LiveCodeInvitation)
        .where(LiveCodeInvitation.org_id == org_id, LiveCodeInvitation.member_id == member_id)
        .order_by(LiveCodeInvitation.id)
    ).all()
    return {
        "join_requests": [
            {
                "group_id": r.group_id,
                "user_id": r.user_id,
                "name": r.name,
                "username": r.username,
                "bio": r.bio,
                "invite_link": r.invite_link,
                "live_code_id": r.live_code_id,
                "requested_at": r.requested_at.isoformat(),
                "status": r.status,
                "decided_by": r.decided_by,
                "decided_at": r.decided_at.isoformat() if r.decided_at else None,
            }
            for r in requests
        ],
        "live_code_invitations": [
            {
                "live_code_id": i.live_code_id,
                "group_id": i.group_id,
                "user_id": i.user_id,
                "invited_at": i.created_at.isoformat(),
                "joined_at": i.joined_at.isoformat() if i.joined_at else None,
            }
            for i in invitations
        ],
    }


def erase_for_member(session: Session, org_id: int, member_id: int, erased_id: str) -> int:
    """Erase what identifies a member in their join requests (name, username, bio; the platform
    id becomes ``erased_id``), the tasks opened for them, and their invitations' user id; the
    decisions stay. Returns how many rows changed."""
    from qunyun.models.livecode import LiveCodeInvitation

    changed = 0
    for row in session.scalars(
        select(JoinRequest).where(JoinRequest.org_id == org_id, JoinRequest.member_id == member_id)
    ):
        names = [n for n in (row.name, row.username, row.user_id) if len(n) >= 2]
        row.name, row.username, row.bio, row.user_id = "", "", "", erased_id[:64]
        if row.task_id is not None:
            task = session.get(StaffTask, row.task_id)
            if task is not None:
                for name in names:
                    task.title = task.title.replace(name, "—")
                values = dict(task.title_values or {})
                values["member"] = "—"
                task.title_values = values
                task.detail = {"join_request_id": row.id, "link": "/join-requests"}
        changed += 1
    for invitation in session.scalars(
        select(LiveCodeInvitation).where(LiveCodeInvitation.org_id == org_id, LiveCodeInvitation.member_id == member_id)
    ):
        invitation.user_id = erased_id[:255]
        changed += 1
    session.flush()
    return changed

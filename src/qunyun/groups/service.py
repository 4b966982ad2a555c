"""Groups as staff see them: scoped listing, creation, changes, members, history, assignments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session, aliased
from starlette.requests import HTTPConnection

from qunyun.audit.service import apply_changes, record_by
from qunyun.auth.scope import Scope, group_id_visible, group_visible, require_group, require_lead, require_write
from qunyun.errors import Conflict, Forbidden, InvalidInput
from qunyun.groups.schemas import AssignmentIn, AssignmentOut, GroupCreate, GroupMemberOut, MembershipOut
from qunyun.locale import Msg
from qunyun.models import (
    Channel,
    Community,
    Event,
    Group,
    Member,
    MembershipSpan,
    Playbook,
    Role,
    Staff,
    StaffGroupAssignment,
)
from qunyun.team.service import assign_group
from qunyun.timeutil import utcnow


def count_rows(session: Session, query: Select[*tuple[Any, ...]]) -> int:
    """How many rows ``query`` returns (without its ORDER BY, LIMIT or OFFSET)."""
    inner = query.order_by(None).limit(None).offset(None).subquery()
    return session.scalar(select(func.count()).select_from(inner)) or 0


def list_groups(
    session: Session,
    scope: Scope,
    *,
    community_id: int | None = None,
    tier: str | None = None,
    region: str | None = None,
    owner_id: int | None = None,
    status: str | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Group], int]:
    """The groups in scope matching the filters, by id; and how many match in all."""
    query = select(Group).where(Group.org_id == scope.org_id, group_visible(scope))
    if community_id is not None:
        query = query.where(Group.community_id == community_id)
    if tier is not None:
        query = query.where(Group.tier == tier)
    if region is not None:
        query = query.where(Group.region == region)
    if owner_id is not None:
        query = query.where(Group.owner_id == owner_id)
    if status is not None:
        query = query.where(Group.status == status)
    if q:
        query = query.where(Group.name.icontains(q, autoescape=True))
    total = count_rows(session, query)
    rows = session.scalars(query.order_by(Group.id).limit(limit).offset(offset)).all()
    return rows, total


def _check_refs(session: Session, scope: Scope, values: dict[str, Any]) -> None:
    """Referenced community, playbook and owner must belong to the caller's organisation."""
    for field, model, missing in (
        ("community_id", Community, Msg("err.group.no_community", id=values.get("community_id"))),
        ("playbook_id", Playbook, Msg("err.group.no_playbook", id=values.get("playbook_id"))),
    ):
        ref = values.get(field)
        if (
            ref is not None
            and session.scalar(select(model.id).where(model.id == ref, model.org_id == scope.org_id)) is None
        ):
            raise InvalidInput(missing, field=field)
    owner = values.get("owner_id")
    if (
        owner is not None
        and session.scalar(
            select(Staff.id).where(Staff.id == owner, Staff.org_id == scope.org_id, Staff.is_active.is_(True))
        )
        is None
    ):
        raise InvalidInput(Msg("err.group.no_active_staff", id=owner), field="owner_id")


def create_group(session: Session, scope: Scope, data: GroupCreate, *, request: HTTPConnection | None = None) -> Group:
    """Create a group. Leads may create any; a group owner creates groups they own."""
    require_write(scope)
    if scope.role not in (Role.LEAD, Role.OWNER):
        raise Forbidden(Msg("err.group.create_forbidden"))
    values = data.model_dump()
    if scope.role is Role.OWNER:
        if values["owner_id"] not in (None, scope.staff_id):
            raise Forbidden(Msg("err.group.owner_creates_own"), field="owner_id")
        values["owner_id"] = scope.staff_id
    _check_refs(session, scope, values)
    exists = session.scalar(
        select(Group.id).where(
            Group.org_id == scope.org_id,
            Group.platform == data.platform,
            Group.external_id == data.external_id,
        )
    )
    if exists is not None:
        raise Conflict(
            Msg("err.group.exists", platform=data.platform, external_id=data.external_id, id=exists),
            field="external_id",
        )
    group = Group(org_id=scope.org_id, member_count=0, created_at=utcnow(), **values)
    session.add(group)
    session.flush()
    record_by(
        session,
        scope,
        action="group.create",
        target_type="group",
        target_id=group.id,
        detail={"platform": group.platform, "external_id": group.external_id, "name": group.name},
        request=request,
    )
    return group


def update_group(
    session: Session,
    scope: Scope,
    group_id: int,
    changes: dict[str, Any],
    *,
    request: HTTPConnection | None = None,
) -> Group:
    """Apply ``changes`` (already validated field values) to a group in scope."""
    group = require_group(session, scope, group_id, write=True)
    if "owner_id" in changes and changes["owner_id"] != group.owner_id:
        require_lead(scope)
    _check_refs(session, scope, changes)
    apply_changes(session, scope, group, changes, action="group.update", target_type="group", request=request)
    return group


def current_members(
    session: Session, scope: Scope, group_id: int, *, limit: int = 50, offset: int = 0
) -> tuple[list[GroupMemberOut], int]:
    """Members now in the group (an open membership span), longest-standing first."""
    group = require_group(session, scope, group_id)
    query = (
        select(Member, MembershipSpan.joined_at)
        .join(MembershipSpan, MembershipSpan.member_id == Member.id)
        .where(
            MembershipSpan.org_id == scope.org_id,
            MembershipSpan.group_id == group.id,
            MembershipSpan.left_at.is_(None),
        )
    )
    total = count_rows(session, query)
    rows = session.execute(query.order_by(MembershipSpan.joined_at, Member.id).limit(limit).offset(offset))
    items = [
        GroupMemberOut(
            id=member.id,
            platform=member.platform,
            external_id=member.external_id,
            display_name=member.display_name,
            joined_at=joined_at,
        )
        for member, joined_at in rows
    ]
    return items, total


def list_memberships(
    session: Session,
    scope: Scope,
    *,
    group_id: int | None = None,
    member_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[MembershipOut], int]:
    """Membership spans (current and past) in the scope's groups, with the join event's scene,
    channel and inviter and the leave event's reason. The caller checks group/member access."""
    join_event = aliased(Event)
    leave_event = aliased(Event)
    query = (
        select(
            MembershipSpan,
            Group.platform,
            Group.external_id,
            Member.platform,
            Member.external_id,
            Member.display_name,
            join_event.scene,
            join_event.channel_id,
            join_event.inviter_id,
            Channel.code,
            leave_event.reason,
        )
        .join(Group, Group.id == MembershipSpan.group_id)
        .join(Member, Member.id == MembershipSpan.member_id)
        .outerjoin(join_event, join_event.id == MembershipSpan.join_event_id)
        .outerjoin(Channel, Channel.id == join_event.channel_id)
        .outerjoin(leave_event, leave_event.id == MembershipSpan.leave_event_id)
        .where(MembershipSpan.org_id == scope.org_id)
    )
    if not scope.whole_org:
        query = query.where(group_id_visible(MembershipSpan.group_id, scope))
    if group_id is not None:
        query = query.where(MembershipSpan.group_id == group_id)
    if member_id is not None:
        query = query.where(MembershipSpan.member_id == member_id)
    total = count_rows(session, query)
    rows = session.execute(query.order_by(MembershipSpan.joined_at, MembershipSpan.id).limit(limit).offset(offset))
    items = [
        MembershipOut(
            id=span.id,
            group_id=span.group_id,
            group_platform=g_platform,
            group_external_id=g_external,
            member_id=span.member_id,
            member_platform=m_platform,
            member_external_id=m_external,
            member_display_name=m_name,
            joined_at=span.joined_at,
            left_at=span.left_at,
            scene=scene,
            channel_id=channel_id,
            channel_code=channel_code,
            inviter_id=inviter_id,
            leave_reason=reason,
        )
        for (
            span,
            g_platform,
            g_external,
            m_platform,
            m_external,
            m_name,
            scene,
            channel_id,
            inviter_id,
            channel_code,
            reason,
        ) in rows
    ]
    return items, total


def list_assignments(session: Session, scope: Scope, group_id: int) -> list[AssignmentOut]:
    """Staff assigned to a group in scope."""
    group = require_group(session, scope, group_id)
    rows = session.execute(
        select(StaffGroupAssignment, Staff)
        .join(Staff, Staff.id == StaffGroupAssignment.staff_id)
        .where(StaffGroupAssignment.group_id == group.id)
        .order_by(Staff.id)
    )
    return [
        AssignmentOut(
            staff_id=staff.id,
            username=staff.username,
            display_name=staff.display_name,
            role=assignment.role,
            created_at=assignment.created_at,
        )
        for assignment, staff in rows
    ]


def set_assignments(
    session: Session,
    scope: Scope,
    group_id: int,
    assignments: list[AssignmentIn],
    *,
    request: HTTPConnection | None = None,
) -> list[AssignmentOut]:
    """Replace the staff assigned to a group (lead only)."""
    require_lead(scope)
    group = require_group(session, scope, group_id, write=True)
    wanted: dict[int, str] = {}
    for index, item in enumerate(assignments):
        if item.staff_id in wanted:
            raise InvalidInput(Msg("err.group.staff_twice", id=item.staff_id), field=f"assignments.{index}.staff_id")
        wanted[item.staff_id] = item.role
    if wanted:
        known = set(session.scalars(select(Staff.id).where(Staff.id.in_(wanted), Staff.org_id == scope.org_id)))
        for index, item in enumerate(assignments):
            if item.staff_id not in known:
                raise InvalidInput(
                    Msg("err.group.no_staff", id=item.staff_id),
                    field=f"assignments.{index}.staff_id",
                )
    before = {
        staff_id: role
        for staff_id, role in session.execute(
            select(StaffGroupAssignment.staff_id, StaffGroupAssignment.role).where(
                StaffGroupAssignment.group_id == group.id
            )
        )
    }
    removed = sorted(set(before) - set(wanted))
    if removed:
        session.execute(
            delete(StaffGroupAssignment).where(
                StaffGroupAssignment.group_id == group.id, StaffGroupAssignment.staff_id.in_(removed)
            )
        )
    for staff_id, role in wanted.items():
        assign_group(session, staff_id, group.id, role)
    session.flush()
    record_by(
        session,
        scope,
        action="group.assignments.set",
        target_type="group",
        target_id=group.id,
        detail={"before": {str(k): v for k, v in before.items()}, "after": {str(k): v for k, v in wanted.items()}},
        request=request,
    )
    return list_assignments(session, scope, group.id)

"""Groups as staff see them: scoped listing, creation, changes, members, history, assignments."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, String, case, cast, delete, func, null, select
from sqlalchemy.orm import Session, aliased
from starlette.requests import HTTPConnection

from qunyun.audit.service import apply_changes, record_by
from qunyun.auth.scope import Scope, group_id_visible, group_visible, require_group, require_lead, require_write
from qunyun.db.collation import by_pinyin
from qunyun.errors import Conflict, Forbidden, InvalidInput
from qunyun.groups.schemas import AssignmentIn, AssignmentOut, GroupCreate, GroupMemberOut, MembershipOut
from qunyun.locale import Msg
from qunyun.models import (
    Channel,
    Community,
    Event,
    EventKind,
    Group,
    GroupDaily,
    Member,
    MembershipSpan,
    MessageText,
    MsgType,
    Playbook,
    Role,
    Staff,
    StaffGroupAssignment,
)
from qunyun.team.service import assign_group
from qunyun.timeutil import day_key, utcnow


def count_rows(session: Session, query: Select[*tuple[Any, ...]]) -> int:
    """How many rows ``query`` returns (without its ORDER BY, LIMIT or OFFSET)."""
    inner = query.order_by(None).limit(None).offset(None).subquery()
    return session.scalar(select(func.count()).select_from(inner)) or 0


def ordered(column: Any, descending: bool) -> Any:
    """``column`` in a table's order: blanks (no community, never left…) last either way, on
    SQLite and PostgreSQL alike."""
    return (column.desc() if descending else column.asc()).nulls_last()


def pinyin(session: Session, column: Any) -> Any:
    """``column`` (a name, or an expression of names) collated in pinyin order on this database."""
    return by_pinyin(session, column)


def check_sort(sort: str, allowed: Collection[str]) -> None:
    """InvalidInput naming ``sort`` unless it is one of ``allowed``."""
    if sort not in allowed:
        raise InvalidInput(Msg("scope.bad_sort", value=sort[:40], allowed=", ".join(allowed)), field="sort")


class GroupRow(NamedTuple):
    """A row of the group list: the group, its community's and owner's names, and its actives on
    the day asked for (None without a day)."""

    group: Group
    community: str | None
    owner: str | None
    actives: int | None


# The group list's orders (sort=): "id" the API's; names in pinyin order.
GROUP_SORTS: dict[str, Any] = {
    "id": Group.id,
    "name": Group.name,
    "community": Community.name,
    "region": Group.region,
    "owner": Staff.display_name,
    "members": Group.member_count,
    "fill": Group.member_count * 1.0 / func.nullif(Group.capacity, 0),
    "actives": func.coalesce(GroupDaily.actives, 0),
    "created": Group.created_at,
}
NAME_SORTS = ("name", "community", "region", "owner")


@dataclass(frozen=True)
class GroupFilter:
    """What the group list is narrowed to, on top of the scope."""

    community_id: int | None = None
    tier: str | None = None
    region: str | None = None
    owner_id: int | None = None
    status: str | None = None
    q: str | None = None  # part of the group's name


def _groups_query(scope: Scope, filters: GroupFilter, actives_on: date | None) -> Select[Any]:
    actives: Any = GroupDaily.actives if actives_on is not None else null()
    query = (
        select(Group, Community.name, Staff.display_name, actives)
        .outerjoin(Community, Community.id == Group.community_id)
        .outerjoin(Staff, Staff.id == Group.owner_id)
        .where(Group.org_id == scope.org_id, group_visible(scope))
    )
    if actives_on is not None:
        query = query.outerjoin(GroupDaily, (GroupDaily.group_id == Group.id) & (GroupDaily.day == day_key(actives_on)))
    if filters.community_id is not None:
        query = query.where(Group.community_id == filters.community_id)
    if filters.tier is not None:
        query = query.where(Group.tier == filters.tier)
    if filters.region is not None:
        query = query.where(Group.region == filters.region)
    if filters.owner_id is not None:
        query = query.where(Group.owner_id == filters.owner_id)
    if filters.status is not None:
        query = query.where(Group.status == filters.status)
    if filters.q:
        query = query.where(Group.name.icontains(filters.q, autoescape=True))
    return query


def list_groups(
    session: Session,
    scope: Scope,
    filters: GroupFilter | None = None,
    *,
    sort: str = "id",
    descending: bool = False,
    actives_on: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[GroupRow], int]:
    """The groups in scope matching ``filters``, in the order ``sort`` (a key of GROUP_SORTS;
    ties by id), with their actives on ``actives_on``; and how many match in all."""
    rows = group_rows(
        session, scope, filters, sort=sort, descending=descending, actives_on=actives_on, limit=limit, offset=offset
    )
    return rows, count_groups(session, scope, filters)


def count_groups(session: Session, scope: Scope, filters: GroupFilter | None = None) -> int:
    """How many groups in scope match ``filters`` (a page of them: ``group_rows``)."""
    return count_rows(session, _groups_query(scope, filters or GroupFilter(), None))


def group_rows(
    session: Session,
    scope: Scope,
    filters: GroupFilter | None = None,
    *,
    sort: str = "id",
    descending: bool = False,
    actives_on: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[GroupRow]:
    """The rows of ``list_groups`` without the count (when the caller has counted already)."""
    check_sort(sort, GROUP_SORTS)
    query = _groups_query(scope, filters or GroupFilter(), actives_on)
    if sort == "id":
        order = [Group.id.desc() if descending else Group.id]
    else:
        column = GROUP_SORTS[sort] if sort != "actives" or actives_on is not None else null()
        if sort in NAME_SORTS:
            column = pinyin(session, column)
        order = [ordered(column, descending), Group.id]
    return [GroupRow(*row) for row in session.execute(query.order_by(*order).limit(limit).offset(offset))]


def has_groups(session: Session, scope: Scope) -> bool:
    """Whether the scope sees any group at all ("no matches" differs from "no groups yet")."""
    return (
        session.scalar(select(Group.id).where(Group.org_id == scope.org_id, group_visible(scope)).limit(1)) is not None
    )


def group_filter_options(session: Session, scope: Scope) -> dict[str, list[Any]]:
    """The values the group list's filters offer, from the groups in scope: communities and
    owners as (id, name), regions and tiers; names in pinyin order."""
    visible = select(Group.id).where(group_visible(scope))

    def distinct(column: Any) -> list[str]:
        # The collated expression is selected too: PostgreSQL orders a DISTINCT by selected values only.
        collated = pinyin(session, column)
        return [
            v for v in session.scalars(select(collated).where(Group.id.in_(visible)).distinct().order_by(collated)) if v
        ]

    return {
        "communities": list(
            session.execute(
                select(Community.id, Community.name)
                .where(
                    Community.org_id == scope.org_id,
                    Community.id.in_(select(Group.community_id).where(Group.id.in_(visible))),
                )
                .order_by(pinyin(session, Community.name))
            ).all()
        ),
        "regions": distinct(Group.region),
        "tiers": distinct(Group.tier),
        "owners": list(
            session.execute(
                select(Staff.id, Staff.display_name)
                .where(Staff.org_id == scope.org_id, Staff.id.in_(select(Group.owner_id).where(Group.id.in_(visible))))
                .order_by(pinyin(session, Staff.display_name))
            ).all()
        ),
    }


def group_choices(session: Session, scope: Scope, *, pinyin_order: bool = True) -> list[tuple[int, str]]:
    """(id, name) of every group in scope, for a filter's choices: names in pinyin order, or in
    code-point order without ``pinyin_order``."""
    order = pinyin(session, Group.name) if pinyin_order else Group.name
    return [
        (int(i), n)
        for i, n in session.execute(select(Group.id, Group.name).where(group_visible(scope)).order_by(order))
    ]


def group_names(session: Session, scope: Scope, group_ids: Collection[int] | None = None) -> dict[int, str]:
    """Names of the groups in scope by id (of ``group_ids`` only, when given)."""
    query = select(Group.id, Group.name).where(group_visible(scope))
    if group_ids is not None:
        if not group_ids:
            return {}
        query = query.where(Group.id.in_(list(group_ids)))
    return {int(i): n for i, n in session.execute(query)}


def group_names_by_external_id(session: Session, scope: Scope) -> dict[str, str]:
    """Names of the groups in scope by their external id (the ``group`` of stats rows)."""
    return {e: n for e, n in session.execute(select(Group.external_id, Group.name).where(group_visible(scope)))}


def get_group(session: Session, scope: Scope, group_id: int) -> Group:
    """The group ``group_id`` if the scope may see it, else NotFound."""
    return require_group(session, scope, group_id)


def group_people(session: Session, scope: Scope, group: Group) -> tuple[Community | None, Staff | None]:
    """The community and the owner of a group in scope (the caller has checked the group)."""
    community = (
        session.scalar(select(Community).where(Community.id == group.community_id, Community.org_id == scope.org_id))
        if group.community_id
        else None
    )
    owner = (
        session.scalar(select(Staff).where(Staff.id == group.owner_id, Staff.org_id == scope.org_id))
        if group.owner_id
        else None
    )
    return community, owner


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
    from qunyun.sop.runs import apply_attached

    apply_attached(session, group.id)  # the SOP plans of its playbook or community
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


class GroupMemberRow(NamedTuple):
    """A member of a group's member list with their (latest) span there."""

    member: Member
    joined_at: datetime
    channel: str | None
    scene: str | None
    left_at: datetime | None


# A group's member list: who is in it now, who left, or both (each member's latest span).
MEMBER_STATUSES = ("current", "left", "all")
GROUP_MEMBER_SORTS = ("name", "joined", "left")


def _span_filter(scope: Scope, group_id: int, status: str) -> list[ColumnElement[bool]]:
    spans: list[ColumnElement[bool]] = [MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id == group_id]
    if status == "current":
        spans.append(MembershipSpan.left_at.is_(None))
    else:
        # One row per member: their latest span here (someone who left and came back is "in").
        latest = (
            select(func.max(MembershipSpan.id))
            .where(MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id == group_id)
            .group_by(MembershipSpan.member_id)
        )
        spans.append(MembershipSpan.id.in_(latest))
        if status == "left":
            spans.append(MembershipSpan.left_at.is_not(None))
    return spans


def _group_members_query(
    session: Session, scope: Scope, group_id: int, status: str, q: str | None
) -> list[ColumnElement[bool]]:
    """The conditions on (MembershipSpan, Member) of a group's member list (NotFound for a group
    out of scope)."""
    group = require_group(session, scope, group_id)
    if status not in MEMBER_STATUSES:
        raise InvalidInput(Msg("scope.bad_member_status", value=status[:40]), field="status")
    matching = _span_filter(scope, group.id, status)
    if q:
        matching.append(Member.display_name.icontains(q, autoescape=True) | (Member.external_id == q))
    return matching


def group_members(
    session: Session,
    scope: Scope,
    group_id: int,
    *,
    status: str = "current",
    q: str | None = None,
    sort: str = "joined",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[GroupMemberRow], int]:
    """Members of a group in scope (else NotFound): ``status`` current (an open span), left or
    all (each member's latest span), whose name or external id matches ``q``, in the order
    ``sort`` (GROUP_MEMBER_SORTS; ties by member id) with the channel and scene they joined by;
    and how many match in all."""
    rows = group_member_rows(
        session, scope, group_id, status=status, q=q, sort=sort, descending=descending, limit=limit, offset=offset
    )
    return rows, count_group_members(session, scope, group_id, status=status, q=q)


def count_group_members(
    session: Session, scope: Scope, group_id: int, *, status: str = "current", q: str | None = None
) -> int:
    """How many rows ``group_members`` has in all."""
    matching = _group_members_query(session, scope, group_id, status, q)
    # Counted without the joins that only decorate the rows.
    return count_rows(
        session, select(MembershipSpan.id).join(Member, Member.id == MembershipSpan.member_id).where(*matching)
    )


def group_member_rows(
    session: Session,
    scope: Scope,
    group_id: int,
    *,
    status: str = "current",
    q: str | None = None,
    sort: str = "joined",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[GroupMemberRow]:
    """The rows of ``group_members`` without the count (when the caller has counted already)."""
    check_sort(sort, GROUP_MEMBER_SORTS)
    matching = _group_members_query(session, scope, group_id, status, q)
    join_event = aliased(Event)
    query = (
        select(Member, MembershipSpan.joined_at, Channel.name, join_event.scene, MembershipSpan.left_at)
        .join(MembershipSpan, MembershipSpan.member_id == Member.id)
        .outerjoin(join_event, join_event.id == MembershipSpan.join_event_id)
        .outerjoin(Channel, Channel.id == join_event.channel_id)
        .where(*matching)
    )
    column: Any = {
        "name": pinyin(session, func.coalesce(func.nullif(Member.display_name, ""), Member.external_id)),
        "joined": MembershipSpan.joined_at,
        "left": MembershipSpan.left_at,
    }[sort]
    rows = session.execute(query.order_by(ordered(column, descending), Member.id).limit(limit).offset(offset))
    return [GroupMemberRow(*row) for row in rows]


def group_has_members(session: Session, scope: Scope, group_id: int, status: str = "current") -> bool:
    """Whether a group in scope has anyone in its member list ``status`` (before any search)."""
    group = require_group(session, scope, group_id)
    spans = _span_filter(scope, group.id, status if status in MEMBER_STATUSES else "current")
    query = select(MembershipSpan.id).join(Member, Member.id == MembershipSpan.member_id).where(*spans).limit(1)
    return session.scalar(query) is not None


def current_members(
    session: Session, scope: Scope, group_id: int, *, limit: int = 50, offset: int = 0
) -> tuple[list[GroupMemberOut], int]:
    """Members now in the group (an open membership span), longest-standing first."""
    rows, total = group_members(session, scope, group_id, status="current", limit=limit, offset=offset)
    items = [
        GroupMemberOut(
            id=row.member.id,
            platform=row.member.platform,
            external_id=row.member.external_id,
            display_name=row.member.display_name,
            joined_at=row.joined_at,
        )
        for row in rows
    ]
    return items, total


# The timeline walks the event log backwards from the newest id; each page looks at most this
# many ids so a quiet group never turns into a scan of the whole log (there is deliberately no
# (group, ts) index on events, see docs/performance.md).
TIMELINE_SIZE = 30
TIMELINE_WINDOW = 200_000
_TIMELINE_KINDS = {
    int(EventKind.MEMBER_JOINED): "join",
    int(EventKind.MEMBER_LEFT): "leave",
    int(EventKind.MESSAGE_POSTED): "message",
}


def group_timeline(session: Session, scope: Scope, group_id: int, before: int | None) -> dict[str, Any]:
    """A group's latest joins, leaves and messages (at most TIMELINE_SIZE), newest first, from
    event id ``before`` down; ``older``: where the next page starts (None at the start of the log)."""
    group = require_group(session, scope, group_id)
    # The newest id of the whole log (one B-tree lookup); the org filter is in the query below.
    newest = (session.scalar(select(func.max(Event.id))) or 0) + 1
    # A ?before= past the newest event (a hand-made URL) starts at the newest.
    top = min(before, newest) if before is not None else newest
    msg_type = case({int(t): t.name.lower() for t in MsgType}, value=Event.msg_type, else_=cast(None, String))
    rows = session.execute(
        select(
            Event.id,
            Event.kind,
            Event.ts,
            Event.scene,
            Event.reason,
            msg_type,
            Member.id,
            Member.display_name,
            Channel.name,
            MessageText.text,
        )
        .outerjoin(Member, Member.id == Event.member_id)
        .outerjoin(Channel, Channel.id == Event.channel_id)
        .outerjoin(MessageText, MessageText.event_id == Event.id)
        .where(
            # "+ 0": SQLite would otherwise walk the (org_id, external_id) index over the whole
            # organisation and sort; the id window is the range to walk, newest first.
            Event.org_id + 0 == scope.org_id,
            Event.group_id == group.id,
            Event.kind.in_(list(_TIMELINE_KINDS)),
            Event.id < top,
            Event.id >= top - TIMELINE_WINDOW,
        )
        .order_by(Event.id.desc())
        .limit(TIMELINE_SIZE)
    ).all()
    items = [
        {
            "id": r[0],
            "kind": _TIMELINE_KINDS[r[1]],
            "at": r[2],
            "scene": r[3],
            "reason": r[4],
            "msg_type": r[5],
            "member_id": r[6],
            "member": r[7],
            "channel": r[8],
            "text": (r[9] or "")[:120],
        }
        for r in rows
    ]
    # Older entries: from the last one shown, or from the bottom of an empty window.
    older = (
        items[-1]["id"] if len(items) == TIMELINE_SIZE else (top - TIMELINE_WINDOW if top > TIMELINE_WINDOW else None)
    )
    return {"items": items, "older": older}


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

"""Members and tags within the staff member's scope."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.acquisition.service import channel_choices
from qunyun.audit.service import apply_changes, record_by
from qunyun.auth.scope import (
    Scope,
    group_id_visible,
    member_visible,
    require_group,
    require_member,
    require_write,
)
from qunyun.crm.schemas import MemberOut, TagCreate, TaggingOut, TagRef
from qunyun.errors import Conflict, NotFound
from qunyun.groups.service import check_sort, count_rows, group_choices, ordered, pinyin
from qunyun.locale import Msg
from qunyun.models import Event, EventKind, Member, MembershipSpan, Order, Refund, Tag, Tagging
from qunyun.timeutil import utcnow


def tags_of(session: Session, member_ids: Sequence[int]) -> dict[int, list[TagRef]]:
    tags: dict[int, list[TagRef]] = defaultdict(list)
    if not member_ids:
        return tags
    rows = session.execute(
        select(Tagging.member_id, Tag.id, Tag.name, Tag.category)
        .join(Tag, Tag.id == Tagging.tag_id)
        .where(Tagging.member_id.in_(member_ids))
        .order_by(Tag.name)
    )
    for member_id, tag_id, name, category in rows:
        tags[member_id].append(TagRef(id=tag_id, name=name, category=category))
    return tags


def member_out(member: Member, tags: list[TagRef]) -> MemberOut:
    return MemberOut(
        id=member.id,
        platform=member.platform,
        external_id=member.external_id,
        display_name=member.display_name,
        gender=member.gender,
        birth_year=member.birth_year,
        occupation=member.occupation,
        region=member.region,
        interests=list(member.interests or []),
        first_seen_at=member.first_seen_at,
        erased=member.erased_at is not None,
        tags=tags,
    )


def require_tag(session: Session, scope: Scope, tag_id: int) -> Tag:
    tag = session.scalar(select(Tag).where(Tag.id == tag_id, Tag.org_id == scope.org_id))
    if tag is None:
        raise NotFound(Msg("err.crm.no_tag", id=tag_id), field="tag_id")
    return tag


@dataclass(frozen=True)
class MemberFilter:
    """What the member list is narrowed to, on top of the scope.

    ``strict`` (the API): a group or tag the scope cannot see is NotFound. Otherwise (the
    console's filter form) it matches nobody, revealing nothing either way.
    """

    group_id: int | None = None
    current_only: bool = False  # with group_id: only open spans (in the group now)
    tag_id: int | None = None
    channel_id: int | None = None  # joined (any group) through this channel
    gender: str | None = None
    region: str | None = None
    q: str | None = None  # part of the display name, or the exact external id
    include_erased: bool = True
    strict: bool = True


# The member list's orders (sort=): "id" the API's; names and regions in pinyin order, age
# youngest first.
MEMBER_SORTS: dict[str, Any] = {
    "id": Member.id,
    "name": func.coalesce(func.nullif(Member.display_name, ""), Member.external_id),
    "region": func.nullif(Member.region, ""),
    "age": -Member.birth_year,
    "first_seen": Member.first_seen_at,
}
_PINYIN_SORTS = ("name", "region")


def _in_scope(scope: Scope, include_erased: bool) -> Select[Any]:
    query = select(Member).where(Member.org_id == scope.org_id, member_visible(scope))
    return query if include_erased else query.where(Member.erased_at.is_(None))


def _filtered(session: Session, scope: Scope, filters: MemberFilter) -> Select[Any]:
    query = _in_scope(scope, filters.include_erased)
    if filters.group_id is not None:
        spans = select(MembershipSpan.member_id).where(MembershipSpan.org_id == scope.org_id)
        if filters.strict:
            spans = spans.where(MembershipSpan.group_id == require_group(session, scope, filters.group_id).id)
        else:
            spans = spans.where(
                MembershipSpan.group_id == filters.group_id, group_id_visible(MembershipSpan.group_id, scope)
            )
        if filters.current_only:
            spans = spans.where(MembershipSpan.left_at.is_(None))
        query = query.where(Member.id.in_(spans))
    if filters.tag_id is not None:
        tag_id = require_tag(session, scope, filters.tag_id).id if filters.strict else filters.tag_id
        query = query.where(Member.id.in_(select(Tagging.member_id).where(Tagging.tag_id == tag_id)))
    if filters.channel_id is not None:
        joined = select(Event.member_id).where(
            Event.org_id == scope.org_id,
            Event.kind == int(EventKind.MEMBER_JOINED),
            Event.channel_id == filters.channel_id,
        )
        query = query.where(Member.id.in_(joined))
    if filters.gender:
        query = query.where(Member.gender == filters.gender)
    if filters.region:
        query = query.where(Member.region == filters.region)
    if filters.q:
        query = query.where(
            or_(Member.display_name.icontains(filters.q, autoescape=True), Member.external_id == filters.q)
        )
    return query


def list_members(
    session: Session,
    scope: Scope,
    filters: MemberFilter | None = None,
    *,
    sort: str = "id",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[MemberOut], int]:
    """Members in scope matching ``filters``, in the order ``sort`` (a key of MEMBER_SORTS; ties
    newest first), with their tags; and how many match in all."""
    check_sort(sort, MEMBER_SORTS)
    query = _filtered(session, scope, filters or MemberFilter())
    return _member_rows(session, query, sort, descending, limit, offset), count_rows(session, query)


def count_members(session: Session, scope: Scope, filters: MemberFilter | None = None) -> int:
    """How many members in scope match ``filters`` (a page of them: ``member_rows``)."""
    return count_rows(session, _filtered(session, scope, filters or MemberFilter()))


def member_rows(
    session: Session,
    scope: Scope,
    filters: MemberFilter | None = None,
    *,
    sort: str = "id",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[MemberOut]:
    """The rows of ``list_members`` without the count (when the caller has counted already)."""
    check_sort(sort, MEMBER_SORTS)
    return _member_rows(session, _filtered(session, scope, filters or MemberFilter()), sort, descending, limit, offset)


def _member_rows(
    session: Session, query: Select[Any], sort: str, descending: bool, limit: int, offset: int
) -> list[MemberOut]:
    if sort == "id":
        order = [Member.id.desc() if descending else Member.id]
    else:
        column = MEMBER_SORTS[sort]
        if sort in _PINYIN_SORTS:
            column = pinyin(session, column)
        # Ties newest first whichever the direction, as the console has always listed them.
        order = [ordered(column, descending), Member.id.desc()]
    members = session.scalars(query.order_by(*order).limit(limit).offset(offset)).all()
    tags = tags_of(session, [m.id for m in members])
    return [member_out(m, tags.get(m.id, [])) for m in members]


def has_members(session: Session, scope: Scope, *, include_erased: bool = True) -> bool:
    """Whether the scope sees any member at all ("no matches" differs from "no members yet")."""
    return session.scalar(_in_scope(scope, include_erased).with_only_columns(Member.id).limit(1)) is not None


def member_filter_options(session: Session, scope: Scope) -> dict[str, list[Any]]:
    """The values the member list's filters offer: groups in scope, the organisation's tags and
    channels as (id, name), and the home regions of the members in scope (pinyin order)."""
    region = pinyin(session, Member.region)  # selected as ordered: PostgreSQL's DISTINCT needs that
    return {
        "groups": group_choices(session, scope),
        "tags": list(
            session.execute(
                select(Tag.id, Tag.name).where(Tag.org_id == scope.org_id).order_by(pinyin(session, Tag.name))
            ).all()
        ),
        "channels": channel_choices(session, scope),
        "regions": list(
            session.scalars(
                select(region)
                .where(Member.org_id == scope.org_id, member_visible(scope), Member.region != "")
                .distinct()
                .order_by(region)
            )
        ),
    }


def groups_now(session: Session, scope: Scope, member_ids: Sequence[int]) -> dict[int, int]:
    """How many groups in scope each of ``member_ids`` is in now."""
    if not member_ids:
        return {}
    rows = session.execute(
        select(MembershipSpan.member_id, func.count())
        .where(
            MembershipSpan.member_id.in_(list(member_ids)),
            MembershipSpan.left_at.is_(None),
            group_id_visible(MembershipSpan.group_id, scope),
        )
        .group_by(MembershipSpan.member_id)
    )
    return {int(m): int(n) for m, n in rows}


def member_orders(session: Session, scope: Scope, member_id: int, limit: int) -> tuple[list[Order], dict[str, int]]:
    """A member's (in scope, else NotFound) latest paid orders, newest first — scoped staff see
    the orders placed in their groups — and the refunded fen per order id."""
    member = require_member(session, scope, member_id)
    query = select(Order).where(Order.org_id == scope.org_id, Order.member_id == member.id)
    if not scope.whole_org:
        query = query.where(group_id_visible(Order.group_id, scope))
    orders = list(session.scalars(query.order_by(Order.paid_at.desc()).limit(limit)))
    if not orders:
        return orders, {}
    refunded = session.execute(
        select(Refund.order_ref, func.sum(Refund.amount_fen))
        .where(Refund.org_id == scope.org_id, Refund.order_ref.in_([o.external_id for o in orders]))
        .group_by(Refund.order_ref)
    )
    return orders, {ref: int(fen or 0) for ref, fen in refunded}


def get_member(session: Session, scope: Scope, member_id: int) -> MemberOut:
    member = require_member(session, scope, member_id)
    return member_out(member, tags_of(session, [member.id]).get(member.id, []))


def update_member(
    session: Session,
    scope: Scope,
    member_id: int,
    changes: dict[str, Any],
    *,
    request: HTTPConnection | None = None,
) -> MemberOut:
    """Change persona fields. The audit entry names the fields, not their (personal) values."""
    member = require_member(session, scope, member_id, write=True)
    if member.erased_at is not None:
        raise Conflict(Msg("err.crm.member_erased"))
    apply_changes(
        session, scope, member, changes, action="member.update", target_type="member", request=request, personal=True
    )
    return get_member(session, scope, member.id)


def list_tags(
    session: Session, scope: Scope, *, category: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[Sequence[Tag], int]:
    """The organisation's tags (tags are shared by every role of the organisation)."""
    query = select(Tag).where(Tag.org_id == scope.org_id)
    if category is not None:
        query = query.where(Tag.category == category)
    total = count_rows(session, query)
    return session.scalars(query.order_by(Tag.name, Tag.id).limit(limit).offset(offset)).all(), total


def create_tag(session: Session, scope: Scope, data: TagCreate, *, request: HTTPConnection | None = None) -> Tag:
    """Add a tag to the organisation's vocabulary; names are unique per organisation."""
    require_write(scope)
    if session.scalar(select(Tag.id).where(Tag.org_id == scope.org_id, Tag.name == data.name)) is not None:
        raise Conflict(Msg("err.crm.tag_exists", name=data.name), field="name")
    tag = Tag(org_id=scope.org_id, name=data.name, category=data.category, created_at=utcnow())
    session.add(tag)
    session.flush()
    record_by(
        session,
        scope,
        action="tag.create",
        target_type="tag",
        target_id=tag.id,
        detail={"name": tag.name, "category": tag.category},
        request=request,
    )
    return tag


def tag_member(
    session: Session, scope: Scope, member_id: int, tag_id: int, *, request: HTTPConnection | None = None
) -> TaggingOut:
    """Put a tag on a member in scope (idempotent: tagging twice keeps the first record)."""
    member = require_member(session, scope, member_id, write=True)
    tag = require_tag(session, scope, tag_id)
    tagging = session.get(Tagging, (member.id, tag.id))
    if tagging is None:
        tagging = Tagging(
            member_id=member.id, tag_id=tag.id, source="manual", created_by_id=scope.staff_id, created_at=utcnow()
        )
        session.add(tagging)
        session.flush()
        record_by(
            session,
            scope,
            action="member.tag",
            target_type="member",
            target_id=member.id,
            detail={"tag_id": tag.id},
            request=request,
        )
    return TaggingOut(
        member_id=tagging.member_id,
        tag_id=tagging.tag_id,
        source=tagging.source,
        created_by_id=tagging.created_by_id,
        created_at=tagging.created_at,
    )


def untag_member(
    session: Session, scope: Scope, member_id: int, tag_id: int, *, request: HTTPConnection | None = None
) -> None:
    """Remove a tag from a member in scope (idempotent)."""
    member = require_member(session, scope, member_id, write=True)
    tag = require_tag(session, scope, tag_id)
    result = session.execute(delete(Tagging).where(Tagging.member_id == member.id, Tagging.tag_id == tag.id))
    if getattr(result, "rowcount", 0):
        record_by(
            session,
            scope,
            action="member.untag",
            target_type="member",
            target_id=member.id,
            detail={"tag_id": tag.id},
            request=request,
        )

"""Members and tags within the staff member's scope."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import apply_changes, record_by
from qunyun.auth.scope import Scope, member_visible, require_group, require_member, require_write
from qunyun.crm.schemas import MemberOut, TagCreate, TaggingOut, TagRef
from qunyun.errors import Conflict, NotFound
from qunyun.groups.service import count_rows
from qunyun.locale import Msg
from qunyun.models import Member, MembershipSpan, Tag, Tagging
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


def list_members(
    session: Session,
    scope: Scope,
    *,
    group_id: int | None = None,
    current_only: bool = False,
    tag_id: int | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[MemberOut], int]:
    """Members in scope, optionally those with a span in ``group_id`` (open spans only if
    ``current_only``), with tag ``tag_id``, or whose name or external id contains ``q``."""
    query = select(Member).where(Member.org_id == scope.org_id, member_visible(scope))
    if group_id is not None:
        group = require_group(session, scope, group_id)
        spans = select(MembershipSpan.member_id).where(
            MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id == group.id
        )
        if current_only:
            spans = spans.where(MembershipSpan.left_at.is_(None))
        query = query.where(Member.id.in_(spans))
    if tag_id is not None:
        tag = require_tag(session, scope, tag_id)
        query = query.where(Member.id.in_(select(Tagging.member_id).where(Tagging.tag_id == tag.id)))
    if q:
        query = query.where(or_(Member.display_name.icontains(q, autoescape=True), Member.external_id == q))
    total = count_rows(session, query)
    members = session.scalars(query.order_by(Member.id).limit(limit).offset(offset)).all()
    tags = tags_of(session, [m.id for m in members])
    return [member_out(m, tags.get(m.id, [])) for m in members], total


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

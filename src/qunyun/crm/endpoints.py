"""REST routes for members and tags: /api/v1/members, /api/v1/tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from qunyun.api.pagination import Id, Page, Paging
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.auth.scope import require_member
from qunyun.crm import service
from qunyun.crm.schemas import MemberOut, MemberUpdate, TagCreate, TaggingOut, TagOut
from qunyun.groups.schemas import MembershipOut
from qunyun.groups.service import list_memberships

members = APIRouter(prefix="/members", tags=["members"])
tags = APIRouter(prefix="/tags", tags=["tags"])

MemberId = Annotated[Id, Path(description="Internal member id")]
TagId = Annotated[Id, Path(description="Tag id")]


@members.get("", response_model=Page[MemberOut], summary="List members in your scope")
def list_members(
    db: DbSession,
    scope: CurrentScope,
    paging: Paging,
    group: Annotated[Id | None, Query(description="Members with a membership in this group id")] = None,
    current: Annotated[bool, Query(description="With group: only members in the group now")] = False,
    tag: Annotated[Id | None, Query(description="Members with this tag id")] = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Part of the display name, or the exact external id")
    ] = None,
) -> Page[MemberOut]:
    filters = service.MemberFilter(group_id=group, current_only=current, tag_id=tag, q=q)
    items, total = service.list_members(db, scope, filters, limit=paging.limit, offset=paging.offset)
    return Page[MemberOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@members.get("/{member_id}", response_model=MemberOut, summary="One member with persona and tags")
def get_member(member_id: MemberId, db: DbSession, scope: CurrentScope) -> MemberOut:
    return service.get_member(db, scope, member_id)


@members.patch("/{member_id}", response_model=MemberOut, summary="Change persona fields")
def update_member(
    member_id: MemberId, body: MemberUpdate, db: DbSession, scope: CurrentScope, request: Request
) -> MemberOut:
    changes = body.model_dump(exclude_unset=True)
    return service.update_member(db, scope, member_id, changes, request=request)


@members.get(
    "/{member_id}/memberships",
    response_model=Page[MembershipOut],
    summary="The member's joins and leaves in the groups of your scope",
)
def member_memberships(member_id: MemberId, db: DbSession, scope: CurrentScope, paging: Paging) -> Page[MembershipOut]:
    member = require_member(db, scope, member_id)
    items, total = list_memberships(db, scope, member_id=member.id, limit=paging.limit, offset=paging.offset)
    return Page[MembershipOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@members.put("/{member_id}/tags/{tag_id}", response_model=TaggingOut, summary="Tag a member")
def tag_member(member_id: MemberId, tag_id: TagId, db: DbSession, scope: CurrentScope, request: Request) -> TaggingOut:
    return service.tag_member(db, scope, member_id, tag_id, request=request)


@members.delete(
    "/{member_id}/tags/{tag_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a tag from a member"
)
def untag_member(member_id: MemberId, tag_id: TagId, db: DbSession, scope: CurrentScope, request: Request) -> Response:
    service.untag_member(db, scope, member_id, tag_id, request=request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@tags.get("", response_model=Page[TagOut], summary="The organisation's tags")
def list_tags(db: DbSession, scope: CurrentScope, paging: Paging, category: str | None = None) -> Page[TagOut]:
    rows, total = service.list_tags(db, scope, category=category, limit=paging.limit, offset=paging.offset)
    return Page[TagOut](
        items=[TagOut.model_validate(t) for t in rows], total=total, limit=paging.limit, offset=paging.offset
    )


@tags.post("", response_model=TagOut, status_code=status.HTTP_201_CREATED, summary="Create a tag")
def create_tag(body: TagCreate, db: DbSession, scope: CurrentScope, request: Request) -> TagOut:
    return TagOut.model_validate(service.create_tag(db, scope, body, request=request))


@tags.get("/{tag_id}", response_model=TagOut, summary="One tag")
def get_tag(tag_id: TagId, db: DbSession, scope: CurrentScope) -> TagOut:
    return TagOut.model_validate(service.require_tag(db, scope, tag_id))

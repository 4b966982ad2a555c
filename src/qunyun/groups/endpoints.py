"""REST routes for groups: /api/v1/groups."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from qunyun.api.pagination import Id, Page, Paging
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.auth.scope import require_group
from qunyun.groups import service
from qunyun.groups.schemas import (
    AssignmentOut,
    AssignmentsPut,
    GroupCreate,
    GroupMemberOut,
    GroupOut,
    GroupUpdate,
    MembershipOut,
)
from qunyun.models import GroupStatus

router = APIRouter(prefix="/groups", tags=["groups"])

GroupId = Annotated[Id, Path(description="Internal group id")]


@router.get("", response_model=Page[GroupOut], summary="List groups in your scope")
def list_groups(
    db: DbSession,
    scope: CurrentScope,
    paging: Paging,
    community: Annotated[Id | None, Query(description="Community id")] = None,
    tier: str | None = None,
    region: str | None = None,
    owner: Annotated[Id | None, Query(description="Owner's staff id")] = None,
    status: GroupStatus | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the group name")] = None,
) -> Page[GroupOut]:
    filters = service.GroupFilter(
        community_id=community, tier=tier, region=region, owner_id=owner, status=status.value if status else None, q=q
    )
    rows, total = service.list_groups(db, scope, filters, limit=paging.limit, offset=paging.offset)
    items = [GroupOut.model_validate(row.group) for row in rows]
    return Page[GroupOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.post("", response_model=GroupOut, status_code=status.HTTP_201_CREATED, summary="Create a group")
def create_group(body: GroupCreate, db: DbSession, scope: CurrentScope, request: Request) -> GroupOut:
    return GroupOut.model_validate(service.create_group(db, scope, body, request=request))


@router.get("/{group_id}", response_model=GroupOut, summary="One group")
def get_group(group_id: GroupId, db: DbSession, scope: CurrentScope) -> GroupOut:
    return GroupOut.model_validate(service.get_group(db, scope, group_id))


@router.patch("/{group_id}", response_model=GroupOut, summary="Change a group")
def update_group(
    group_id: GroupId, body: GroupUpdate, db: DbSession, scope: CurrentScope, request: Request
) -> GroupOut:
    changes = body.model_dump(exclude_unset=True, mode="json")
    return GroupOut.model_validate(service.update_group(db, scope, group_id, changes, request=request))


@router.get("/{group_id}/members", response_model=Page[GroupMemberOut], summary="Current members")
def group_members(group_id: GroupId, db: DbSession, scope: CurrentScope, paging: Paging) -> Page[GroupMemberOut]:
    items, total = service.current_members(db, scope, group_id, limit=paging.limit, offset=paging.offset)
    return Page[GroupMemberOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.get(
    "/{group_id}/memberships",
    response_model=Page[MembershipOut],
    summary="Membership history: every join and leave with scene, channel and reason",
)
def group_memberships(group_id: GroupId, db: DbSession, scope: CurrentScope, paging: Paging) -> Page[MembershipOut]:
    group = require_group(db, scope, group_id)
    items, total = service.list_memberships(db, scope, group_id=group.id, limit=paging.limit, offset=paging.offset)
    return Page[MembershipOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.get("/{group_id}/assignments", response_model=list[AssignmentOut], summary="Staff assigned")
def get_assignments(group_id: GroupId, db: DbSession, scope: CurrentScope) -> list[AssignmentOut]:
    return service.list_assignments(db, scope, group_id)


@router.put(
    "/{group_id}/assignments",
    response_model=list[AssignmentOut],
    summary="Replace the staff assigned to a group (lead only)",
)
def put_assignments(
    group_id: GroupId, body: AssignmentsPut, db: DbSession, scope: CurrentScope, request: Request
) -> list[AssignmentOut]:
    return service.set_assignments(db, scope, group_id, body.assignments, request=request)

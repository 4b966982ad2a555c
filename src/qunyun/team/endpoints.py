"""REST routes for staff accounts: /api/v1/staff (lead only).

The request/response models live here rather than in team/schemas.py only because that file
belongs to another change in flight; move them when it lands.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from qunyun.api.pagination import Id, Page, Paging
from qunyun.audit.service import record_by
from qunyun.auth.deps import DbSession, LeadScope
from qunyun.errors import NotFound
from qunyun.groups.service import count_rows
from qunyun.locale import Msg
from qunyun.models import Group, Role, Staff, StaffGroupAssignment
from qunyun.team.service import create_staff

router = APIRouter(prefix="/staff", tags=["staff"])


class StaffOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    language: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    group_ids: list[int] = Field(description="Groups owned or assigned (the scope of owner/admin/operator)")


class StaffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=256)
    role: Role
    display_name: str | None = Field(default=None, max_length=100)
    language: Literal["zh", "en"] = "zh"


def _group_ids(db: DbSession, staff_ids: list[int]) -> dict[int, list[int]]:
    ids: dict[int, set[int]] = {s: set() for s in staff_ids}
    if not staff_ids:
        return {}
    for staff_id, group_id in db.execute(
        select(StaffGroupAssignment.staff_id, StaffGroupAssignment.group_id).where(
            StaffGroupAssignment.staff_id.in_(staff_ids)
        )
    ):
        ids[staff_id].add(group_id)
    for owner_id, group_id in db.execute(select(Group.owner_id, Group.id).where(Group.owner_id.in_(staff_ids))):
        if owner_id is not None:
            ids[owner_id].add(group_id)
    return {s: sorted(g) for s, g in ids.items()}


def _out(staff: Staff, group_ids: list[int]) -> StaffOut:
    return StaffOut(
        id=staff.id,
        username=staff.username,
        display_name=staff.display_name,
        role=staff.role,
        language=staff.language,
        is_active=staff.is_active,
        created_at=staff.created_at,
        last_login_at=staff.last_login_at,
        group_ids=group_ids,
    )


@router.get("", response_model=Page[StaffOut], summary="Staff of your organisation (lead only)")
def list_staff(db: DbSession, scope: LeadScope, paging: Paging, role: Role | None = None) -> Page[StaffOut]:
    query = select(Staff).where(Staff.org_id == scope.org_id)
    if role is not None:
        query = query.where(Staff.role == role.value)
    total = count_rows(db, query)
    rows = db.scalars(query.order_by(Staff.id).limit(paging.limit).offset(paging.offset)).all()
    groups = _group_ids(db, [s.id for s in rows])
    items = [_out(s, groups.get(s.id, [])) for s in rows]
    return Page[StaffOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.post("", response_model=StaffOut, status_code=status.HTTP_201_CREATED, summary="Create staff (lead only)")
def add_staff(body: StaffCreate, db: DbSession, scope: LeadScope, request: Request) -> StaffOut:
    staff = create_staff(
        db,
        scope.org_id,
        username=body.username,
        password=body.password,
        role=body.role,
        display_name=body.display_name,
        language=body.language,
    )
    record_by(
        db,
        scope,
        action="staff.create",
        target_type="staff",
        target_id=staff.id,
        detail={"username": staff.username, "role": staff.role},
        request=request,
    )
    return _out(staff, [])


@router.get("/{staff_id}", response_model=StaffOut, summary="One staff member (lead only)")
def get_staff(staff_id: Annotated[Id, Path(description="Staff id")], db: DbSession, scope: LeadScope) -> StaffOut:
    staff = db.scalar(select(Staff).where(Staff.id == staff_id, Staff.org_id == scope.org_id))
    if staff is None:
        raise NotFound(Msg("api.no_staff", id=staff_id), field="staff_id")
    return _out(staff, _group_ids(db, [staff.id]).get(staff.id, []))

"""REST routes for staff accounts: /api/v1/staff (lead only).

The request/response models live here rather than in team/schemas.py only because that file
belongs to another change in flight; move them when it lands.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from qunyun.api.pagination import Id, Page, Paging
from qunyun.audit.service import record_by
from qunyun.auth.deps import DbSession, LeadScope
from qunyun.models import Role, Staff
from qunyun.team import service as team

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
    rows, total = team.list_staff(db, scope, role=role, limit=paging.limit, offset=paging.offset)
    groups = team.staff_group_ids(db, scope.org_id, [s.id for s in rows])
    items = [_out(s, groups.get(s.id, [])) for s in rows]
    return Page[StaffOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.post("", response_model=StaffOut, status_code=status.HTTP_201_CREATED, summary="Create staff (lead only)")
def add_staff(body: StaffCreate, db: DbSession, scope: LeadScope, request: Request) -> StaffOut:
    staff = team.create_staff(
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
    staff = team.get_staff(db, scope, staff_id)
    return _out(staff, team.staff_group_ids(db, scope.org_id, [staff.id]).get(staff.id, []))

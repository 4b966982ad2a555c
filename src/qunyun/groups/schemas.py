"""Groups, their current members, membership history and staff assignments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from qunyun.api.pagination import Id
from qunyun.models import GroupStatus

Platform = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[a-z0-9_-]+$")]


def reject_null(value: Any, info: ValidationInfo) -> Any:
    """PATCH bodies: omitting a field keeps it, but ``null`` is no value for a required column."""
    if value is None:
        # A type of its own, so the API can say it in the reader's language (api/errors.py).
        raise PydanticCustomError(
            "not_null", "{field} may not be null; omit it to keep the current value", {"field": info.field_name}
        )
    return value


class GroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    platform: str
    external_id: str
    name: str
    community_id: int | None
    playbook_id: int | None
    tier: str
    region: str
    capacity: int
    status: str
    owner_id: int | None
    member_count: int
    created_at: datetime


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Platform = "api"
    external_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    community_id: Id | None = None
    playbook_id: Id | None = None
    tier: str = Field(default="normal", min_length=1, max_length=32)
    region: str = Field(default="", max_length=64)
    capacity: int = Field(default=500, ge=1, le=100_000)
    status: GroupStatus = GroupStatus.ACTIVE
    owner_id: Id | None = Field(default=None, description="Staff id; a group owner creating a group owns it")


class GroupUpdate(BaseModel):
    """Fields to change; omitted fields keep their value. Changing ``owner_id`` is lead-only."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    community_id: Id | None = None
    playbook_id: Id | None = None
    tier: str | None = Field(default=None, min_length=1, max_length=32)
    region: str | None = Field(default=None, max_length=64)
    capacity: int | None = Field(default=None, ge=1, le=100_000)
    status: GroupStatus | None = None
    owner_id: Id | None = None

    _not_null = field_validator("name", "tier", "region", "capacity", "status", mode="before")(reject_null)


class GroupMemberOut(BaseModel):
    """A current member of a group."""

    id: int
    platform: str
    external_id: str
    display_name: str
    joined_at: datetime


class MembershipOut(BaseModel):
    """One stay of a member in a group, with how they came (from the join event) and how they
    left (from the leave event)."""

    id: int
    group_id: int
    group_platform: str
    group_external_id: str
    member_id: int
    member_platform: str
    member_external_id: str
    member_display_name: str
    joined_at: datetime
    left_at: datetime | None
    scene: str | None
    channel_id: int | None
    channel_code: str | None
    inviter_id: int | None
    leave_reason: str | None


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: Id
    role: Literal["owner", "admin", "operator"] = "operator"


class AssignmentsPut(BaseModel):
    """The complete set of staff assigned to the group; staff not listed are unassigned."""

    model_config = ConfigDict(extra="forbid")

    assignments: list[AssignmentIn] = Field(max_length=200)


class AssignmentOut(BaseModel):
    staff_id: int
    username: str
    display_name: str
    role: str
    created_at: datetime

"""Members (persona fields) and tags."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from qunyun.groups.schemas import reject_null

Interest = Annotated[str, Field(min_length=1, max_length=32)]


class TagRef(BaseModel):
    id: int
    name: str
    category: str


class MemberOut(BaseModel):
    id: int
    platform: str
    external_id: str
    display_name: str
    gender: str
    birth_year: int | None
    occupation: str
    region: str
    interests: list[str]
    first_seen_at: datetime
    erased: bool
    tags: list[TagRef]


class MemberUpdate(BaseModel):
    """Persona fields to change; omitted fields keep their value."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, max_length=200)
    gender: Literal["male", "female", ""] | None = None
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    occupation: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=64)
    interests: list[Interest] | None = Field(default=None, max_length=50)

    _not_null = field_validator("display_name", "gender", "occupation", "region", "interests", mode="before")(
        reject_null
    )


class TagOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    category: str
    created_at: datetime


class TagCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    category: str = Field(default="", max_length=64)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise PydanticCustomError("blank", "name may not be blank")
        return value


class TaggingOut(BaseModel):
    member_id: int
    tag_id: int
    source: str
    created_by_id: int | None
    created_at: datetime

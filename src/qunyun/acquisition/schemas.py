"""Channels and their cost models. Money goes in and out as yuan decimal strings ("0.05")."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qunyun.groups.schemas import reject_null

_YUAN = 'Amount in yuan (元) with at most 2 decimals, e.g. "0.05"'
# Per-touch and per-member amounts are 32-bit fen columns, hence the lower ceiling.
UnitYuan = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=9, decimal_places=2, description=_YUAN)]
Yuan = Annotated[Decimal, Field(ge=0, le=10**10, max_digits=13, decimal_places=2, description=_YUAN)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class ChannelOut(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    cost_per_touch: str = Field(description="Yuan per touch (one SMS, one package card…)")
    reward_per_member: str = Field(description="Yuan paid per acquired member (red packet…)")
    fixed_cost: str = Field(description="Fixed yuan cost of the channel (an event's venue…)")
    touches: int
    expected_rate_bp: int = Field(description="Expected share of touched people who join, basis points")
    members_acquired: int = Field(description="Distinct members whose join event came through this channel")
    cac: str | None = Field(description="Actual cost per acquired member in yuan; null while none acquired")
    expected_cac: str | None = Field(description="Planned cost per member from the expected rate")
    created_at: datetime


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code = Field(description="Stable short code; the `channel` of member.joined events")
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(default="other", min_length=1, max_length=32)
    cost_per_touch: UnitYuan = Decimal(0)
    reward_per_member: UnitYuan = Decimal(0)
    fixed_cost: Yuan = Decimal(0)
    touches: int = Field(default=0, ge=0, le=10**12)
    expected_rate_bp: int = Field(default=0, ge=0, le=10_000)


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=32)
    cost_per_touch: UnitYuan | None = None
    reward_per_member: UnitYuan | None = None
    fixed_cost: Yuan | None = None
    touches: int | None = Field(default=None, ge=0, le=10**12)
    expected_rate_bp: int | None = Field(default=None, ge=0, le=10_000)

    _not_null = field_validator(
        "name",
        "kind",
        "cost_per_touch",
        "reward_per_member",
        "fixed_cost",
        "touches",
        "expected_rate_bp",
        mode="before",
    )(reject_null)


class SpendCreate(BaseModel):
    """Spend on a channel on one day (touches and/or a fixed cost)."""

    model_config = ConfigDict(extra="forbid")

    day: date = Field(description="The day the money was spent (the organisation's calendar), YYYY-MM-DD")
    touches: int = Field(default=0, ge=0, le=10**12, description="People reached: SMS sent, cards shipped…")
    fixed_cost: Yuan = Field(default=Decimal(0), description="A fixed cost of that day (a race, a KOL post…)")
    note: str = Field(default="", max_length=200)


class SpendOut(BaseModel):
    id: int
    channel_id: int
    day: date
    touches: int
    fixed_cost: str
    note: str
    source: str = Field(description="staff, created / changed (the channel's totals were set), simulator")
    created_at: datetime

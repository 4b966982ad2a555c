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


class ChannelReportRow(BaseModel):
    """One channel over a range of days (PRODUCT.md "channel report"); money in yuan. Cost
    figures and touches are null for staff who see only some groups."""

    channel: str = Field(description="The channel's code")
    channel_id: int
    name: str
    kind: str
    touches: int | None = Field(description="Touches dated in the range")
    scans: int = Field(description="Scans of the channel's live codes in the range")
    visitors: int = Field(description="Distinct visitors among those scans")
    joins: int = Field(description="Members acquired: first join in the organisation in the range, through the channel")
    actives_7d: int = Field(description="Acquired members who posted within 168 h of joining")
    paying: int = Field(description="Acquired members with a paid order within 30 days of joining (first orders)")
    gmv: str = Field(description="Those orders' amounts less their refunds within the 30 days")
    cost: str | None = Field(description="Touches × cost per touch + joins × reward per member + fixed costs")
    cac: str | None
    cost_per_active: str | None
    cost_per_paying: str | None
    roi: float | None = Field(description="GMV / cost, 4 decimals")
    scans_by_day: dict[str, int] | None = None
    joins_by_day: dict[str, int] | None = None


class LiveCodeReportRow(BaseModel):
    """One live code over a range of days (no cost: the cost model is the channel's)."""

    code: str
    live_code_id: int
    name: str
    channel: str | None = Field(description="Its channel's code")
    scans: int
    visitors: int
    fallback: int = Field(description="Scans served the fallback")
    joins: int
    actives_7d: int
    paying: int
    gmv: str
    scans_by_day: dict[str, int] | None = None
    joins_by_day: dict[str, int] | None = None


class FunnelStage(BaseModel):
    stage: str = Field(description="reached, scanned, joined, active or converted")
    count: int | None = Field(description="reached: touches; scanned: visitors; null when not known to the reader")


class ChannelReport(BaseModel):
    date_from: date
    date_to: date
    whole_org: bool = Field(description="False: figures of the reader's groups only, without cost")
    channels: list[ChannelReportRow]
    live_codes: list[LiveCodeReportRow]
    unattributed_joins: int = Field(description="Members acquired in the range whose first join carries no channel")


class ChannelDetail(BaseModel):
    """One channel over a range of days: its row (with scans and joins per day), its funnel and
    its live codes."""

    date_from: date
    date_to: date
    whole_org: bool
    channel: ChannelReportRow
    funnel: list[FunnelStage]
    live_codes: list[LiveCodeReportRow]

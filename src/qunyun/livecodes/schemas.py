"""Input and output shapes of live codes (API, CLI, console)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qunyun.api.pagination import Id
from qunyun.groups.schemas import reject_null
from qunyun.models import RoutingPolicy

ScanLimit = Annotated[int, Field(ge=1, le=100_000, description="First scans a group takes at most")]
FallbackUrl = Annotated[str, Field(max_length=500, pattern=r"^(https?://\S+)?$", description="http(s) URL or empty")]
AlertMinutes = Annotated[int, Field(ge=0, le=30 * 24 * 60)]
JoinRequestPolicy = Literal["direct", "review", "approve"]


class LiveCodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    group_ids: list[Id] = Field(default_factory=list, max_length=200, description="The pool, in order")
    channel_id: Id | None = None
    connection_id: Id | None = Field(default=None, description="Account new groups and invite links come from")
    policy: RoutingPolicy = RoutingPolicy.FILL
    default_limit: ScanLimit | None = Field(
        default=None, description="Scan limit of each group (default: capacity minus members, 200 for QR images)"
    )
    hook_text: str = Field(default="", max_length=2000, description="诱饵: what a visitor gets for joining")
    fallback_url: FallbackUrl = ""
    fallback_text: str = Field(default="", max_length=2000)
    threshold: dict[str, Any] | None = Field(default=None, description="Entry threshold (docs/livecodes.md)")
    join_request_policy: JoinRequestPolicy = Field(
        default="direct",
        description=(
            "Joins through its invite links: direct (no request), or a join request that staff review"
            " or that is approved automatically; blacklisted requesters are declined"
        ),
    )
    playbook_id: Id | None = Field(default=None, description="Create the next group from it when all are full")
    qr_alert_minutes: AlertMinutes = 24 * 60
    paused: bool = False


class LiveCodeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    channel_id: Id | None = None
    connection_id: Id | None = None
    policy: RoutingPolicy | None = None
    default_limit: ScanLimit | None = None
    hook_text: str | None = Field(default=None, max_length=2000)
    fallback_url: FallbackUrl | None = None
    fallback_text: str | None = Field(default=None, max_length=2000)
    threshold: dict[str, Any] | None = None
    join_request_policy: JoinRequestPolicy | None = None
    playbook_id: Id | None = None
    qr_alert_minutes: AlertMinutes | None = None
    paused: bool | None = None

    _not_null = field_validator(
        "name",
        "policy",
        "hook_text",
        "fallback_url",
        "fallback_text",
        "join_request_policy",
        "qr_alert_minutes",
        "paused",
        mode="before",
    )(reject_null)


class PoolEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_id: Id
    scan_limit: ScanLimit | None = None
    region: str | None = Field(default=None, max_length=64, description="Default: the group's region")
    position: int | None = Field(default=None, ge=0, le=10_000)


class PoolEntryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scan_limit: ScanLimit | None = None
    region: str | None = Field(default=None, max_length=64)
    position: int | None = Field(default=None, ge=0, le=10_000)

    _not_null = field_validator("scan_limit", "region", "position", mode="before")(reject_null)


class QrImageOut(BaseModel):
    id: int
    group_id: int
    media_type: str
    size: int
    uploaded_at: datetime
    expires_at: datetime
    servable: bool = Field(description="Not expired, not about to, not withdrawn: shown to visitors")
    withdrawn_at: datetime | None


class PoolEntryOut(BaseModel):
    group_id: int
    group: str = Field(description="The group's external id")
    group_name: str
    position: int
    scan_limit: int
    routed: int
    joined: int
    region: str
    active: bool
    invite_link: str | None
    qr_image: QrImageOut | None = Field(description="The image visitors are shown now, if any")
    servable: bool = Field(description="Has room and an invite link or a current QR image")


class LiveCodeOut(BaseModel):
    id: int
    code: str
    url: str = Field(description="Public path of the scan page, /c/{code}")
    name: str
    channel_id: int | None
    channel: str | None = Field(description="The channel's code")
    connection_id: int | None
    policy: str
    default_limit: int | None
    hook_text: str
    paused: bool
    fallback_url: str
    fallback_text: str
    has_fallback_image: bool
    threshold: dict[str, Any] | None
    join_request_policy: str
    playbook_id: int | None
    qr_alert_minutes: int
    full_since: datetime | None
    created_at: datetime
    updated_at: datetime
    scans: int
    visitors: int
    pool: list[PoolEntryOut]


class LiveCodeSummary(BaseModel):
    """``qunyun livecodes show --format json`` (a stable contract)."""

    code: str
    scans: int
    visitors: int
    fallback: int = Field(description="Scans served the fallback")
    groups: list[dict[str, Any]] = Field(description='[{"group": EXT, "routed": N, "limit": N, "joined": N}]')


class ScanOut(BaseModel):
    id: int
    at: datetime
    visitor: str
    outcome: str
    first: bool
    channel_id: int | None
    group_id: int | None
    invite_link: str | None
    ua_class: str
    ip_prefix: str | None
    answers: dict[str, Any] | None

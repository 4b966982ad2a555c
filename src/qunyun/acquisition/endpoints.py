"""REST routes for channels: /api/v1/channels (with their dated spend and the channel report)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from qunyun.acquisition import report, service
from qunyun.acquisition.schemas import (
    ChannelCreate,
    ChannelDetail,
    ChannelOut,
    ChannelReport,
    ChannelUpdate,
    SpendCreate,
    SpendOut,
)
from qunyun.api.pagination import Id, Page, Paging
from qunyun.auth.deps import CurrentScope, DbSession

router = APIRouter(prefix="/channels", tags=["channels"])

ChannelId = Annotated[Id, Path(description="Channel id")]
DateFrom = Annotated[
    date | None,
    Query(alias="from", description="First day (the organisation's calendar); default: 27 days before `to`"),
]
DateTo = Annotated[date | None, Query(alias="to", description="Last day, inclusive; default: today")]


@router.get("", response_model=Page[ChannelOut], summary="Channels with members acquired and CAC")
def list_channels(db: DbSession, scope: CurrentScope, paging: Paging, kind: str | None = None) -> Page[ChannelOut]:
    items, total = service.list_channels(db, scope, kind=kind, limit=paging.limit, offset=paging.offset)
    return Page[ChannelOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.get("/report", response_model=ChannelReport, summary="The channel report: per channel and per live code")
def channel_report(
    db: DbSession, scope: CurrentScope, date_from: DateFrom = None, date_to: DateTo = None
) -> ChannelReport:
    first, last = report.report_range(db, scope, date_from, date_to)
    return report.channel_report(db, scope, first, last)


@router.post("", response_model=ChannelOut, status_code=status.HTTP_201_CREATED, summary="Create a channel (lead only)")
def create_channel(body: ChannelCreate, db: DbSession, scope: CurrentScope, request: Request) -> ChannelOut:
    return service.create_channel(db, scope, body, request=request)


@router.get("/{channel_id}", response_model=ChannelOut, summary="One channel")
def get_channel(channel_id: ChannelId, db: DbSession, scope: CurrentScope) -> ChannelOut:
    return service.get_channel(db, scope, channel_id)


@router.patch("/{channel_id}", response_model=ChannelOut, summary="Change a channel (lead only)")
def update_channel(
    channel_id: ChannelId, body: ChannelUpdate, db: DbSession, scope: CurrentScope, request: Request
) -> ChannelOut:
    return service.update_channel(db, scope, channel_id, body.model_dump(exclude_unset=True), request=request)


@router.get("/{channel_id}/spend", response_model=Page[SpendOut], summary="A channel's spend by day")
def list_spend(channel_id: ChannelId, db: DbSession, scope: CurrentScope, paging: Paging) -> Page[SpendOut]:
    items, total = service.list_spend(db, scope, channel_id, limit=paging.limit, offset=paging.offset)
    return Page[SpendOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.post(
    "/{channel_id}/spend",
    response_model=SpendOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a day's touches and fixed cost (lead only)",
)
def record_spend(
    channel_id: ChannelId, body: SpendCreate, db: DbSession, scope: CurrentScope, request: Request
) -> SpendOut:
    return service.record_spend(db, scope, channel_id, body, request=request)


@router.get("/{channel_id}/report", response_model=ChannelDetail, summary="One channel's funnel, by day and live code")
def channel_detail(
    channel_id: ChannelId, db: DbSession, scope: CurrentScope, date_from: DateFrom = None, date_to: DateTo = None
) -> ChannelDetail:
    first, last = report.report_range(db, scope, date_from, date_to)
    return report.channel_detail(db, scope, channel_id, first, last)

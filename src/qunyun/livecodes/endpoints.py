"""REST routes for live codes: /api/v1/livecodes (codes, their pool, QR images, scans, figures)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from qunyun.api.pagination import MAX_LIMIT, Cursor, CursorPage, Id, Page, Paging
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.auth.scope import Scope
from qunyun.errors import InvalidInput
from qunyun.livecodes import service
from qunyun.livecodes.schemas import (
    LiveCodeCreate,
    LiveCodeOut,
    LiveCodeSummary,
    LiveCodeUpdate,
    PoolEntryIn,
    PoolEntryOut,
    PoolEntryUpdate,
    QrImageOut,
    ScanOut,
)
from qunyun.livecodes.service import PoolItem
from qunyun.locale import Msg
from qunyun.models import Channel, GroupQrImage, LiveCode
from qunyun.tasks.storage import MAX_IMAGE_BYTES
from qunyun.timeutil import utcnow

router = APIRouter(prefix="/livecodes", tags=["live codes"])

LiveCodeId = Annotated[Id, Path(description="Live code id")]
GroupId = Annotated[Id, Path(description="Group id")]


class ImageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_base64: str = Field(description="PNG, JPEG or WebP, base64; at most 5 MiB (and the request's 1 MiB cap)")
    expires_at: datetime | None = Field(default=None, description="Default: 7 days from now (WeChat group QR)")


class FallbackImageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_base64: str | None = Field(description="The staff QR image; null removes it")


def _decode(value: str) -> bytes:
    if len(value) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:
        return b"\x00" * (MAX_IMAGE_BYTES + 1)  # the store names the field and the limit (413)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(Msg("err.task.bad_base64"), field="image_base64") from None


def image_out(image: GroupQrImage, now: datetime | None = None) -> QrImageOut:
    return QrImageOut(
        id=image.id,
        group_id=image.group_id,
        media_type=image.media_type,
        size=image.size,
        uploaded_at=image.uploaded_at,
        expires_at=image.expires_at,
        servable=service.image_servable(image, now or utcnow()),
        withdrawn_at=image.withdrawn_at,
    )


def entry_out(item: PoolItem) -> PoolEntryOut:
    return PoolEntryOut(
        group_id=item.group.id,
        group=item.group.external_id,
        group_name=item.group.name,
        position=item.entry.position,
        scan_limit=item.entry.scan_limit,
        routed=item.entry.routed,
        joined=item.joined,
        region=item.entry.region,
        active=item.entry.active,
        invite_link=item.invite_link,
        qr_image=image_out(item.qr_image) if item.qr_image is not None else None,
        servable=item.servable,
    )


def live_code_out(session: Session, scope: Scope, row: LiveCode) -> LiveCodeOut:
    counts = service.counts(session, [row.id])[row.id]
    channel = session.get(Channel, row.channel_id) if row.channel_id is not None else None
    return LiveCodeOut(
        id=row.id,
        code=row.code,
        url=service.public_path(row.code),
        name=row.name,
        channel_id=row.channel_id,
        channel=channel.code if channel is not None else None,
        connection_id=row.connection_id,
        policy=row.policy,
        default_limit=row.default_limit,
        hook_text=row.hook_text,
        paused=row.paused,
        fallback_url=row.fallback_url,
        fallback_text=row.fallback_text,
        has_fallback_image=row.fallback_image is not None,
        threshold=row.threshold,
        join_request_policy=row.join_request_policy,
        playbook_id=row.playbook_id,
        qr_alert_minutes=row.qr_alert_minutes,
        full_since=row.full_since,
        created_at=row.created_at,
        updated_at=row.updated_at,
        scans=counts.scans,
        visitors=counts.visitors,
        pool=[entry_out(item) for item in service.pool(session, scope, row.id)],
    )


@router.get("", response_model=Page[LiveCodeOut], summary="Live codes you see, newest first")
def list_live_codes(db: DbSession, scope: CurrentScope, paging: Paging) -> Page[LiveCodeOut]:
    rows, total = service.list_live_codes(db, scope, limit=paging.limit, offset=paging.offset)
    items = [live_code_out(db, scope, row) for row in rows]
    return Page[LiveCodeOut](items=items, total=total, limit=paging.limit, offset=paging.offset)


@router.post("", response_model=LiveCodeOut, status_code=status.HTTP_201_CREATED, summary="Create a live code")
def create_live_code(body: LiveCodeCreate, db: DbSession, scope: CurrentScope, request: Request) -> LiveCodeOut:
    row = service.create_live_code(db, scope, body, request=request)
    return live_code_out(db, scope, row)


@router.get("/{live_code_id}", response_model=LiveCodeOut, summary="One live code with its pool")
def get_live_code(live_code_id: LiveCodeId, db: DbSession, scope: CurrentScope) -> LiveCodeOut:
    return live_code_out(db, scope, service.get_live_code(db, scope, live_code_id))


@router.patch("/{live_code_id}", response_model=LiveCodeOut, summary="Change, pause or resume a live code")
def update_live_code(
    live_code_id: LiveCodeId, body: LiveCodeUpdate, db: DbSession, scope: CurrentScope, request: Request
) -> LiveCodeOut:
    row = service.update_live_code(db, scope, live_code_id, body.model_dump(exclude_unset=True), request=request)
    return live_code_out(db, scope, row)


@router.get("/{live_code_id}/summary", response_model=LiveCodeSummary, summary="Scans, visitors, fallback, per group")
def live_code_summary(live_code_id: LiveCodeId, db: DbSession, scope: CurrentScope) -> LiveCodeSummary:
    return LiveCodeSummary(**service.summary(db, scope, live_code_id))


@router.put("/{live_code_id}/fallback-image", response_model=LiveCodeOut, summary="Set the fallback staff QR image")
def set_fallback_image(
    live_code_id: LiveCodeId, body: FallbackImageIn, db: DbSession, scope: CurrentScope, request: Request
) -> LiveCodeOut:
    data = _decode(body.image_base64) if body.image_base64 is not None else None
    row = service.set_fallback_image(db, scope, live_code_id, data, request=request)
    return live_code_out(db, scope, row)


@router.post(
    "/{live_code_id}/groups",
    response_model=PoolEntryOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a group to the pool",
)
def add_group(
    live_code_id: LiveCodeId, body: PoolEntryIn, db: DbSession, scope: CurrentScope, request: Request
) -> PoolEntryOut:
    entry = service.add_group(db, scope, live_code_id, body, request=request)
    return _pool_entry(db, scope, live_code_id, entry.group_id)


def _pool_entry(db: Session, scope: Scope, live_code_id: int, group_id: int) -> PoolEntryOut:
    item = next(i for i in service.pool(db, scope, live_code_id) if i.group.id == group_id)
    return entry_out(item)


@router.patch("/{live_code_id}/groups/{group_id}", response_model=PoolEntryOut, summary="Change a pool entry")
def update_group(
    live_code_id: LiveCodeId,
    group_id: GroupId,
    body: PoolEntryUpdate,
    db: DbSession,
    scope: CurrentScope,
    request: Request,
) -> PoolEntryOut:
    service.update_group(db, scope, live_code_id, group_id, body.model_dump(exclude_unset=True), request=request)
    return _pool_entry(db, scope, live_code_id, group_id)


@router.delete(
    "/{live_code_id}/groups/{group_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Take a group out of the pool",
)
def remove_group(
    live_code_id: LiveCodeId, group_id: GroupId, db: DbSession, scope: CurrentScope, request: Request
) -> None:
    service.remove_group(db, scope, live_code_id, group_id, request=request)


@router.get("/{live_code_id}/scans", response_model=CursorPage[ScanOut], summary="The code's scans, oldest first")
def list_scans(
    live_code_id: LiveCodeId,
    db: DbSession,
    scope: CurrentScope,
    since: Annotated[datetime | None, Query(description="Scans at or after this instant")] = None,
    until: Annotated[datetime | None, Query(description="Scans before this instant")] = None,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> CursorPage[ScanOut]:
    rows = service.list_scans(db, scope, live_code_id, since=since, until=until, after_id=cursor, limit=limit)
    items = [
        ScanOut(
            id=r.id,
            at=r.at,
            visitor=r.visitor,
            outcome=r.outcome,
            first=r.first,
            channel_id=r.channel_id,
            group_id=r.group_id,
            invite_link=r.invite_link,
            ua_class=r.ua_class,
            ip_prefix=r.ip_prefix,
            answers=r.answers,
        )
        for r in rows
    ]
    return CursorPage[ScanOut](items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/groups/{group_id}/qr-images", response_model=list[QrImageOut], summary="A group's QR images")
def list_qr_images(group_id: GroupId, db: DbSession, scope: CurrentScope) -> list[QrImageOut]:
    now = utcnow()
    return [image_out(i, now) for i in service.qr_images(db, scope, group_id)]


@router.post(
    "/groups/{group_id}/qr-images",
    response_model=QrImageOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload a group's QR image with its expiry",
)
def upload_qr_image(
    group_id: GroupId, body: ImageIn, db: DbSession, scope: CurrentScope, request: Request
) -> QrImageOut:
    image = service.upload_qr_image(
        db, scope, group_id, _decode(body.image_base64), expires_at=body.expires_at, request=request
    )
    return image_out(image)


@router.delete(
    "/qr-images/{image_id}",
    response_model=QrImageOut,
    summary="Withdraw a QR image (never shown again)",
)
def withdraw_qr_image(
    image_id: Annotated[Id, Path(description="QR image id")], db: DbSession, scope: CurrentScope, request: Request
) -> QrImageOut:
    return image_out(service.withdraw_qr_image(db, scope, image_id, request=request))

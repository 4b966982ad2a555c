"""Group QR images (群二维码): uploaded by staff with their expiry (WeChat's last 7 days), shown
to visitors only while not about to expire (``routing.SERVE_MARGIN``), withdrawn by staff when
wrong. A later upload answers the expiry tasks of the images it outlives (``jobs.py`` opens them).
The live code service re-exports these functions (``service.upload_qr_image`` …)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import record_by
from qunyun.auth.scope import Scope, require_group, visible_group_ids
from qunyun.errors import InvalidInput, NotFound
from qunyun.livecodes import routing
from qunyun.livecodes.storage import store_qr_image
from qunyun.livecodes.work import close_task
from qunyun.locale import Msg
from qunyun.models import GroupQrImage, TaskStatus
from qunyun.timeutil import utcnow

QR_DEFAULT_DAYS = 7


def upload_qr_image(
    session: Session,
    scope: Scope,
    group_id: int,
    data: bytes,
    *,
    expires_at: datetime | None = None,
    now: datetime | None = None,
    request: HTTPConnection | None = None,
) -> GroupQrImage:
    """Store a group's QR image with its expiry (default: 7 days from now, WeChat's). Visitors
    are shown the group's servable image that expires last; one expired or about to expire
    (``routing.SERVE_MARGIN``) never."""
    group = require_group(session, scope, group_id, write=True)
    now = now or utcnow()
    if expires_at is None:
        expires_at = now + timedelta(days=QR_DEFAULT_DAYS)
    if expires_at.tzinfo is None:
        raise InvalidInput(Msg("err.livecode.expiry_offset"), field="expires_at")
    if expires_at <= now + routing.SERVE_MARGIN:
        raise InvalidInput(Msg("err.livecode.expiry_past"), field="expires_at")
    if expires_at > now + timedelta(days=366):
        raise InvalidInput(Msg("err.livecode.expiry_far"), field="expires_at")
    path, media_type = store_qr_image(group.org_id, f"group-{group.id}", data, field="image")
    image = GroupQrImage(
        org_id=group.org_id,
        group_id=group.id,
        path=path,
        media_type=media_type,
        size=len(data),
        uploaded_at=now,
        expires_at=expires_at,
        uploaded_by_id=scope.staff_id or None,
    )
    session.add(image)
    session.flush()
    record_by(
        session,
        scope,
        action="group.qr_upload",
        target_type="group",
        target_id=group.id,
        detail={"image_id": image.id, "expires_at": expires_at.isoformat()},
        request=request,
    )
    _close_expiry_tasks(session, group.id, expires_at)
    routing.forget_group(group.id)
    return image


def _close_expiry_tasks(session: Session, group_id: int, new_expiry: datetime) -> None:
    """A new image that outlives the old ones answers their expiry tasks."""
    task_ids = session.scalars(
        select(GroupQrImage.alert_task_id).where(
            GroupQrImage.group_id == group_id,
            GroupQrImage.alert_task_id.is_not(None),
            GroupQrImage.expires_at < new_expiry,
        )
    ).all()
    for task_id in task_ids:
        if task_id is not None:
            close_task(session, task_id, TaskStatus.DONE, {"by": "qr_upload"})


def withdraw_qr_image(
    session: Session, scope: Scope, image_id: int, *, request: HTTPConnection | None = None
) -> GroupQrImage:
    """Stop showing an image (uploaded by mistake); it stays on record."""
    image = session.scalar(
        select(GroupQrImage).where(
            GroupQrImage.id == image_id,
            GroupQrImage.org_id == scope.org_id,
            GroupQrImage.group_id.in_(visible_group_ids(scope)),
        )
    )
    if image is None:
        raise NotFound(Msg("err.livecode.no_image", id=image_id), field="image_id")
    require_group(session, scope, image.group_id, write=True)
    if image.withdrawn_at is None:
        image.withdrawn_at = utcnow()
        session.flush()
        record_by(
            session,
            scope,
            action="group.qr_withdraw",
            target_type="group",
            target_id=image.group_id,
            detail={"image_id": image.id},
            request=request,
        )
    routing.forget_group(image.group_id)
    return image


def qr_images(session: Session, scope: Scope, group_id: int) -> list[GroupQrImage]:
    """A group's QR images, the latest upload first."""
    group = require_group(session, scope, group_id)
    return list(
        session.scalars(
            select(GroupQrImage)
            .where(GroupQrImage.group_id == group.id)
            .order_by(GroupQrImage.uploaded_at.desc(), GroupQrImage.id.desc())
        )
    )


def image_servable(image: GroupQrImage, now: datetime) -> bool:
    return image.withdrawn_at is None and image.expires_at > now + routing.SERVE_MARGIN


def current_qr_images(session: Session, group_ids: Collection[int], *, now: datetime) -> dict[int, GroupQrImage]:
    """Per group, the servable image that expires last (None: the group has none)."""
    if not group_ids:
        return {}
    out: dict[int, GroupQrImage] = {}
    for image in session.scalars(
        select(GroupQrImage)
        .where(
            GroupQrImage.group_id.in_(list(group_ids)),
            GroupQrImage.withdrawn_at.is_(None),
            GroupQrImage.expires_at > now + routing.SERVE_MARGIN,
        )
        .order_by(GroupQrImage.expires_at, GroupQrImage.id)
    ):
        out[image.group_id] = image  # ordered by expiry: the last one wins
    return out

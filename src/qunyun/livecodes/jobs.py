"""Background work of live codes.

- ``livecodes.pool_full`` (enqueued once by the scan that found every group full): ask the
  connector for the next group, created from the code's playbook, where the platform can create
  groups (a ``create_group`` outbound action); otherwise open the task "create the next group"
  for the owner, once.
- ``livecodes.maintain`` (every minute): store the invite links the connector made; open a task
  for a group's owner ``qr_alert_minutes`` before the group's QR image expires (once per image,
  only for the image that expires last, only for groups in a pool); put the groups created for
  a full pool into it.

The work of each pass is a pure function taking ``now`` (:func:`maintain`); the jobs are thin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qunyun.connectors import registry
from qunyun.connectors.actions import CreateGroup
from qunyun.connectors.base import Capability
from qunyun.db.base import to_micros
from qunyun.livecodes.routing import POOL_FULL_JOB, SERVE_MARGIN, forget_group
from qunyun.livecodes.service import LINK_STATES, put_in_pool
from qunyun.locale import Msg
from qunyun.models import (
    Connection,
    Group,
    GroupQrImage,
    LiveCode,
    LiveCodeGroup,
    Organisation,
    OutboundAction,
    Playbook,
    TaskKind,
)
from qunyun.tasks.service import open_task
from qunyun.timeutil import utcnow
from qunyun.worker.queue import job_handler
from qunyun.worker.scheduler import PeriodicPayload, periodic

log = logging.getLogger(__name__)

MAINTAIN_JOB = "livecodes.maintain"
NEXT_GROUP_KEY = "livecode:{id}:next-group:{since}"
# Created groups are looked for this long after their action was sent.
ADOPT_WITHIN = timedelta(days=7)


class PoolFullPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    live_code_id: int


class MaintainPayload(PeriodicPayload):
    model_config = ConfigDict(extra="forbid", strict=True)


def _connection_of(session: Session, row: LiveCode) -> Connection | None:
    """Where the next group is created: the code's connection, else that of its last group."""
    if row.connection_id is not None:
        return session.get(Connection, row.connection_id)
    connection_id = session.scalar(
        select(Group.connection_id)
        .join(LiveCodeGroup, LiveCodeGroup.group_id == Group.id)
        .where(LiveCodeGroup.live_code_id == row.id, Group.connection_id.is_not(None))
        .order_by(LiveCodeGroup.position.desc(), LiveCodeGroup.id.desc())
        .limit(1)
    )
    return session.get(Connection, connection_id) if connection_id is not None else None


def next_group_name(session: Session, row: LiveCode, playbook: Playbook) -> str:
    """The new group's name: the playbook's naming template with ``{n}`` (the pool's size + 1),
    or the playbook's name and that number."""
    n = (session.scalar(select(func.count()).where(LiveCodeGroup.live_code_id == row.id)) or 0) + 1
    template = playbook.naming_template or ""
    if "{n}" in template:
        return template.replace("{n}", str(n))[:200]
    return f"{template or playbook.name}{n}群"[:200]


def handle_full_pool(session: Session, live_code_id: int) -> None:
    """Every group of the code is full: ask for the next group once (see the module's doc)."""
    from qunyun.connectors.dispatch import request_action

    row = session.scalar(select(LiveCode).where(LiveCode.id == live_code_id).with_for_update())
    if row is None or row.full_since is None or row.full_task_id is not None:
        return  # gone, room again, or a person is on it already
    playbook = session.get(Playbook, row.playbook_id) if row.playbook_id is not None else None
    connection = _connection_of(session, row)
    if playbook is not None and connection is not None:
        profile = registry.profile_of(connection)
        if profile.has(Capability.CREATE_GROUP) and not profile.declaration_only:
            request_action(
                session,
                row.org_id,
                CreateGroup.kind,
                connection_id=connection.id,
                payload={"name": next_group_name(session, row, playbook)},
                idempotency_key=NEXT_GROUP_KEY.format(id=row.id, since=to_micros(row.full_since)),
            )
            return
    last_group = session.scalar(
        select(LiveCodeGroup.group_id)
        .where(LiveCodeGroup.live_code_id == row.id, LiveCodeGroup.active.is_(True))
        .order_by(LiveCodeGroup.position.desc(), LiveCodeGroup.id.desc())
        .limit(1)
    )
    task = open_task(
        session,
        org_id=row.org_id,
        kind=TaskKind.CREATE_GROUP,
        title=Msg("livecodes.task.create_group", name=row.name),
        detail={"live_code_id": row.id, "code": row.code, "playbook_id": row.playbook_id},
        group_id=last_group,
    )
    row.full_task_id = task.id
    session.flush()


@job_handler(POOL_FULL_JOB, payload=PoolFullPayload)
def pool_full(session: Session, payload: PoolFullPayload) -> None:
    handle_full_pool(session, payload.live_code_id)


@dataclass
class Pass:
    """What one :func:`maintain` pass did."""

    links: list[int] = field(default_factory=list)  # pool entries whose invite link was stored
    alerts: list[int] = field(default_factory=list)  # QR images whose owner got a task
    adopted: list[int] = field(default_factory=list)  # groups put into a pool


def maintain(session: Session, now: datetime, *, org_id: int | None = None) -> Pass:
    """One pass of the periodic work (see the module's doc)."""
    done = Pass()
    _store_links(session, done, org_id)
    _qr_alerts(session, now, done, org_id)
    _adopt_created_groups(session, now, done, org_id)
    return done


def _store_links(session: Session, done: Pass, org_id: int | None) -> None:
    query = (
        select(LiveCodeGroup, OutboundAction.external_ref)
        .join(OutboundAction, OutboundAction.id == LiveCodeGroup.invite_action_id)
        .where(
            LiveCodeGroup.invite_link.is_(None),
            OutboundAction.state.in_(LINK_STATES),
            OutboundAction.external_ref.is_not(None),
        )
    )
    if org_id is not None:
        query = query.where(LiveCodeGroup.org_id == org_id)
    for entry, ref in session.execute(query):
        entry.invite_link = ref
        done.links.append(entry.id)
        forget_group(entry.group_id)
    session.flush()


def _qr_alerts(session: Session, now: datetime, done: Pass, org_id: int | None) -> None:
    # Per group in an active pool: the longest warning any of its codes asks for.
    warn = (
        select(LiveCodeGroup.group_id, func.max(LiveCode.qr_alert_minutes).label("minutes"))
        .join(LiveCode, LiveCode.id == LiveCodeGroup.live_code_id)
        .where(LiveCodeGroup.active.is_(True))
        .group_by(LiveCodeGroup.group_id)
        .subquery()
    )
    query = (
        select(GroupQrImage, warn.c.minutes, Group.name, Organisation.time_zone)
        .join(warn, warn.c.group_id == GroupQrImage.group_id)
        .join(Group, Group.id == GroupQrImage.group_id)
        .join(Organisation, Organisation.id == GroupQrImage.org_id)
        .where(GroupQrImage.withdrawn_at.is_(None), GroupQrImage.alert_task_id.is_(None))
    )
    if org_id is not None:
        query = query.where(GroupQrImage.org_id == org_id)
    candidates = session.execute(query).all()
    if not candidates:
        return
    latest = dict(
        session.execute(
            select(GroupQrImage.group_id, func.max(GroupQrImage.expires_at))
            .where(
                GroupQrImage.group_id.in_({image.group_id for image, *_ in candidates}),
                GroupQrImage.withdrawn_at.is_(None),
            )
            .group_by(GroupQrImage.group_id)
        ).all()
    )
    for image, minutes, group_name, zone in candidates:
        if image.expires_at < latest[image.group_id]:
            continue  # a later image replaces it
        # The warning must come before the image stops being shown (SERVE_MARGIN before it expires).
        if image.expires_at - timedelta(minutes=minutes) - SERVE_MARGIN > now:
            continue
        local = image.expires_at.astimezone(ZoneInfo(zone or "Asia/Shanghai"))
        task = open_task(
            session,
            org_id=image.org_id,
            kind=TaskKind.QR_EXPIRY,
            title=Msg("livecodes.task.qr_expiry", group=group_name, expires=local.strftime("%Y-%m-%d %H:%M")),
            detail={"group_id": image.group_id, "image_id": image.id, "expires_at": image.expires_at.isoformat()},
            group_id=image.group_id,
            due_at=image.expires_at - SERVE_MARGIN,
        )
        image.alert_task_id = task.id
        done.alerts.append(image.id)
    session.flush()


def _adopt_created_groups(session: Session, now: datetime, done: Pass, org_id: int | None) -> None:
    """Put the groups created for full pools into them (creating the group's row if its
    ``group.created`` has not arrived yet: qunyun made the group, so it knows it)."""
    query = select(OutboundAction).where(
        OutboundAction.action == CreateGroup.kind.value,
        OutboundAction.idempotency_key.like("livecode:%:next-group:%"),
        OutboundAction.state.in_(LINK_STATES),
        OutboundAction.external_ref.is_not(None),
        OutboundAction.updated_at >= now - ADOPT_WITHIN,
    )
    if org_id is not None:
        query = query.where(OutboundAction.org_id == org_id)
    for action in session.scalars(query):
        live_code_id = int(action.idempotency_key.split(":")[1])
        row = session.get(LiveCode, live_code_id)
        connection = session.get(Connection, action.connection_id) if action.connection_id is not None else None
        if row is None or connection is None or action.external_ref is None:
            continue
        group = session.scalar(
            select(Group).where(
                Group.org_id == row.org_id,
                Group.platform == connection.platform,
                Group.external_id == action.external_ref,
            )
        )
        if group is not None and session.scalar(
            select(LiveCodeGroup.id).where(LiveCodeGroup.live_code_id == row.id, LiveCodeGroup.group_id == group.id)
        ):
            continue  # adopted already (or put in, or taken out, by a person)
        playbook = session.get(Playbook, row.playbook_id) if row.playbook_id is not None else None
        if group is None:
            group = Group(
                org_id=row.org_id,
                platform=connection.platform,
                external_id=action.external_ref,
                name=str(action.payload.get("name") or action.external_ref)[:200],
                connection_id=connection.id,
                community_id=playbook.community_id if playbook is not None else None,
                capacity=registry.profile_of(connection).limits.get("group_capacity", 500),
                member_count=0,
                status="active",
                created_at=now,
            )
            session.add(group)
            session.flush()
        if group.playbook_id is None and playbook is not None:
            group.playbook_id = playbook.id
            session.flush()
            from qunyun.sop.runs import apply_attached

            apply_attached(session, group.id, now=now)  # the playbook's SOP plans
        if group.owner_id is None:
            group.owner_id = _previous_owner(session, row.id)
        put_in_pool(session, row, group)
        done.adopted.append(group.id)
    session.flush()


def _previous_owner(session: Session, live_code_id: int) -> int | None:
    return session.scalar(
        select(Group.owner_id)
        .join(LiveCodeGroup, LiveCodeGroup.group_id == Group.id)
        .where(LiveCodeGroup.live_code_id == live_code_id, Group.owner_id.is_not(None))
        .order_by(LiveCodeGroup.position.desc(), LiveCodeGroup.id.desc())
        .limit(1)
    )


@periodic(MAINTAIN_JOB, every=timedelta(minutes=1), payload=MaintainPayload)
def maintain_job(session: Session, payload: MaintainPayload) -> None:
    done = maintain(session, utcnow())
    if done.links or done.alerts or done.adopted:
        log.info(
            "live codes: %d invite links stored, %d QR expiry tasks, %d groups adopted",
            len(done.links),
            len(done.alerts),
            len(done.adopted),
        )

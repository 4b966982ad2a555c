"""Live codes: create, read, change, pause; the pool of groups; group QR images with expiry.

Who sees what: leads and analysts every live code of the organisation; anyone else the codes
with a group of theirs in the pool (or that they created), and of a pool only their groups. Who
changes a code: a writer whose scope covers every group of its pool (leads always); a QR image
is uploaded by whoever may write the group. Codes of other organisations, and codes outside the
caller's view, are 404 like missing ones.

The scan path (``/c/{code}``) is in :mod:`qunyun.livecodes.routing`; this module is the staff's.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import record_by
from qunyun.auth.scope import Scope, group_visible, require_group, require_write, visible_group_ids
from qunyun.connectors import registry
from qunyun.connectors.actions import CreateInviteLink
from qunyun.connectors.base import Capability, PlatformProfile, get_profile
from qunyun.errors import Conflict, InvalidInput, NotFound
from qunyun.groups.service import count_rows
from qunyun.livecodes import routing

# Group QR images are the service's too (images.py): re-exported under their names.
from qunyun.livecodes.images import QR_DEFAULT_DAYS as QR_DEFAULT_DAYS
from qunyun.livecodes.images import current_qr_images as current_qr_images
from qunyun.livecodes.images import image_servable as image_servable
from qunyun.livecodes.images import qr_images as qr_images
from qunyun.livecodes.images import upload_qr_image as upload_qr_image
from qunyun.livecodes.images import withdraw_qr_image as withdraw_qr_image
from qunyun.livecodes.schemas import LiveCodeCreate, PoolEntryIn
from qunyun.livecodes.storage import store_qr_image
from qunyun.livecodes.threshold import parse_threshold
from qunyun.livecodes.work import close_task
from qunyun.locale import Msg
from qunyun.models import (
    Channel,
    Connection,
    Group,
    GroupQrImage,
    LiveCode,
    LiveCodeGroup,
    LiveCodeJoin,
    LiveCodeScan,
    LiveCodeVisitor,
    OutboundAction,
    OutboundState,
    Playbook,
    ScanOutcome,
    TaskStatus,
)
from qunyun.timeutil import utcnow

CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: read aloud or typed from a poster
CODE_LENGTH = 8
# A WeChat group QR stops letting people in after 200 joins through it, and expires after 7 days.
QR_SCAN_LIMIT = 200
LINK_STATES = (OutboundState.SENT.value, OutboundState.CONFIRMED.value)


def public_path(code: str) -> str:
    """The path of a code's scan page: ``/c/{code}``."""
    return f"/c/{code}"


def public_url(code: str, base_url: str) -> str:
    """The absolute URL of a code's scan page (what a poster's QR encodes), on ``base_url``."""
    return base_url.rstrip("/") + public_path(code)


# --- who sees and changes what ----------------------------------------------------------------


def _visible(scope: Scope) -> Any:
    """A WHERE clause on LiveCode limiting rows to what ``scope`` may see."""
    same_org = LiveCode.org_id == scope.org_id
    if scope.whole_org:
        return same_org
    mine = select(LiveCodeGroup.live_code_id).where(
        LiveCodeGroup.org_id == scope.org_id, LiveCodeGroup.group_id.in_(visible_group_ids(scope))
    )
    return and_(same_org, or_(LiveCode.id.in_(mine), LiveCode.created_by_id == scope.staff_id))


def get_live_code(session: Session, scope: Scope, live_code_id: int, *, write: bool = False) -> LiveCode:
    """The live code if ``scope`` may see it (else NotFound), and change it if ``write`` (else
    Forbidden: a read-only role, or a pool with groups outside the caller's scope)."""
    row = session.scalar(select(LiveCode).where(LiveCode.id == live_code_id, _visible(scope)))
    if row is None:
        raise NotFound(Msg("err.livecode.not_found", id=live_code_id), field="live_code_id")
    if write:
        _require_whole_pool(session, scope, row)
    return row


def get_by_code(session: Session, scope: Scope, code: str, *, write: bool = False) -> LiveCode:
    """:func:`get_live_code` by the public short code."""
    row_id = session.scalar(select(LiveCode.id).where(LiveCode.code == code, LiveCode.org_id == scope.org_id))
    if row_id is None:
        raise NotFound(Msg("err.livecode.no_code", code=code), field="code")
    return get_live_code(session, scope, row_id, write=write)


def _require_whole_pool(session: Session, scope: Scope, row: LiveCode) -> None:
    require_write(scope)
    if scope.whole_org:
        return
    outside = session.scalar(
        select(func.count())
        .select_from(LiveCodeGroup)
        .where(
            LiveCodeGroup.live_code_id == row.id,
            LiveCodeGroup.active.is_(True),
            LiveCodeGroup.group_id.not_in(visible_group_ids(scope)),
        )
    )
    if outside:
        from qunyun.errors import Forbidden

        raise Forbidden(Msg("err.livecode.not_your_pool"))


def _audit(
    session: Session,
    scope: Scope,
    action: str,
    row_id: int,
    detail: dict[str, Any],
    request: HTTPConnection | None,
) -> None:
    record_by(
        session,
        scope,
        action=action,
        target_type="live_code",
        target_id=row_id,
        detail=detail,
        request=request,
    )


# --- references -------------------------------------------------------------------------------


def _channel(session: Session, org_id: int, channel_id: int | None) -> Channel | None:
    if channel_id is None:
        return None
    channel = session.scalar(select(Channel).where(Channel.id == channel_id, Channel.org_id == org_id))
    if channel is None:
        raise InvalidInput(Msg("err.acquisition.no_channel", id=channel_id), field="channel_id")
    return channel


def _check_refs(session: Session, org_id: int, values: dict[str, Any]) -> None:
    if values.get("channel_id") is not None:
        _channel(session, org_id, values["channel_id"])
    if values.get("connection_id") is not None:
        found = session.scalar(
            select(Connection.id).where(Connection.id == values["connection_id"], Connection.org_id == org_id)
        )
        if found is None:
            raise InvalidInput(Msg("err.connection.not_found", id=values["connection_id"]), field="connection_id")
    if values.get("playbook_id") is not None:
        found = session.scalar(
            select(Playbook.id).where(Playbook.id == values["playbook_id"], Playbook.org_id == org_id)
        )
        if found is None:
            raise InvalidInput(Msg("err.livecode.no_playbook", id=values["playbook_id"]), field="playbook_id")
    if "threshold" in values:
        parsed = parse_threshold(values["threshold"])
        values["threshold"] = parsed.to_json() if parsed is not None else None


def _new_code(session: Session) -> str:
    for _ in range(20):
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if session.scalar(select(LiveCode.id).where(LiveCode.code == code)) is None:
            return code
    raise Conflict(Msg("err.livecode.code_space"))  # pragma: no cover - 31^8 codes


# --- live codes -------------------------------------------------------------------------------


def create_live_code(
    session: Session, scope: Scope, data: LiveCodeCreate, *, request: HTTPConnection | None = None
) -> LiveCode:
    """Create a live code with its pool (``data.group_ids``, in order; each must be visible to
    the caller). Invite links are requested for groups whose platform makes them."""
    require_write(scope)
    values = data.model_dump(exclude={"group_ids"})
    _check_refs(session, scope.org_id, values)
    groups = [require_group(session, scope, gid, write=True) for gid in dict.fromkeys(data.group_ids)]
    now = utcnow()
    row = LiveCode(
        org_id=scope.org_id,
        code=_new_code(session),
        created_by_id=scope.staff_id or None,
        created_at=now,
        updated_at=now,
        fallback_image=None,
        full_since=None,
        **values,
    )
    session.add(row)
    session.flush()
    for position, group in enumerate(groups):
        put_in_pool(session, row, group, position=position)
    _audit(session, scope, "live_code.create", row.id, {"code": row.code, "groups": len(groups)}, request)
    routing.forget(row.code)
    return row


def list_live_codes(session: Session, scope: Scope, *, limit: int = 50, offset: int = 0) -> tuple[list[LiveCode], int]:
    """The live codes ``scope`` sees, newest first, and how many there are."""
    query = select(LiveCode).where(_visible(scope))
    total = count_rows(session, query)
    rows = session.scalars(query.order_by(LiveCode.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def update_live_code(
    session: Session,
    scope: Scope,
    live_code_id: int,
    changes: dict[str, Any],
    *,
    request: HTTPConnection | None = None,
) -> LiveCode:
    """Change a live code's settings (name, channel, policy, hook, fallback, threshold, pause…);
    ``changes`` holds only the fields to change."""
    row = get_live_code(session, scope, live_code_id, write=True)
    changes = dict(changes)
    _check_refs(session, scope.org_id, changes)
    diff = {}
    for field, value in changes.items():
        if getattr(row, field) != value:
            diff[field] = value
            setattr(row, field, value)
    if diff:
        row.updated_at = utcnow()
        session.flush()
        shown = {k: v for k, v in diff.items() if k not in ("threshold", "hook_text", "fallback_text")}
        _audit(session, scope, "live_code.update", row.id, {"fields": sorted(diff), **shown}, request)
    routing.forget(row.code)
    return row


def set_paused(
    session: Session, scope: Scope, live_code_id: int, paused: bool, *, request: HTTPConnection | None = None
) -> LiveCode:
    """Pause a live code (scans get the fallback, nothing is routed) or resume it."""
    return update_live_code(session, scope, live_code_id, {"paused": paused}, request=request)


def set_fallback_image(
    session: Session,
    scope: Scope,
    live_code_id: int,
    data: bytes | None,
    *,
    request: HTTPConnection | None = None,
) -> LiveCode:
    """Set (or with None remove) the staff QR image shown when no group can take a visitor."""
    row = get_live_code(session, scope, live_code_id, write=True)
    path = None
    if data is not None:
        path, _ = store_qr_image(row.org_id, f"fallback-{row.id}", data, field="image")
    row.fallback_image = path
    row.updated_at = utcnow()
    session.flush()
    _audit(session, scope, "live_code.fallback_image", row.id, {"set": path is not None}, request)
    routing.forget(row.code)
    return row


# --- the pool ---------------------------------------------------------------------------------


def profile_of_group(session: Session, group: Group) -> PlatformProfile | None:
    """What the group's platform can do: its connection's profile, else the platform's declared
    one; None for groups of imported data (no platform to act through)."""
    if group.connection_id is not None:
        connection = session.get(Connection, group.connection_id)
        if connection is not None:
            try:
                return registry.profile_of(connection)
            except InvalidInput:
                return None
    try:
        return get_profile(group.platform)
    except InvalidInput:
        return None


def makes_invite_links(profile: PlatformProfile | None) -> bool:
    """Whether qunyun gets invite links for this platform's groups from its connector (the
    simulator, Telegram once its client exists); the others are served by uploaded QR images."""
    return profile is not None and profile.has(Capability.CREATE_INVITE_LINK) and not profile.declaration_only


def default_scan_limit(group: Group, profile: PlatformProfile | None) -> int:
    """The scan limit of a group added without one: its room (capacity minus members), and for
    groups entered through an uploaded QR image at most what such an image lets in (200 on WeChat)."""
    room = max(group.capacity - group.member_count, 1)
    if makes_invite_links(profile):
        return room
    cap = profile.limits.get("group_qr_scan_limit", QR_SCAN_LIMIT) if profile is not None else QR_SCAN_LIMIT
    return min(room, cap)


def put_in_pool(
    session: Session,
    row: LiveCode,
    group: Group,
    *,
    position: int | None = None,
    scan_limit: int | None = None,
    region: str | None = None,
) -> LiveCodeGroup:
    """Put ``group`` into the code's pool (or back into it), with no check of who asks (the
    callers check): its scan limit, position, invite link requested where the platform makes
    them; a group with room ends the pool's being full."""
    existing = session.scalar(
        select(LiveCodeGroup).where(LiveCodeGroup.live_code_id == row.id, LiveCodeGroup.group_id == group.id)
    )
    profile = profile_of_group(session, group)
    limit = scan_limit or row.default_limit or default_scan_limit(group, profile)
    explicit = position
    if position is None:
        last = session.scalar(select(func.max(LiveCodeGroup.position)).where(LiveCodeGroup.live_code_id == row.id))
        position = (last + 1) if last is not None else 0
    if existing is not None:
        if existing.active:
            raise Conflict(Msg("err.livecode.group_in_pool", group=group.name), field="group_id")
        entry = existing  # back into the pool: its count so far stays
        entry.active = True
        entry.position = position
        entry.scan_limit = max(limit, entry.routed) if scan_limit is None else scan_limit
        if region is not None:
            entry.region = region
    else:
        entry = LiveCodeGroup(
            org_id=row.org_id,
            live_code_id=row.id,
            group_id=group.id,
            position=position,
            scan_limit=limit,
            routed=0,
            region=group.region if region is None else region,
            active=True,
            added_at=utcnow(),
        )
        session.add(entry)
    session.flush()
    if explicit is not None:
        _reposition(session, row, entry, explicit)
        session.flush()
    if makes_invite_links(profile) and entry.invite_link is None:
        request_invite_link(session, row, entry, group, profile)
    if entry.routed < entry.scan_limit:
        _pool_has_room(session, row)
    routing.forget(row.code)
    return entry


def request_invite_link(
    session: Session, row: LiveCode, entry: LiveCodeGroup, group: Group, profile: PlatformProfile | None
) -> OutboundAction:
    """Ask the group's connector for an invite link (an outbound action: performed by a job,
    outside any transaction; its URL is the action's ``external_ref``). Member-limited to the
    entry's scan limit where the platform can; joins through it carry the code's channel."""
    from qunyun.connectors.dispatch import request_action

    payload: dict[str, Any] = {"name": f"qunyun {row.code}"[:32]}
    if row.join_request_policy != "direct" and profile is not None and profile.has(Capability.JOIN_REQUESTS):
        # joins through the link wait for approval (the code's policy decides them); such a
        # link has no member limit on Telegram, the pool's scan limit still routes visitors
        payload["join_request"] = True
    elif profile is not None and profile.has(Capability.INVITE_LINK_MEMBER_LIMIT):
        payload["member_limit"] = max(entry.scan_limit - entry.routed, 1)
    channel = _channel(session, row.org_id, row.channel_id)
    if channel is not None:
        payload["channel"] = channel.code
    attempt = session.scalar(
        select(func.count())
        .select_from(OutboundAction)
        .where(
            OutboundAction.org_id == row.org_id,
            OutboundAction.idempotency_key.like(f"livecode:{entry.id}:link:%"),
        )
    )
    action = request_action(
        session,
        row.org_id,
        CreateInviteLink.kind,
        group_id=group.id,
        payload=payload,
        idempotency_key=f"livecode:{entry.id}:link:{(attempt or 0) + 1}",
    )
    entry.invite_action_id = action.id
    session.flush()
    return action


def _pool_has_room(session: Session, row: LiveCode) -> None:
    """A group with room is in the pool again: the code is no longer full, and the owner's task
    "create the next group" is done."""
    if row.full_since is not None:
        row.full_since = None
    if row.full_task_id is not None:
        close_task(session, row.full_task_id, TaskStatus.DONE, {"by": "live_code", "live_code_id": row.id})
        row.full_task_id = None
    session.flush()


def _reposition(session: Session, row: LiveCode, entry: LiveCodeGroup, position: int) -> None:
    """Put ``entry`` at ``position`` (0: first) of the active pool, the others after it in their order."""
    others = [
        e
        for e in session.scalars(
            select(LiveCodeGroup)
            .where(LiveCodeGroup.live_code_id == row.id, LiveCodeGroup.active.is_(True))
            .order_by(LiveCodeGroup.position, LiveCodeGroup.id)
        )
        if e.id != entry.id
    ]
    others.insert(min(position, len(others)), entry)
    for index, e in enumerate(others):
        e.position = index


def add_group(
    session: Session,
    scope: Scope,
    live_code_id: int,
    data: PoolEntryIn,
    *,
    request: HTTPConnection | None = None,
) -> LiveCodeGroup:
    """Put a group into the pool (last, unless ``position``), with its scan limit (default: the
    code's, else capacity minus members, at most 200 for QR images)."""
    row = get_live_code(session, scope, live_code_id, write=True)
    group = require_group(session, scope, data.group_id, write=True)
    entry = put_in_pool(session, row, group, position=data.position, scan_limit=data.scan_limit, region=data.region)
    _audit(session, scope, "live_code.add_group", row.id, {"group_id": group.id, "limit": entry.scan_limit}, request)
    row.updated_at = utcnow()
    routing.forget(row.code)
    return entry


def _entry(session: Session, row: LiveCode, group_id: int) -> LiveCodeGroup:
    entry = session.scalar(
        select(LiveCodeGroup).where(
            LiveCodeGroup.live_code_id == row.id, LiveCodeGroup.group_id == group_id, LiveCodeGroup.active.is_(True)
        )
    )
    if entry is None:
        raise NotFound(Msg("err.livecode.not_in_pool", id=group_id), field="group_id")
    return entry


def update_group(
    session: Session,
    scope: Scope,
    live_code_id: int,
    group_id: int,
    changes: dict[str, Any],
    *,
    request: HTTPConnection | None = None,
) -> LiveCodeGroup:
    """Change a pool entry's scan limit, region or position. A limit below what was routed
    already stops the group taking scans (it never takes them back)."""
    row = get_live_code(session, scope, live_code_id, write=True)
    entry = _entry(session, row, group_id)
    for field in ("scan_limit", "region"):
        if changes.get(field) is not None:
            setattr(entry, field, changes[field])
    if changes.get("position") is not None:
        _reposition(session, row, entry, changes["position"])
    session.flush()
    if entry.routed < entry.scan_limit:
        _pool_has_room(session, row)
    _audit(session, scope, "live_code.update_group", row.id, {"group_id": group_id, **changes}, request)
    row.updated_at = utcnow()
    routing.forget(row.code)
    return entry


def remove_group(
    session: Session, scope: Scope, live_code_id: int, group_id: int, *, request: HTTPConnection | None = None
) -> None:
    """Take a group out of the pool (its scans and joins stay; visitors routed to it before are
    shown the fallback when they scan again)."""
    row = get_live_code(session, scope, live_code_id, write=True)
    entry = _entry(session, row, group_id)
    entry.active = False
    row.updated_at = utcnow()
    session.flush()
    _audit(session, scope, "live_code.remove_group", row.id, {"group_id": group_id}, request)
    routing.forget(row.code)


@dataclass(frozen=True)
class PoolItem:
    """A pool entry with what the console and API show next to it."""

    entry: LiveCodeGroup
    group: Group
    joined: int
    invite_link: str | None
    qr_image: GroupQrImage | None

    @property
    def servable(self) -> bool:
        return (
            self.entry.active
            and self.entry.routed < self.entry.scan_limit
            and (self.invite_link is not None or self.qr_image is not None)
        )


def pool(session: Session, scope: Scope, live_code_id: int, *, now: datetime | None = None) -> list[PoolItem]:
    """The code's pool in order (for staff who see some groups: their groups only), each entry
    with its group, joins attributed to it, invite link and the QR image shown now."""
    row = get_live_code(session, scope, live_code_id)
    now = now or utcnow()
    rows = session.execute(
        select(LiveCodeGroup, Group)
        .join(Group, Group.id == LiveCodeGroup.group_id)
        .where(LiveCodeGroup.live_code_id == row.id, group_visible(scope))
        .order_by(LiveCodeGroup.active.desc(), LiveCodeGroup.position, LiveCodeGroup.id)
    ).all()
    group_ids = [g.id for _, g in rows]
    joined = joins_by_group(session, row.id)
    links = invite_links(session, [e for e, _ in rows])
    images = current_qr_images(session, group_ids, now=now)
    return [PoolItem(e, g, joined.get(g.id, 0), links.get(e.id), images.get(g.id)) for e, g in rows]


def invite_links(session: Session, entries: Sequence[LiveCodeGroup]) -> dict[int, str]:
    """The invite link of each entry that has one (by entry id): stored on the entry, or the URL
    its CreateInviteLink action got from the platform."""
    out: dict[int, str] = {e.id: e.invite_link for e in entries if e.invite_link}
    pending = {e.invite_action_id: e.id for e in entries if not e.invite_link and e.invite_action_id}
    if pending:
        for action_id, ref in session.execute(
            select(OutboundAction.id, OutboundAction.external_ref).where(
                OutboundAction.id.in_(list(pending)),
                OutboundAction.state.in_(LINK_STATES),
                OutboundAction.external_ref.is_not(None),
            )
        ):
            if ref:
                out[pending[action_id]] = ref
    return out


def joins_by_group(session: Session, live_code_id: int) -> dict[int, int]:
    """Joins attributed to the code, per group id."""
    rows = session.execute(
        select(LiveCodeJoin.group_id, func.count())
        .where(LiveCodeJoin.live_code_id == live_code_id)
        .group_by(LiveCodeJoin.group_id)
    )
    return {int(g): int(n) for g, n in rows}


def list_figures(session: Session, scope: Scope, live_code_ids: Collection[int]) -> dict[int, tuple[int, int]]:
    """For the list of codes, per live code id: the active groups of its pool the caller sees,
    and the joins attributed to it. Two queries however many codes (the list page used to walk
    each code's pool)."""
    ids = list(live_code_ids)
    if not ids:
        return {}
    active = {
        int(code_id): int(n)
        for code_id, n in session.execute(
            select(LiveCodeGroup.live_code_id, func.count())
            .join(Group, Group.id == LiveCodeGroup.group_id)
            .where(LiveCodeGroup.live_code_id.in_(ids), LiveCodeGroup.active.is_(True), group_visible(scope))
            .group_by(LiveCodeGroup.live_code_id)
        )
    }
    joined = {
        int(code_id): int(n)
        for code_id, n in session.execute(
            select(LiveCodeJoin.live_code_id, func.count())
            .where(LiveCodeJoin.live_code_id.in_(ids))
            .group_by(LiveCodeJoin.live_code_id)
        )
    }
    return {i: (active.get(i, 0), joined.get(i, 0)) for i in ids}


# --- figures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    scans: int
    visitors: int
    fallback: int


def counts(session: Session, live_code_ids: Collection[int]) -> dict[int, Counts]:
    """Scans, distinct visitors and scans served the fallback, per live code id."""
    if not live_code_ids:
        return {}
    rows = session.execute(
        select(
            LiveCodeScan.live_code_id,
            func.count(),
            func.count(func.distinct(LiveCodeScan.visitor)),
            func.sum(case((LiveCodeScan.outcome == ScanOutcome.FALLBACK.value, 1), else_=0)),
        )
        .where(LiveCodeScan.live_code_id.in_(list(live_code_ids)))
        .group_by(LiveCodeScan.live_code_id)
    )
    out = {int(i): Counts(int(s), int(v), int(f or 0)) for i, s, v, f in rows}
    return {i: out.get(i, Counts(0, 0, 0)) for i in live_code_ids}


def summary(session: Session, scope: Scope, live_code_id: int) -> dict[str, Any]:
    """What ``qunyun livecodes show --format json`` prints: ``{"code", "scans", "visitors",
    "fallback", "groups": [{"group": EXT, "routed", "limit", "joined"}]}``."""
    row = get_live_code(session, scope, live_code_id)
    c = counts(session, [row.id])[row.id]
    groups = [
        {
            "group": item.group.external_id,
            "routed": item.entry.routed,
            "limit": item.entry.scan_limit,
            "joined": item.joined,
        }
        for item in pool(session, scope, row.id)
        if item.entry.active or item.entry.routed
    ]
    return {"code": row.code, "scans": c.scans, "visitors": c.visitors, "fallback": c.fallback, "groups": groups}


def list_scans(
    session: Session,
    scope: Scope,
    live_code_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> list[LiveCodeScan]:
    """The code's scans, oldest first (a cursor page after ``after_id``). Staff who see some
    groups see the scans routed to their groups only."""
    row = get_live_code(session, scope, live_code_id)
    query = select(LiveCodeScan).where(LiveCodeScan.live_code_id == row.id)
    if not scope.whole_org:
        query = query.where(LiveCodeScan.group_id.in_(visible_group_ids(scope)))
    if since is not None:
        query = query.where(LiveCodeScan.at >= since)
    if until is not None:
        query = query.where(LiveCodeScan.at < until)
    if after_id is not None:
        query = query.where(LiveCodeScan.id > after_id)
    return list(session.scalars(query.order_by(LiveCodeScan.id).limit(limit)))


def visitors_count(session: Session, live_code_id: int) -> int:
    return session.scalar(select(func.count()).where(LiveCodeVisitor.live_code_id == live_code_id)) or 0

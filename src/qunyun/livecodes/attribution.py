"""Lookups for attributing joins to scans (the funnel's matching calls these), and the record of
an attributed join (``live_code_joins``: the membership's channel and live code).

- By link: a platform that reports the invite link a member used (the simulator, Telegram) names
  the pool entry whose link it is: :func:`entry_for_link`, then :func:`first_scans` of that
  group through that link before the join.
- By time window: otherwise the first scans routed to the group shortly before the join:
  :func:`first_scans` with ``since``/``until``, latest first, those already matched left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from qunyun.db.unique import try_insert
from qunyun.models import LiveCode, LiveCodeGroup, LiveCodeJoin, LiveCodeScan, LiveCodeVisitor, OutboundAction


@dataclass(frozen=True)
class LinkEntry:
    """The pool entry an invite link belongs to."""

    live_code_id: int
    channel_id: int | None
    group_id: int
    entry_id: int


@dataclass(frozen=True)
class ScanRef:
    """A first scan routed to a group: what a join can be matched to."""

    scan_id: int
    live_code_id: int
    channel_id: int | None
    visitor: str
    group_id: int
    at: datetime
    invite_link: str | None


def entry_for_link(session: Session, org_id: int, link: str) -> LinkEntry | None:
    """The live code, channel and group of an invite link made for a pool (None: not ours)."""
    row = session.execute(
        select(LiveCodeGroup.live_code_id, LiveCode.channel_id, LiveCodeGroup.group_id, LiveCodeGroup.id)
        .join(LiveCode, LiveCode.id == LiveCodeGroup.live_code_id)
        .outerjoin(OutboundAction, OutboundAction.id == LiveCodeGroup.invite_action_id)
        .where(
            LiveCodeGroup.org_id == org_id,
            or_(LiveCodeGroup.invite_link == link, OutboundAction.external_ref == link),
        )
        .order_by(LiveCodeGroup.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return LinkEntry(int(row[0]), row[1], int(row[2]), int(row[3]))


def first_scans(
    session: Session,
    org_id: int,
    group_id: int,
    *,
    until: datetime,
    since: datetime | None = None,
    live_code_id: int | None = None,
    link: str | None = None,
    unmatched: bool = True,
    limit: int = 50,
) -> list[ScanRef]:
    """First scans routed to ``group_id`` at or before ``until`` (and after ``since``), latest
    first; only those through ``link`` / of ``live_code_id`` when given, and with ``unmatched``
    only those no join was attributed to yet."""
    query = select(
        LiveCodeScan.id,
        LiveCodeScan.live_code_id,
        LiveCodeScan.channel_id,
        LiveCodeScan.visitor,
        LiveCodeScan.group_id,
        LiveCodeScan.at,
        LiveCodeScan.invite_link,
    ).where(
        LiveCodeScan.org_id == org_id,
        LiveCodeScan.group_id == group_id,
        LiveCodeScan.first.is_(True),
        LiveCodeScan.at <= until,
    )
    if since is not None:
        query = query.where(LiveCodeScan.at >= since)
    if live_code_id is not None:
        query = query.where(LiveCodeScan.live_code_id == live_code_id)
    if link is not None:
        query = query.where(LiveCodeScan.invite_link == link)
    if unmatched:
        matched = select(LiveCodeJoin.id).where(
            and_(LiveCodeJoin.org_id == org_id, LiveCodeJoin.scan_id == LiveCodeScan.id)
        )
        query = query.where(~matched.exists())
    rows = session.execute(query.order_by(LiveCodeScan.at.desc(), LiveCodeScan.id.desc()).limit(limit))
    return [ScanRef(int(r[0]), int(r[1]), r[2], r[3], int(r[4] or 0), r[5], r[6]) for r in rows]


def record_join(
    session: Session,
    *,
    org_id: int,
    live_code_id: int,
    group_id: int,
    member_id: int,
    event_id: int,
    joined_at: datetime,
    matched_by: str,
    channel_id: int | None = None,
    scan_id: int | None = None,
) -> bool:
    """Attribute the join ``event_id`` to a live code (and its scan); once per join event (a
    repeated call changes nothing and returns False). The scan's visitor is then known to be
    ``member_id`` (the blacklist check of later scans uses it)."""
    inserted = try_insert(
        session,
        LiveCodeJoin(
            org_id=org_id,
            live_code_id=live_code_id,
            channel_id=channel_id,
            group_id=group_id,
            member_id=member_id,
            event_id=event_id,
            scan_id=scan_id,
            matched_by=matched_by,
            joined_at=joined_at,
        ),
    )
    if inserted and scan_id is not None:
        visitor = session.scalar(select(LiveCodeScan.visitor).where(LiveCodeScan.id == scan_id))
        if visitor is not None:
            session.execute(
                update(LiveCodeVisitor)
                .where(LiveCodeVisitor.live_code_id == live_code_id, LiveCodeVisitor.visitor == visitor)
                .values(member_id=member_id)
            )
    return inserted


def join_of_event(session: Session, org_id: int, event_id: int) -> LiveCodeJoin | None:
    """The attribution of a join event, if it has one."""
    return session.scalar(select(LiveCodeJoin).where(LiveCodeJoin.org_id == org_id, LiveCodeJoin.event_id == event_id))

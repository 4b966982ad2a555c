"""Attribution: each live join is matched to the live-code scan that brought the member, so the
membership carries its channel and live code (``live_code_joins``; docs/acquisition.md).

1. **By link**: the platform names the invite link the member used (``member.joined`` field
   ``link``: the simulator, Telegram). A link a live code asked for belongs to one group of its
   pool, so the live code and its channel are certain; the scan is the latest first scan through
   that link of that group before the join, not matched yet (the platform does not say which
   visitor it was).
2. **By invitation** (Matrix: joins carry no link): the member was invited by their platform id
   from a live code's page (``livecodes/invitations.py``) into this group within the last 7
   days; the join belongs to that code, its channel and the visitor's first scan.
3. **By time window** otherwise (WeChat QR images, platforms that do not say): the latest first
   scan routed to the join's group within :data:`WINDOW` before the join and not matched yet;
   when the join names a channel, only scans of that channel. Joins with an inviter (scene
   ``invite``: pulled in by a member) are not scans and are left alone.

A join is attributed at most once, and a scan to one join at most. Runs inline in the ingest
transaction (a lookup or two per join; nothing at all for organisations without live codes).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.ingestion.followups import LiveEvent, follow_up
from qunyun.livecodes.attribution import entry_for_link, first_scans, record_join
from qunyun.livecodes.invitations import match_join
from qunyun.models import LiveCode
from qunyun.models.event import EventKind

# How long before a join a scan may be to be its scan, when the platform does not name the link.
WINDOW = timedelta(minutes=30)
# How many candidate scans the window match looks at when the join names a channel.
CANDIDATES = 20


@follow_up(EventKind.MEMBER_JOINED)
def attribute_joins(session: Session, org_id: int, events: list[LiveEvent]) -> None:
    """Match each new join to its scan (by link, else by time window) and record it."""
    joins = [e for e in events if e.group_id is not None and e.member_id is not None]
    if not joins or session.scalar(select(LiveCode.id).where(LiveCode.org_id == org_id).limit(1)) is None:
        return
    for event in sorted(joins, key=lambda e: (e.ts, e.event_id)):
        attribute(session, org_id, event)


def attribute(session: Session, org_id: int, event: LiveEvent) -> str | None:
    """Attribute one join; returns how (``link``, ``invitation`` or ``window``), or None when no scan or link
    of a live code explains it."""
    group_id, member_id = event.group_id, event.member_id
    assert group_id is not None and member_id is not None

    def matched(how: str, live_code_id: int, channel_id: int | None, scan_id: int | None) -> str:
        record_join(
            session,
            org_id=org_id,
            live_code_id=live_code_id,
            channel_id=channel_id,
            group_id=group_id,
            member_id=member_id,
            event_id=event.event_id,
            joined_at=event.at,
            matched_by=how,
            scan_id=scan_id,
        )
        return how

    if event.link:
        entry = entry_for_link(session, org_id, event.link)
        if entry is not None and entry.group_id == group_id:
            scans = first_scans(
                session, org_id, group_id, until=event.at, live_code_id=entry.live_code_id, link=event.link, limit=1
            )
            return matched("link", entry.live_code_id, entry.channel_id, scans[0].scan_id if scans else None)
    invited = match_join(session, org_id, group_id, member_id, event.event_id, event.at)
    if invited is not None:
        return matched("invitation", invited.live_code_id, invited.channel_id, invited.scan_id)
    if event.scene == "invite" or event.inviter_id is not None:
        return None
    candidates = first_scans(
        session,
        org_id,
        group_id,
        until=event.at,
        since=event.at - WINDOW,
        limit=CANDIDATES if event.channel_id is not None else 1,
    )
    scan = next((s for s in candidates if event.channel_id is None or s.channel_id == event.channel_id), None)
    if scan is None:
        return None
    return matched("window", scan.live_code_id, scan.channel_id, scan.scan_id)

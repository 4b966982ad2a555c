"""The scan path of ``GET /c/{code}``: which group a visitor is shown, counted once, never past a
group's limit, with several server processes on one database.

- **The code's pool is cached** per process (:data:`CACHE_SECONDS`): the code, its fallback and
  threshold, each active group with its limit, invite link and the QR image shown now. Staff
  changes made through this process drop the entry at once; other processes see them within the
  cache's lifetime. A group found full is marked so in the cache, and skipped until reloaded.
- **Scans share transactions** (``lane.py``): the chosen group's place is taken from its
  counter under the row's lock (:class:`Writes`: a batch locks the row once, takes the places
  its scans may need, gives back the rest before it commits, so ``routed`` never passes
  ``scan_limit``; on SQLite the write lock serializes the batches), the next group is tried when
  one is full, and the scan and visitor rows of the batch are inserted together.
- **A visitor who scans again** (cookie ``qy_v``) is looked up in ``live_code_visitors``
  (unique per code and visitor) and gets the same group, uncounted. Two first scans of one
  visitor racing each other meet at that unique key: the loser sees the winner's row.
- An image expired or expiring within :data:`SERVE_MARGIN` is never shown; a group without an
  invite link or such an image is skipped (not counted).
- When every group is full the fallback is served and, once (``live_codes.full_since`` set by
  one conditional UPDATE), a job asks for the next group (``livecodes.jobs``).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from qunyun.db.base import to_micros
from qunyun.livecodes import blacklist
from qunyun.livecodes.threshold import Threshold, Verdict, check_answers, parse_threshold
from qunyun.livecodes.visitors import ip_prefix, ua_class
from qunyun.livecodes.writes import INSERT_SCAN_ID, Writes
from qunyun.models import (
    Channel,
    Connection,
    Group,
    GroupQrImage,
    LiveCode,
    LiveCodeGroup,
    LiveCodeScan,
    LiveCodeVisitor,
    OutboundAction,
    OutboundState,
    RoutingPolicy,
    ScanOutcome,
)
from qunyun.timeutil import utcnow

# An image that expires sooner than this is not shown: the visitor must have time to scan it.
SERVE_MARGIN = timedelta(hours=1)
CACHE_SECONDS = 5.0
POOL_FULL_JOB = "livecodes.pool_full"
_LINK_STATES = (OutboundState.SENT.value, OutboundState.CONFIRMED.value)


@dataclass
class Entry:
    """A group of the pool, as cached."""

    id: int
    group_id: int
    group_name: str
    scan_limit: int
    region: str
    invite_link: str | None
    image_id: int | None
    image_expires_at: datetime | None
    full: bool = False
    platform: str = ""  # the platform of the group's connection ("": none)

    def servable(self, now: datetime) -> bool:
        """Whether a visitor can be shown a way in: an invite link, or an image not about to expire."""
        if self.invite_link:
            return True
        return self.image_expires_at is not None and self.image_expires_at > now + SERVE_MARGIN


@dataclass
class CachedCode:
    id: int
    org_id: int
    code: str
    name: str
    channel_id: int | None
    channel_name: str | None
    policy: str
    paused: bool
    hook_text: str
    fallback_url: str
    fallback_image: str | None
    fallback_text: str
    threshold: Threshold | None
    entries: list[Entry]
    loaded_at: float = field(default_factory=time.monotonic)

    def entry(self, entry_id: int | None) -> Entry | None:
        return next((e for e in self.entries if e.id == entry_id), None)


_lock = threading.Lock()
_cache: dict[str, CachedCode] = {}
_turns: dict[int, itertools.count[int]] = {}


def forget(code: str | None = None) -> None:
    """Drop a code from this process's cache (all codes without one)."""
    with _lock:
        if code is None:
            _cache.clear()
        else:
            _cache.pop(code, None)


def forget_group(group_id: int) -> None:
    """Drop every cached code whose pool holds the group (its QR image changed)."""
    with _lock:
        for key in [k for k, c in _cache.items() if any(e.group_id == group_id for e in c.entries)]:
            _cache.pop(key, None)


def load(session: Session, code: str) -> CachedCode | None:
    """The code's pool from the database (None: no such code)."""
    row = session.execute(
        select(LiveCode, Channel.name)
        .outerjoin(Channel, Channel.id == LiveCode.channel_id)
        .where(LiveCode.code == code)
    ).first()
    if row is None:
        return None
    lc, channel_name = row
    rows = session.execute(
        select(
            LiveCodeGroup.id,
            LiveCodeGroup.group_id,
            Group.name,
            LiveCodeGroup.scan_limit,
            LiveCodeGroup.routed,
            LiveCodeGroup.region,
            LiveCodeGroup.invite_link,
            OutboundAction.external_ref,
            Connection.platform,
        )
        .join(Group, Group.id == LiveCodeGroup.group_id)
        .outerjoin(Connection, Connection.id == Group.connection_id)
        .outerjoin(
            OutboundAction,
            and_(
                OutboundAction.id == LiveCodeGroup.invite_action_id,
                OutboundAction.state.in_(_LINK_STATES),
            ),
        )
        .where(LiveCodeGroup.live_code_id == lc.id, LiveCodeGroup.active.is_(True))
        .order_by(LiveCodeGroup.position, LiveCodeGroup.id)
    ).all()
    images: dict[int, tuple[int, datetime]] = {}
    if rows:
        for image_id, group_id, expires_at in session.execute(
            select(GroupQrImage.id, GroupQrImage.group_id, GroupQrImage.expires_at)
            .where(
                GroupQrImage.group_id.in_({r.group_id for r in rows}),
                GroupQrImage.withdrawn_at.is_(None),
                GroupQrImage.expires_at > utcnow() + SERVE_MARGIN,
            )
            .order_by(GroupQrImage.expires_at, GroupQrImage.id)
        ):
            images[group_id] = (image_id, expires_at)  # the one expiring last wins
    entries = [
        Entry(
            id=r.id,
            group_id=r.group_id,
            group_name=r.name,
            scan_limit=r.scan_limit,
            region=r.region,
            invite_link=r.invite_link or r.external_ref,
            image_id=images[r.group_id][0] if r.group_id in images else None,
            image_expires_at=images[r.group_id][1] if r.group_id in images else None,
            full=r.routed >= r.scan_limit,
            platform=r.platform or "",
        )
        for r in rows
    ]
    return CachedCode(
        id=lc.id,
        org_id=lc.org_id,
        code=lc.code,
        name=lc.name,
        channel_id=lc.channel_id,
        channel_name=channel_name,
        policy=lc.policy,
        paused=lc.paused,
        hook_text=lc.hook_text,
        fallback_url=lc.fallback_url,
        fallback_image=lc.fallback_image,
        fallback_text=lc.fallback_text,
        threshold=parse_threshold(lc.threshold) if lc.threshold else None,
        entries=entries,
    )


def cached(session: Session, code: str) -> CachedCode | None:
    """The code's pool from this process's cache, loaded when missing or older than the cache's
    lifetime."""
    hit = _cache.get(code)
    if hit is not None and time.monotonic() - hit.loaded_at < CACHE_SECONDS:
        return hit
    loaded = load(session, code)
    with _lock:
        if loaded is None:
            _cache.pop(code, None)
        else:
            _cache[code] = loaded
    return loaded


# --- the outcome of a scan ----------------------------------------------------------------------


@dataclass
class ScanResult:
    """What the scan page shows. ``outcome`` is a ScanOutcome (or ``"not_found"``)."""

    outcome: str
    code: CachedCode | None
    visitor: str
    scan_id: int | None = None
    entry: Entry | None = None
    # The form of the threshold again, naming the question left unanswered.
    missing: str | None = None

    @property
    def invite_link(self) -> str | None:
        return self.entry.invite_link if self.entry is not None else None

    @property
    def image_id(self) -> int | None:
        return self.entry.image_id if self.entry is not None and not self.entry.invite_link else None


@dataclass(frozen=True)
class Visit:
    """Who scans: the visitor id (from the cookie, or new) and what the scan records of them."""

    visitor: str
    known: bool  # the id came from the visitor's cookie (they may have scanned before)
    user_agent: str | None = None
    ip: str | None = None
    region: str = ""


def scan(
    session: Session, code: str, visit: Visit, *, now: datetime | None = None, writes: Writes | None = None
) -> ScanResult:
    """Serve one scan of ``code`` in the caller's transaction (which commits it): a repeat scan
    gets the visitor's group again, a first scan is routed (or shown the threshold first).
    With ``writes``, its rows wait there for the batch's flush; without, they are written now."""
    now = now or utcnow()
    own = writes is None
    w = writes if writes is not None else Writes()
    result = _scan(session, code, visit, now, w)
    if own:
        w.flush(session)
    return result


def _scan(session: Session, code: str, visit: Visit, now: datetime, writes: Writes) -> ScanResult:
    cc = cached(session, code)
    if cc is None:
        return ScanResult("not_found", None, visit.visitor)
    previous = _previous(session, cc, visit) if visit.known else None
    if previous is not None and previous.blocked:
        return _record(cc, visit, ScanOutcome.BLOCKED, now, writes)
    if previous is not None and previous.routed:
        return _repeat(cc, visit, previous.entry_id, now, writes)
    if cc.paused:
        return _record(cc, visit, ScanOutcome.PAUSED, now, writes)
    if cc.threshold is not None:
        values = _scan_values(cc, visit, ScanOutcome.QUESTION, now)
        scan_id = session.connection().execute(INSERT_SCAN_ID, values).scalar_one()
        return ScanResult(ScanOutcome.QUESTION.value, cc, visit.visitor, scan_id=int(scan_id))
    return _first_scan(session, cc, visit, now, writes, answers=None, claimed=not visit.known)


def answer(
    session: Session,
    code: str,
    visit: Visit,
    scan_id: int,
    form: dict[str, str],
    *,
    now: datetime | None = None,
    writes: Writes | None = None,
) -> ScanResult:
    """The visitor's answers to the threshold shown by scan ``scan_id``: routed when they pass
    (the same scan becomes the first scan), refused politely when they do not."""
    now = now or utcnow()
    own = writes is None
    w = writes if writes is not None else Writes()
    result = _answer(session, code, visit, scan_id, form, now, w)
    if own:
        w.flush(session)
    return result


def _answer(
    session: Session, code: str, visit: Visit, scan_id: int, form: dict[str, str], now: datetime, writes: Writes
) -> ScanResult:
    cc = cached(session, code)
    if cc is None:
        return ScanResult("not_found", None, visit.visitor)
    shown = session.scalar(
        select(LiveCodeScan.id).where(
            LiveCodeScan.id == scan_id,
            LiveCodeScan.live_code_id == cc.id,
            LiveCodeScan.visitor == visit.visitor,
            LiveCodeScan.outcome.in_((ScanOutcome.QUESTION.value, ScanOutcome.REFUSED.value)),
        )
    )
    if shown is None:  # a stale or forged form: start again, as a scan
        return _scan(session, code, visit, now, writes)
    previous = _previous(session, cc, visit)
    if previous is not None and previous.blocked:
        return _record(cc, visit, ScanOutcome.BLOCKED, now, writes)
    if previous is not None and previous.routed:
        return _repeat(cc, visit, previous.entry_id, now, writes)
    if cc.paused:
        return _record(cc, visit, ScanOutcome.PAUSED, now, writes)
    if cc.threshold is None:
        return _first_scan(session, cc, visit, now, writes, answers=None, scan_id=scan_id)
    verdict: Verdict = check_answers(cc.threshold, form)
    if verdict.missing is not None:
        return ScanResult(ScanOutcome.QUESTION.value, cc, visit.visitor, scan_id=scan_id, missing=verdict.missing)
    if not verdict.passed:
        session.execute(
            update(LiveCodeScan)
            .where(LiveCodeScan.id == scan_id)
            .values(outcome=ScanOutcome.REFUSED.value, answers=verdict.answers)
        )
        return ScanResult(ScanOutcome.REFUSED.value, cc, visit.visitor, scan_id=scan_id)
    region = verdict.region or visit.region
    visit = Visit(visit.visitor, visit.known, visit.user_agent, visit.ip, region)
    return _first_scan(session, cc, visit, now, writes, answers=verdict.answers, scan_id=scan_id)


@dataclass(frozen=True)
class _Previous:
    routed: bool  # the visitor has a row for this code: their first scan was decided
    entry_id: int | None
    blocked: bool


def _previous(session: Session, cc: CachedCode, visit: Visit) -> _Previous | None:
    """The visitor's rows (every code of the organisation): their group here, and whether a
    member they turned out to be is blacklisted."""
    rows = session.execute(
        select(LiveCodeVisitor.live_code_id, LiveCodeVisitor.entry_id, LiveCodeVisitor.member_id).where(
            LiveCodeVisitor.visitor == visit.visitor, LiveCodeVisitor.org_id == cc.org_id
        )
    ).all()
    if not rows:
        return None
    members = sorted({r.member_id for r in rows if r.member_id is not None})
    blocked = bool(members) and blacklist.is_blacklisted(session, cc.org_id, members)
    here = next((r for r in rows if r.live_code_id == cc.id), None)
    return _Previous(here is not None, here.entry_id if here is not None else None, blocked)


def _scan_values(cc: CachedCode, visit: Visit, outcome: ScanOutcome, now: datetime) -> dict[str, Any]:
    return {
        "org_id": cc.org_id,
        "live_code_id": cc.id,
        "channel_id": cc.channel_id,
        "visitor": visit.visitor,
        "at": to_micros(now),
        "outcome": outcome.value,
        "first": False,
        "group_id": None,
        "invite_link": None,
        "ua_class": ua_class(visit.user_agent),
        "ip_prefix": ip_prefix(visit.ip),
        "answers": None,
    }


def _record(cc: CachedCode, visit: Visit, outcome: ScanOutcome, now: datetime, writes: Writes) -> ScanResult:
    writes.scans.append(_scan_values(cc, visit, outcome, now))
    return ScanResult(outcome.value, cc, visit.visitor)


def _repeat(cc: CachedCode, visit: Visit, entry_id: int | None, now: datetime, writes: Writes) -> ScanResult:
    """A visitor seen before: their group again (if it still takes them), uncounted."""
    entry = cc.entry(entry_id)
    servable = entry is not None and entry.servable(now)
    values = _scan_values(cc, visit, ScanOutcome.ROUTED if servable else ScanOutcome.FALLBACK, now)
    if servable:
        assert entry is not None
        values["group_id"] = entry.group_id
        values["invite_link"] = entry.invite_link
    writes.scans.append(values)
    return ScanResult(values["outcome"], cc, visit.visitor, entry=entry if servable else None)


def _candidates(cc: CachedCode, region: str) -> list[Entry]:
    """The pool in the order the policy tries it."""
    entries = list(cc.entries)
    if cc.policy == RoutingPolicy.ROUND_ROBIN and entries:
        with _lock:
            turn = next(_turns.setdefault(cc.id, itertools.count()))
        start = turn % len(entries)
        return entries[start:] + entries[:start]
    if cc.policy == RoutingPolicy.REGION and region:
        wanted = region.strip().casefold()
        mine = [e for e in entries if e.region and e.region.casefold() == wanted]
        anywhere = [e for e in entries if not e.region]
        others = [e for e in entries if e.region and e.region.casefold() != wanted]
        return mine + anywhere + others
    return entries


def _claim(session: Session, cc: CachedCode, visit: Visit, now: datetime) -> bool:
    """Insert the visitor's row for this code unless a concurrent scan of theirs did first."""
    values = {
        "org_id": cc.org_id,
        "live_code_id": cc.id,
        "visitor": visit.visitor,
        "first_at": to_micros(now),
        "region": visit.region[:64],
    }
    dialect = session.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(LiveCodeVisitor).values(values)
    result = session.execute(stmt.on_conflict_do_nothing(index_elements=["live_code_id", "visitor"]))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _first_scan(
    session: Session,
    cc: CachedCode,
    visit: Visit,
    now: datetime,
    writes: Writes,
    *,
    answers: dict[str, str] | None,
    claimed: bool = False,
    scan_id: int | None = None,
) -> ScanResult:
    """Route a visitor's first scan: the first group (in the policy's order) that can show them a
    way in and still has room takes it; else the fallback. ``claimed``: the visitor is new (a
    fresh id), so nobody else can be scanning as them; else their row is claimed first."""
    if not claimed and not _claim(session, cc, visit, now):
        # A concurrent first scan of the same visitor won: theirs is the group.
        entry_id = session.scalar(
            select(LiveCodeVisitor.entry_id).where(
                LiveCodeVisitor.live_code_id == cc.id, LiveCodeVisitor.visitor == visit.visitor
            )
        )
        return _repeat(cc, visit, entry_id, now, writes)
    chosen: Entry | None = None
    for entry in _candidates(cc, visit.region):
        if entry.full or not entry.servable(now):
            continue
        if writes.take_place(session, entry.id):
            chosen = entry
            break
        entry.full = True  # another scan took its last place; skipped until the cache reloads
    if chosen is None and all(e.full for e in cc.entries):
        _mark_full(session, cc, now)
    outcome = ScanOutcome.ROUTED if chosen is not None else ScanOutcome.FALLBACK
    values = _scan_values(cc, visit, outcome, now)
    values.update(
        first=True,
        group_id=chosen.group_id if chosen else None,
        invite_link=chosen.invite_link if chosen else None,
        answers=answers,
    )
    if scan_id is None:
        writes.scans.append(values)
    else:  # the scan that showed the threshold becomes the first scan, and keeps its time
        values.pop("at")
        session.execute(update(LiveCodeScan).where(LiveCodeScan.id == scan_id).values(values))
    entry_id, group_id = (chosen.id, chosen.group_id) if chosen else (None, None)
    if claimed:
        writes.visitors.append(
            {
                "org_id": cc.org_id,
                "live_code_id": cc.id,
                "visitor": visit.visitor,
                "first_at": to_micros(now),
                "region": visit.region[:64],
                "entry_id": entry_id,
                "group_id": group_id,
                "member_id": None,
            }
        )
    else:
        session.execute(
            update(LiveCodeVisitor)
            .where(LiveCodeVisitor.live_code_id == cc.id, LiveCodeVisitor.visitor == visit.visitor)
            .values(entry_id=entry_id, group_id=group_id)
        )
    return ScanResult(outcome.value, cc, visit.visitor, scan_id=scan_id, entry=chosen)


def _mark_full(session: Session, cc: CachedCode, now: datetime) -> None:
    """Every group is full: the first scan to see it marks the code (one conditional UPDATE) and
    enqueues the job that asks for the next group, so that happens once, not once per scan."""
    from qunyun.worker.queue import enqueue

    result = session.execute(
        update(LiveCode)
        .where(LiveCode.id == cc.id, LiveCode.full_since.is_(None))
        .values(full_since=to_micros(now))
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        enqueue(
            session,
            POOL_FULL_JOB,
            {"live_code_id": cc.id},
            org_id=cc.org_id,
            key=f"livecode-full:{cc.id}:{to_micros(now)}",
        )

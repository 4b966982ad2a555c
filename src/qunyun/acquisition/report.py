"""The channel report: what each channel and each live code brought over a range of days, and at
what cost (PRODUCT.md "Metric definitions", channel report — normative).

- A member is **acquired** by channel C in the range when their first join in the organisation
  (earliest by time, then by event id) falls on a day of the range and carries C: directly (the
  event's ``channel``), or through the live code the join was attributed to
  (``live_code_joins``, see ``acquisition/attribution.py``). One channel at most per member.
- ``scans`` / ``visitors``: scans of C's live codes in the range (every scan, repeats included)
  and the distinct visitors among them.
- ``actives_7d``: acquired members with a message in [join, join + 168 h); ``paying``: with a
  paid order in [join, join + 30 days); ``gmv``: those orders' amounts minus their refunds made
  in the same 30 days.
- ``cost`` = touches dated in the range × cost per touch + joins × reward per member + fixed
  costs dated in the range (``channel_spend``); ``cac``, ``cost_per_active``,
  ``cost_per_paying`` and ``roi`` (gmv / cost) are null when their divisor is 0.
- The funnel: reached (touches) → scanned (visitors) → joined → active (7 days) → converted
  (paying).

Staff who see some groups get the figures of their groups: members whose first join was into
one of them, scans routed to them; touches and money spent are organisation-wide, so their cost
figures are null. Live codes have no cost model of their own: their rows carry no cost.

The event log has no index for messages by member; the 7-day actives are one pass over the
organisation's messages of the days they can fall on (the range and the 8 days after it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, case, distinct, func, select, text, type_coerce
from sqlalchemy.orm import Session

from qunyun.acquisition.schemas import (
    ChannelDetail,
    ChannelReport,
    ChannelReportRow,
    FunnelStage,
    LiveCodeReportRow,
)
from qunyun.acquisition.service import fen_to_yuan, org_zone
from qunyun.analytics.stats import check_range
from qunyun.auth.scope import Scope, group_ids_in_scope
from qunyun.errors import NotFound
from qunyun.locale import Msg
from qunyun.models import (
    Channel,
    Event,
    EventKind,
    LiveCode,
    LiveCodeGroup,
    LiveCodeJoin,
    LiveCodeScan,
    Order,
    Refund,
    ScanOutcome,
)
from qunyun.models.channel import ChannelSpend
from qunyun.models.event import JOIN_KIND, MEMBERSHIP_KINDS
from qunyun.timeutil import day_bounds_micros, day_key

HOUR = 3600 * 1_000_000
ACTIVE_WINDOW = 168 * HOUR
PAYING_WINDOW = 30 * 24 * HOUR
CHUNK = 1000
DEFAULT_DAYS = 28
STREAM_ROWS = 10_000
_ROI = Decimal("0.0001")
# The machine-readable row of ``qunyun channels report`` (PRODUCT.md), in this order.
CONTRACT_FIELDS = (
    "channel",
    "touches",
    "scans",
    "visitors",
    "joins",
    "actives_7d",
    "paying",
    "gmv",
    "cost",
    "cac",
    "cost_per_active",
    "cost_per_paying",
    "roi",
)
FUNNEL = ("reached", "scanned", "joined", "active", "converted")


@dataclass(frozen=True, slots=True)
class Acquired:
    """A member's first join in the organisation, and where it came from."""

    member_id: int
    event_id: int
    ts: int  # UTC epoch microseconds
    group_id: int | None
    channel_id: int | None
    live_code_id: int | None


@dataclass
class _Figures:
    scans: int = 0
    visitors: int = 0
    fallback: int = 0
    joins: int = 0
    actives: int = 0
    paying: int = 0
    gmv_fen: int = 0
    # Per calendar day (YYYYMMDD): scans and joins, for the channel page's chart.
    scans_by_day: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    joins_by_day: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _micros(column: Any) -> Any:
    """A Timestamp column as the BIGINT it is stored as (for arithmetic in SQL)."""
    return type_coerce(column, BigInteger)


def first_joins(session: Session, org_id: int, day_from: int, day_to: int) -> list[Any]:
    """Members' first joins in the organisation that fall on days ``day_from``..``day_to``:
    rows of event id, member, time, group, channel (the earliest join, then the lowest id).

    Two steps whose plans do not depend on the planner's statistics: each member's earliest
    join time from one aggregate over the organisation's joins (``day`` grows with ``ts``, so
    the earliest join's day is the least day), then those members' joins by member through
    ``ix_events_membership``. (An anti-join "no earlier join", or a join with the aggregate,
    becomes a nested loop over every pair of joins when the statistics are stale.)"""
    earliest = {
        int(member_id): int(ts)
        for member_id, ts in session.execute(
            select(Event.member_id, func.min(_micros(Event.ts)))
            .where(Event.org_id == org_id, text(JOIN_KIND), Event.member_id.is_not(None))
            .group_by(Event.member_id)
            .having(func.min(Event.day) >= day_from, func.min(Event.day) <= day_to)
        )
    }
    firsts: dict[int, Any] = {}
    for chunk in _chunks(sorted(earliest)):
        rows = session.execute(
            select(
                Event.id.label("event_id"),
                Event.member_id.label("member_id"),
                _micros(Event.ts).label("ts"),
                Event.group_id.label("group_id"),
                Event.channel_id.label("channel_id"),
            )
            .where(
                Event.member_id.in_(chunk),
                text(MEMBERSHIP_KINDS),
                Event.kind == int(EventKind.MEMBER_JOINED),
                Event.org_id == org_id,
            )
            .order_by(Event.member_id, Event.id)
        )
        for row in rows:
            member_id = int(row.member_id)
            if int(row.ts) == earliest[member_id]:
                firsts.setdefault(member_id, row)  # two joins at the same instant: the first stored
    return list(firsts.values())


def acquired_members(
    session: Session, org_id: int, day_from: int, day_to: int, group_ids: list[int] | None
) -> list[Acquired]:
    """The members acquired on days ``day_from``..``day_to`` (whose first join was into one of
    ``group_ids`` when given), with their channel and live code."""
    rows = first_joins(session, org_id, day_from, day_to)
    if group_ids is not None:
        visible = set(group_ids)
        rows = [r for r in rows if r.group_id in visible]
    attributed: dict[int, tuple[int | None, int | None]] = {}
    event_ids = [int(r.event_id) for r in rows]
    for chunk in _chunks(event_ids):
        for event_id, code_id, channel_id in session.execute(
            select(LiveCodeJoin.event_id, LiveCodeJoin.live_code_id, LiveCodeJoin.channel_id).where(
                LiveCodeJoin.org_id == org_id, LiveCodeJoin.event_id.in_(chunk)
            )
        ):
            attributed[int(event_id)] = (int(code_id), channel_id)
    out = []
    for r in rows:
        live_code_id, code_channel = attributed.get(int(r.event_id), (None, None))
        out.append(
            Acquired(
                member_id=int(r.member_id),
                event_id=int(r.event_id),
                ts=int(r.ts),
                group_id=r.group_id,
                channel_id=r.channel_id if r.channel_id is not None else code_channel,
                live_code_id=live_code_id,
            )
        )
    return out


def _actives(session: Session, org_id: int, acquired: Sequence[Acquired], day_from: int, day_end: int) -> set[int]:
    """The acquired members who posted within 168 h of joining: one pass over the
    organisation's messages of days ``day_from``..``day_end`` (the log has no index of messages
    by member; a join with the acquired members in SQL makes SQLite probe every message once per
    member)."""
    joined = {a.member_id: a.ts for a in acquired}
    active: set[int] = set()
    query = (
        select(Event.member_id, _micros(Event.ts))
        .where(
            Event.org_id == org_id,
            Event.kind == int(EventKind.MESSAGE_POSTED),
            Event.day >= day_from,
            Event.day <= day_end,
        )
        .execution_options(yield_per=STREAM_ROWS)
    )
    for member_id, ts in session.execute(query):
        start = joined.get(member_id)
        if start is not None and start <= ts < start + ACTIVE_WINDOW:
            active.add(member_id)
    return active


def _orders(session: Session, org_id: int, acquired: Sequence[Acquired]) -> dict[int, int]:
    """Acquired member → GMV in fen of their orders paid within 30 days of joining, less those
    orders' refunds made within the same 30 days (a member with such an order is paying, even
    when it was refunded in full)."""
    joined = {a.member_id: a.ts for a in acquired}
    orders: dict[str, tuple[int, int]] = {}  # order ref → (member, amount)
    for chunk in _chunks(sorted(joined)):
        for member_id, ref, amount, paid_at in session.execute(
            select(Order.member_id, Order.external_id, Order.amount_fen, _micros(Order.paid_at)).where(
                Order.org_id == org_id, Order.member_id.in_(chunk)
            )
        ):
            start = joined[int(member_id)]
            if start <= int(paid_at) < start + PAYING_WINDOW:
                orders[ref] = (int(member_id), int(amount))
    gmv: dict[int, int] = {}
    for member_id, amount in orders.values():
        gmv[member_id] = gmv.get(member_id, 0) + amount
    refs = sorted(orders)
    for start in range(0, len(refs), CHUNK):
        for ref, amount, refunded_at in session.execute(
            select(Refund.order_ref, Refund.amount_fen, _micros(Refund.refunded_at)).where(
                Refund.org_id == org_id, Refund.order_ref.in_(refs[start : start + CHUNK])
            )
        ):
            member_id = orders[ref][0]
            begin = joined[member_id]
            if begin <= int(refunded_at) < begin + PAYING_WINDOW:
                gmv[member_id] -= int(amount)
    return gmv


def _yuan(fen: int | Decimal | None) -> str | None:
    return None if fen is None else fen_to_yuan(fen)


def _per(cost_fen: int | None, count: int) -> str | None:
    if cost_fen is None or count <= 0:
        return None
    return fen_to_yuan(Decimal(cost_fen) / count)


def _roi(gmv_fen: int, cost_fen: int | None) -> float | None:
    if not cost_fen:
        return None
    return float((Decimal(gmv_fen) / Decimal(cost_fen)).quantize(_ROI, rounding=ROUND_HALF_UP))


def funnel(row: ChannelReportRow | LiveCodeReportRow) -> list[FunnelStage]:
    """reached → scanned → joined → active → converted, as counts (reached: the touches)."""
    reached = row.touches if isinstance(row, ChannelReportRow) else None
    values = (reached, row.visitors, row.joins, row.actives_7d, row.paying)
    return [FunnelStage(stage=stage, count=value) for stage, value in zip(FUNNEL, values, strict=True)]


def _scan_figures(
    session: Session,
    org_id: int,
    start: int,
    end: int,
    group_ids: list[int] | None,
    key: Any,
) -> dict[Any, _Figures]:
    """Scans and distinct visitors in [start, end) per ``key`` (channel or live code)."""
    query = (
        select(
            key,
            func.count(),
            func.count(distinct(LiveCodeScan.visitor)),
            func.sum(case((LiveCodeScan.outcome == ScanOutcome.FALLBACK.value, 1), else_=0)),
        )
        .where(
            LiveCodeScan.org_id == org_id,
            _micros(LiveCodeScan.at) >= start,
            _micros(LiveCodeScan.at) < end,
        )
        .group_by(key)
    )
    if group_ids is not None:
        query = query.where(LiveCodeScan.group_id.in_(group_ids))
    out: dict[Any, _Figures] = {}
    for k, scans, visitors, fallback in session.execute(query):
        out[k] = _Figures(scans=int(scans), visitors=int(visitors), fallback=int(fallback or 0))
    return out


def report_range(session: Session, scope: Scope, date_from: date | None, date_to: date | None) -> tuple[date, date]:
    """The range a report covers when the reader gives none or one end: up to today (in the
    organisation's zone), :data:`DEFAULT_DAYS` days long."""
    last = date_to or datetime.now(org_zone(session, scope.org_id)).date()
    return date_from or last - timedelta(days=DEFAULT_DAYS - 1), last


def channel_report(
    session: Session,
    scope: Scope,
    date_from: date,
    date_to: date,
    *,
    channel_id: int | None = None,
    flags: bool = False,
    by_day: bool = False,
) -> ChannelReport:
    """The channel report over ``date_from``..``date_to`` (the organisation's calendar days):
    one row per channel and per live code, as ``scope`` may see them (see the module's doc).
    With ``channel_id`` only that channel and its live codes (NotFound if it is not the
    organisation's); ``flags``: range errors name the CLI's ``--from``/``--to``; ``by_day``:
    each row also carries its scans and joins per day."""
    check_range(date_from, date_to, flags=flags)
    org_id = scope.org_id
    channels_query = select(Channel).where(Channel.org_id == org_id).order_by(Channel.id)
    if channel_id is not None:
        channels_query = channels_query.where(Channel.id == channel_id)
    channels = list(session.scalars(channels_query))
    if channel_id is not None and not channels:
        raise NotFound(Msg("err.acquisition.no_channel", id=channel_id), field="channel_id")
    zone = org_zone(session, org_id)
    group_ids = group_ids_in_scope(session, scope)
    d0, d1 = day_key(date_from), day_key(date_to)
    start, end = day_bounds_micros(date_from, zone)[0], day_bounds_micros(date_to, zone)[1]

    acquired = acquired_members(session, org_id, d0, d1, group_ids)
    actives = _actives(session, org_id, acquired, d0, day_key(date_to + timedelta(days=8))) if acquired else set()
    gmv = _orders(session, org_id, acquired)

    by_channel = _scan_figures(session, org_id, start, end, group_ids, LiveCodeScan.channel_id)
    by_code = _scan_figures(session, org_id, start, end, group_ids, LiveCodeScan.live_code_id)
    if by_day:
        _scans_by_day(session, org_id, start, end, group_ids, zone, by_channel, by_code)
    unattributed = 0
    for a in acquired:
        day = _day_of(a.ts, zone) if by_day else 0
        targets = []
        if a.channel_id is not None:
            targets.append(by_channel.setdefault(a.channel_id, _Figures()))
        else:
            unattributed += 1
        if a.live_code_id is not None:
            targets.append(by_code.setdefault(a.live_code_id, _Figures()))
        for figures in targets:
            figures.joins += 1
            figures.actives += a.member_id in actives
            if a.member_id in gmv:
                figures.paying += 1
                figures.gmv_fen += gmv[a.member_id]
            if by_day:
                figures.joins_by_day[day] += 1

    spend: dict[int, tuple[int, int]] = {}
    whole = group_ids is None
    if whole:
        for cid, touches, fixed in session.execute(
            select(ChannelSpend.channel_id, func.sum(ChannelSpend.touches), func.sum(ChannelSpend.fixed_cost_fen))
            .where(ChannelSpend.org_id == org_id, ChannelSpend.day >= d0, ChannelSpend.day <= d1)
            .group_by(ChannelSpend.channel_id)
        ):
            spend[int(cid)] = (int(touches or 0), int(fixed or 0))

    rows = []
    for channel in channels:
        f = by_channel.get(channel.id, _Figures())
        touches, fixed = spend.get(channel.id, (0, 0))
        cost = touches * channel.cost_per_touch_fen + f.joins * channel.reward_per_member_fen + fixed if whole else None
        rows.append(
            ChannelReportRow(
                channel=channel.code,
                channel_id=channel.id,
                name=channel.name,
                kind=channel.kind,
                touches=touches if whole else None,
                scans=f.scans,
                visitors=f.visitors,
                joins=f.joins,
                actives_7d=f.actives,
                paying=f.paying,
                gmv=fen_to_yuan(f.gmv_fen),
                cost=_yuan(cost),
                cac=_per(cost, f.joins),
                cost_per_active=_per(cost, f.actives),
                cost_per_paying=_per(cost, f.paying),
                roi=_roi(f.gmv_fen, cost),
                scans_by_day=_series(f.scans_by_day) if by_day else None,
                joins_by_day=_series(f.joins_by_day) if by_day else None,
            )
        )
    codes = _live_code_rows(session, scope, channels, by_code, channel_id=channel_id, by_day=by_day)
    return ChannelReport(
        date_from=date_from,
        date_to=date_to,
        whole_org=whole,
        channels=rows,
        live_codes=codes,
        unattributed_joins=unattributed if channel_id is None else 0,
    )


def channel_detail(session: Session, scope: Scope, channel_id: int, date_from: date, date_to: date) -> ChannelDetail:
    """One channel's page: its row with scans and joins per day, its funnel, its live codes."""
    result = channel_report(session, scope, date_from, date_to, channel_id=channel_id, by_day=True)
    (row,) = result.channels
    return ChannelDetail(
        date_from=date_from,
        date_to=date_to,
        whole_org=result.whole_org,
        channel=row,
        funnel=funnel(row),
        live_codes=result.live_codes,
    )


def _day_of(micros: int, zone: Any) -> int:
    from qunyun.db.base import from_micros

    return day_key(from_micros(micros).astimezone(zone).date())


def _series(values: dict[int, int]) -> dict[str, int]:
    return {f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}": n for d, n in sorted(values.items())}


def _scans_by_day(
    session: Session,
    org_id: int,
    start: int,
    end: int,
    group_ids: list[int] | None,
    zone: Any,
    by_channel: dict[Any, _Figures],
    by_code: dict[Any, _Figures],
) -> None:
    """Scans per local day of each channel and live code (for the channel page)."""
    query = select(LiveCodeScan.channel_id, LiveCodeScan.live_code_id, _micros(LiveCodeScan.at)).where(
        LiveCodeScan.org_id == org_id, _micros(LiveCodeScan.at) >= start, _micros(LiveCodeScan.at) < end
    )
    if group_ids is not None:
        query = query.where(LiveCodeScan.group_id.in_(group_ids))
    for channel_id, live_code_id, at in session.execute(query):
        day = _day_of(int(at), zone)
        by_channel.setdefault(channel_id, _Figures()).scans_by_day[day] += 1
        by_code.setdefault(live_code_id, _Figures()).scans_by_day[day] += 1


def _live_code_rows(
    session: Session,
    scope: Scope,
    channels: list[Channel],
    by_code: dict[Any, _Figures],
    *,
    channel_id: int | None,
    by_day: bool,
) -> list[LiveCodeReportRow]:
    query = select(LiveCode).where(LiveCode.org_id == scope.org_id).order_by(LiveCode.id)
    if channel_id is not None:
        query = query.where(LiveCode.channel_id == channel_id)
    if not scope.whole_org:
        groups = group_ids_in_scope(session, scope) or []
        query = query.where(
            LiveCode.id.in_(select(LiveCodeGroup.live_code_id).where(LiveCodeGroup.group_id.in_(groups)))
        )
    codes_of = {c.id: c.code for c in channels}
    rows = []
    for live_code in session.scalars(query):
        f = by_code.get(live_code.id, _Figures())
        rows.append(
            LiveCodeReportRow(
                code=live_code.code,
                live_code_id=live_code.id,
                name=live_code.name,
                channel=codes_of.get(live_code.channel_id) if live_code.channel_id is not None else None,
                scans=f.scans,
                visitors=f.visitors,
                fallback=f.fallback,
                joins=f.joins,
                actives_7d=f.actives,
                paying=f.paying,
                gmv=fen_to_yuan(f.gmv_fen),
                scans_by_day=_series(f.scans_by_day) if by_day else None,
                joins_by_day=_series(f.joins_by_day) if by_day else None,
            )
        )
    return rows


def contract_rows(report: ChannelReport) -> list[dict[str, Any]]:
    """The rows of ``qunyun channels report --format json|csv|table`` (PRODUCT.md's names)."""
    return [{name: getattr(row, name) for name in CONTRACT_FIELDS} for row in report.channels]


def live_code_rows(report: ChannelReport) -> list[dict[str, Any]]:
    """``qunyun channels report --live-codes``: one row per live code."""
    fields = ("code", "channel", "scans", "visitors", "fallback", "joins", "actives_7d", "paying", "gmv")
    return [{name: getattr(row, name) for name in fields} for row in report.live_codes]

"""A day so far: the daily metrics of one day counted up to a time of that day.

The overview compares today with yesterday *at the same hour*: at 10:00, today's 10 hours
against yesterday's first 10 hours, not against yesterday's whole day. The definitions are the
daily ones of PRODUCT.md "Metric definitions", cut at ``until`` instead of the day's end:
``joins``, ``left``, ``actives`` are distinct members with a join, a leave, a message in
[start of day, until); ``members`` are members at ``until``; ``orders`` and ``gmv_fen`` are
paid orders in that window of members who were in a group (one of ``group_ids``) when paying,
minus refunds of them made in the same window — ``orders_by_day`` at the grain of a window.

The rollups are per day, so this reads the event log for one day (two with ``today_and_yesterday``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from qunyun.analytics.stats import in_groups
from qunyun.auth.scope import Scope, group_ids_in_scope
from qunyun.db.base import to_micros
from qunyun.ingestion.sql import SqlDialect
from qunyun.models import EventKind
from qunyun.timeutil import day_bounds_micros, day_key


def days_until(
    session: Session,
    scope: Scope,
    windows: list[tuple[date, datetime]],
    zone: ZoneInfo,
    group_ids: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """The metrics of each (day, until) window, each counted up to ``until`` (clamped to its
    day), over ``group_ids`` (each visible to ``scope``, else NotFound) or every group ``scope``
    sees. One pass over the event log serves every window."""
    return _days_until(session, scope.org_id, windows, zone, group_ids_in_scope(session, scope, group_ids))


def _days_until(
    session: Session,
    org_id: int,
    windows: list[tuple[date, datetime]],
    zone: ZoneInfo,
    group_ids: list[int] | None,
) -> list[dict[str, Any]]:
    db = SqlDialect(session.connection())
    bounds = []
    for day, until in windows:
        start, end = day_bounds_micros(day, zone)
        bounds.append((day_key(day), start, min(max(to_micros(until), start), end)))
    where, params = in_groups("group_id", group_ids)
    kinds = (int(EventKind.MEMBER_JOINED), int(EventKind.MEMBER_LEFT), int(EventKind.MESSAGE_POSTED))
    counts: dict[tuple[int, int], int] = {}
    in_window = " OR ".join("(day = ? AND ts >= ? AND ts < ?)" for _ in bounds)
    for day_, kind, n in db.run(
        "SELECT day, kind, count(DISTINCT member_id) FROM events WHERE org_id = ? AND kind IN (?, ?, ?)"
        f" AND ({in_window}){where} GROUP BY day, kind",
        (org_id, *kinds, *(v for b in bounds for v in b), *params),
    ):
        counts[int(day_), int(kind)] = int(n)
    return [
        _window(db, org_id, day, until, zone, start, cut, group_ids, counts)
        for (day, until), (_, start, cut) in zip(windows, bounds, strict=True)
    ]


def _window(
    db: SqlDialect,
    org_id: int,
    day: date,
    until: datetime,
    zone: ZoneInfo,
    start: int,
    cut: int,
    group_ids: list[int] | None,
    counts: dict[tuple[int, int], int],
) -> dict[str, Any]:
    where, params = in_groups("group_id", group_ids)
    members = int(
        db.run(
            # As at the end of a day in the daily stats: the window [start, cut) holds the join.
            "SELECT count(DISTINCT member_id) FROM membership_spans WHERE org_id = ? AND joined_at < ?"
            f" AND (left_at IS NULL OR left_at >= ?){where}",
            (org_id, cut, cut, *params),
        ).scalar_one()
    )
    span_where, span_params = in_groups("s.group_id", group_ids)
    orders = {
        ref: amount
        for ref, amount in db.run(
            "SELECT DISTINCT o.external_id, o.amount_fen FROM orders AS o JOIN membership_spans AS s"
            " ON s.member_id = o.member_id AND s.joined_at <= o.paid_at"
            " AND (s.left_at IS NULL OR s.left_at > o.paid_at)"
            f" WHERE o.org_id = ? AND o.paid_at >= ? AND o.paid_at < ?{span_where}",
            (org_id, start, cut, *span_params),
        )
    }
    gmv = sum(orders.values())
    if orders:
        for ref, amount in db.run(
            "SELECT order_ref, amount_fen FROM refunds WHERE org_id = ? AND refunded_at >= ? AND refunded_at < ?",
            (org_id, start, cut),
        ):
            if ref in orders:
                gmv -= amount
    key = day_key(day)
    actives = counts.get((key, int(EventKind.MESSAGE_POSTED)), 0)
    return {
        "date": day.isoformat(),
        "until": until.astimezone(zone).strftime("%H:%M"),
        "joins": counts.get((key, int(EventKind.MEMBER_JOINED)), 0),
        "left": counts.get((key, int(EventKind.MEMBER_LEFT)), 0),
        "actives": actives,
        "members": members,
        "active_ratio": round(actives / members, 4) if members else 0.0,
        "orders": len(orders),
        "gmv_fen": gmv,
    }


def today_and_yesterday(
    session: Session, scope: Scope, now: datetime, zone: ZoneInfo, group_ids: Iterable[int] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Today up to ``now``, and yesterday up to the same wall-clock time, over the groups as in
    ``days_until``."""
    local = now.astimezone(zone)
    today = local.date()
    yesterday = today - timedelta(days=1)
    # The same wall-clock time yesterday (on a DST change day the hour may not exist: the
    # zone resolves it, and the window is clamped to the day anyway).
    same_time = datetime.combine(yesterday, local.time().replace(tzinfo=None), zone)
    windows = [(today, local), (yesterday, same_time)]
    today_row, yesterday_row = days_until(session, scope, windows, zone, group_ids)
    return today_row, yesterday_row

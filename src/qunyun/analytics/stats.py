"""Daily and weekly metrics exactly as PRODUCT.md "Metric definitions" states them.

Answered from rollups kept at ingestion — ``group_daily`` and ``org_daily`` for days,
``member_days`` for distinct members over a week, spans and orders for conversion — never by
rescanning the event log.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, group_ids_in_scope
from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput, NotFound
from qunyun.gcpause import gc_paused
from qunyun.ingestion.sql import SqlDialect
from qunyun.locale import Msg
from qunyun.timeutil import DayCalculator, daterange, day_bounds_micros, day_key, iso_week_label, week_start

MAX_DAYS = 3660
# The days a range may start and end on. Below: before any platform's data, and zone offsets then
# were not whole quarter hours (DayCalculator relies on that). Above: the weekly rows reach a week
# past the range and day bounds one day past a day, which must stay within date.max.
MIN_DAY = date(1970, 1, 1)
MAX_DAY = date(9998, 12, 31)
# Paid orders (org, [from, to)) joined to the spans of their buyer that cover the payment: an
# order counts for a group when its buyer was a member of it when paying.
_ORDERS_OF_MEMBERS = (
    "FROM orders AS o JOIN membership_spans AS s ON s.member_id = o.member_id AND s.joined_at <= o.paid_at"
    " AND (s.left_at IS NULL OR s.left_at > o.paid_at) WHERE o.org_id = ? AND o.paid_at >= ? AND o.paid_at < ?"
)
# Distinct joiners, leavers and posters among member_days rows.
_DISTINCT = (
    "count(DISTINCT CASE WHEN joined = 1 THEN member_id END),"
    " count(DISTINCT CASE WHEN departed = 1 THEN member_id END),"
    " count(DISTINCT CASE WHEN messages > 0 THEN member_id END)"
)


def ratio(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


@dataclass(frozen=True)
class _Query:
    """A read already narrowed to the caller's scope (``_query``); never built by callers."""

    org_id: int
    date_from: date
    date_to: date
    # None: every group of the organisation (a whole-organisation scope asked for all groups),
    # and the total is organisation-wide. A list: those groups (all visible to the scope), and
    # the total counts distinct members across them only.
    group_ids: list[int] | None
    per_group: bool = True
    include_total: bool = True


def _query(
    session: Session,
    scope: Scope,
    date_from: date,
    date_to: date,
    group_ids: Iterable[int] | None,
    per_group: bool,
    include_total: bool,
) -> _Query:
    ids = group_ids_in_scope(session, scope, group_ids)  # a group out of sight: 404 before any 422
    check_range(date_from, date_to)
    return _Query(scope.org_id, date_from, date_to, ids, per_group=per_group, include_total=include_total)


def in_groups(column: str, ids: list[int] | None) -> tuple[str, tuple[int, ...]]:
    """An ``AND column IN (...)`` clause and its parameters; nothing for None (every group)."""
    if ids is None:
        return "", ()
    if not ids:
        return " AND 1 = 0", ()
    return f" AND {column} IN ({','.join('?' * len(ids))})", tuple(ids)


def check_range(date_from: date, date_to: date, *, flags: bool = False) -> None:
    """Raise InvalidInput (naming ``from`` or ``to``) unless the stats can be computed for
    [date_from, date_to]: both days within MIN_DAY..MAX_DAY, in order, at most MAX_DAYS apart.
    Every stats entry point calls it (console page, exports, CLI); ``flags``: name the CLI's
    ``--from``/``--to`` options instead of the form's fields."""
    names = ("--from", "--to") if flags else ("from", "to")
    for field, day in zip(names, (date_from, date_to), strict=True):
        if not MIN_DAY <= day <= MAX_DAY:
            message = Msg("api.stats.day_out_of_range", field=field, min=MIN_DAY.isoformat(), max=MAX_DAY.isoformat())
            raise InvalidInput(message, field=field)
    if date_to < date_from:
        message = (
            Msg("api.stats.option_before", later=names[1], earlier=names[0])
            if flags
            else Msg("api.stats.to_before_from")
        )
        raise InvalidInput(message, field=names[1])
    if (date_to - date_from).days > MAX_DAYS:
        raise InvalidInput(Msg("api.stats.range_too_long", days=MAX_DAYS), field=names[1])


class _Stats:
    def __init__(self, session: Session, query: _Query) -> None:
        self.session = session
        self.q = query
        self.db = SqlDialect(session.connection())
        # Plain SQL throughout: the rows are built straight from tuples, no ORM objects.
        zone = self.db.run("SELECT time_zone FROM organisations WHERE id = ?", (query.org_id,)).scalar()
        if zone is None:
            raise NotFound(Msg("api.no_organisation", org=query.org_id))
        self.zone = ZoneInfo(zone)
        end_micros = day_bounds_micros(query.date_to, self.zone)[1]
        where, params = self._group_filter(column="id")
        self.groups: list[tuple[int, str]] = [
            (r[0], r[1])
            for r in self.db.rows(
                f"SELECT id, external_id FROM groups WHERE org_id = ? AND created_at < ?{where}"
                " ORDER BY external_id, id",
                (query.org_id, end_micros, *params),
            )
        ]

    def _group_filter(self, column: str = "group_id") -> tuple[str, tuple[int, ...]]:
        return in_groups(column, self.q.group_ids)

    def members_series(
        self, days: list[date], group_rows: list[tuple[Any, ...]] | None = None
    ) -> tuple[dict[int, list[int]], list[int]]:
        """End-of-day members for each consecutive day in ``days``: per group, and in ≥1 group.

        ``group_rows``: the range's ``group_daily`` rows when the caller has them already, as
        (group_id, day, …, members_delta).
        """
        first, last = day_key(days[0]), day_key(days[-1])
        index = {day_key(d): i for i, d in enumerate(days)}
        where, params = self._group_filter()
        per_group: dict[int, list[int]] = {}
        if self.q.per_group:
            base = dict(
                self.db.run(
                    "SELECT group_id, sum(members_delta) FROM group_daily WHERE org_id = ? AND day < ?"
                    f"{where} GROUP BY group_id",
                    (self.q.org_id, first, *params),
                ).fetchall()
            )
            deltas: dict[int, list[int]] = defaultdict(lambda: [0] * len(days))
            if group_rows is None:
                group_rows = self.db.rows(
                    "SELECT group_id, day, members_delta FROM group_daily WHERE org_id = ? AND day >= ?"
                    f" AND day <= ? AND members_delta <> 0{where}",
                    (self.q.org_id, first, last, *params),
                )
            for row in group_rows:
                if row[-1]:
                    deltas[row[0]][index[row[1]]] += row[-1]
            zeros = [0] * len(days)
            for group_id, _ in self.groups:
                start = int(base.get(group_id) or 0)
                per_group[group_id] = list(accumulate(deltas.get(group_id) or zeros, initial=start))[1:]
        total: list[int] = []
        if self.q.include_total and self.q.group_ids is not None:
            total = self._subset_members(days)
        elif self.q.include_total:
            running = int(
                self.db.run(
                    "SELECT coalesce(sum(members_delta), 0) FROM org_daily WHERE org_id = ? AND day < ?",
                    (self.q.org_id, first),
                ).scalar_one()
            )
            total_deltas = [0] * len(days)
            for day, delta in self.db.run(
                "SELECT day, members_delta FROM org_daily WHERE org_id = ? AND day >= ? AND day <= ?",
                (self.q.org_id, first, last),
            ):
                total_deltas[index[day]] += delta
            for delta in total_deltas:
                running += delta
                total.append(running)
        return per_group, total

    def _subset_members(self, days: list[date]) -> list[int]:
        """End-of-day members in ≥1 group of ``group_ids`` (a staff member's scope): from the
        spans, since ``org_daily`` only holds the organisation-wide distinct count."""
        where, params = self._group_filter()
        # Day d counts a span when it covers the end of d: joined before and not left by then.
        ends = [day_bounds_micros(d, self.zone)[1] for d in days]
        first_end = ends[0]
        ranges: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for member_id, joined_at, left_at in self.db.run(
            "SELECT member_id, joined_at, left_at FROM membership_spans WHERE org_id = ?"
            f" AND joined_at < ? AND (left_at IS NULL OR left_at >= ?){where}",
            (self.q.org_id, ends[-1], first_end, *params),
        ):
            lo = bisect_right(ends, joined_at)  # the first day whose end is after the join
            hi = len(days) if left_at is None else bisect_right(ends, left_at)  # days ending ≤ left_at
            if lo < hi:
                ranges[member_id].append((lo, hi))
        deltas = [0] * (len(days) + 1)
        for spans in ranges.values():
            spans.sort()
            start, stop = spans[0]
            for lo, hi in spans[1:]:
                if lo <= stop:
                    stop = max(stop, hi)
                    continue
                deltas[start] += 1
                deltas[stop] -= 1
                start, stop = lo, hi
            deltas[start] += 1
            deltas[stop] -= 1
        return list(accumulate(deltas[: len(days)]))

    # -- daily ---------------------------------------------------------------------------

    def daily(self) -> list[dict[str, Any]]:
        days = daterange(self.q.date_from, self.q.date_to)
        first, last = day_key(days[0]), day_key(days[-1])
        index = {day_key(d): i for i, d in enumerate(days)}
        zero = (0, 0, 0)
        where, params = self._group_filter()
        group_rows = (
            self.db.rows(
                "SELECT group_id, day, joins, lefts, actives, members_delta FROM group_daily"
                f" WHERE org_id = ? AND day >= ? AND day <= ?{where}",
                (self.q.org_id, first, last, *params),
            )
            if self.q.per_group
            else []
        )
        members, total_members = self.members_series(days, group_rows)
        # Per group, one slot per day: the output loop below runs once per row (450,000 rows
        # for 5,000 groups over 90 days), so it does list indexing and nothing else.
        counts: dict[int, list[tuple[int, int, int]]] = {}
        if self.q.per_group:
            for group_id, day, joins, lefts, actives, _ in group_rows:
                slots = counts.get(group_id)
                if slots is None:
                    slots = counts[group_id] = [zero] * len(days)
                slots[index[day]] = (joins, lefts, actives)
        totals = [zero] * len(days)
        if self.q.include_total and self.q.group_ids is not None:
            for day, joins, lefts, actives in self.db.rows(
                f"SELECT day, {_DISTINCT} FROM member_days WHERE org_id = ? AND day >= ? AND day <= ?{where}"
                " GROUP BY day",
                (self.q.org_id, first, last, *params),
            ):
                totals[index[day]] = (joins, lefts, actives)
        elif self.q.include_total:
            for day, joins, lefts, actives in self.db.rows(
                "SELECT day, joins, lefts, actives FROM org_daily WHERE org_id = ? AND day >= ? AND day <= ?",
                (self.q.org_id, first, last),
            ):
                totals[index[day]] = (joins, lefts, actives)
        no_activity = [zero] * len(days)
        series = (
            [
                (external_id, counts.get(group_id, no_activity), members[group_id])
                for group_id, external_id in self.groups
            ]
            if self.q.per_group
            else []
        )
        rows: list[dict[str, Any]] = []
        append = rows.append
        for i, day_ in enumerate(days):
            label = day_.isoformat()
            if self.q.include_total:
                joins, lefts, actives = totals[i]
                append(_daily_row(label, None, joins, lefts, actives, total_members[i]))
            if not self.q.per_group:
                continue
            for external_id, slots, group_members in series:
                joins, lefts, actives = slots[i]
                m = group_members[i]
                append(
                    {
                        "date": label,
                        "group": external_id,
                        "joins": joins,
                        "left": lefts,
                        "actives": actives,
                        "members": m,
                        "active_ratio": round(actives / m, 4) if m else 0.0,
                    }
                )
        return rows

    # -- weekly --------------------------------------------------------------------------

    def weekly(self) -> list[dict[str, Any]]:
        first_monday = week_start(self.q.date_from) - timedelta(days=7)  # one more, for converted_wow
        mondays = [
            first_monday + timedelta(days=7 * i)
            for i in range((week_start(self.q.date_to) - first_monday).days // 7 + 1)
        ]
        days = daterange(mondays[0], mondays[-1] + timedelta(days=6))
        members, total_members = self.members_series(days)
        where, params = self._group_filter()
        rows: list[dict[str, Any]] = []
        previous: dict[int | None, int] = {}
        for w, monday in enumerate(mondays):
            sunday_index = w * 7 + 6
            lo, hi = day_key(monday), day_key(monday + timedelta(days=6))
            distinct = _DISTINCT
            per_group_counts: dict[int, tuple[int, int, int]] = {}
            if self.q.per_group:
                for group_id, joins, lefts, actives in self.db.run(
                    f"SELECT group_id, {distinct} FROM member_days WHERE org_id = ? AND day >= ? AND day <= ?"
                    f"{where} GROUP BY group_id",
                    (self.q.org_id, lo, hi, *params),
                ):
                    per_group_counts[group_id] = (joins, lefts, actives)
            total_counts = (0, 0, 0)
            if self.q.include_total:
                total_counts = tuple(
                    self.db.run(
                        f"SELECT {distinct} FROM member_days WHERE org_id = ? AND day >= ? AND day <= ?{where}",
                        (self.q.org_id, lo, hi, *params),
                    ).one()
                )
            conversions = self._conversions(monday)
            week_rows: list[dict[str, Any]] = []
            if self.q.include_total:
                converted, gmv = conversions.get(None, (0, 0))
                week_rows.append(
                    _weekly_row(
                        monday, None, total_counts, total_members[sunday_index], converted, gmv, previous.get(None)
                    )
                )
                previous[None] = converted
            if self.q.per_group:
                for group_id, external_id in self.groups:
                    converted, gmv = conversions.get(group_id, (0, 0))
                    week_rows.append(
                        _weekly_row(
                            monday,
                            external_id,
                            per_group_counts.get(group_id, (0, 0, 0)),
                            members[group_id][sunday_index],
                            converted,
                            gmv,
                            previous.get(group_id),
                        )
                    )
                    previous[group_id] = converted
            if w > 0:
                rows.extend(week_rows)
        return rows

    def _conversions(self, monday: date) -> dict[int | None, tuple[int, int]]:
        """(converted, gmv in fen) per group id, and for None: in any group at payment time."""
        start = day_bounds_micros(monday, self.zone)[0]
        end = day_bounds_micros(monday + timedelta(days=7), self.zone)[0]
        where, params = self._group_filter("s.group_id")
        hits = self.db.run(
            f"SELECT o.id, o.external_id, o.member_id, o.amount_fen, s.group_id {_ORDERS_OF_MEMBERS}{where}",
            (self.q.org_id, start, end, *params),
        ).fetchall()
        if not hits:
            return {}
        refunds = dict(
            self.db.run(
                "SELECT order_ref, sum(amount_fen) FROM refunds WHERE org_id = ? AND refunded_at >= ?"
                " AND refunded_at < ? GROUP BY order_ref",
                (self.q.org_id, start, end),
            ).fetchall()
        )
        buyers: dict[int | None, set[int]] = defaultdict(set)
        orders: dict[int | None, dict[int, int]] = defaultdict(dict)
        for order_id, order_ref, member_id, amount, group_id in hits:
            net = amount - int(refunds.get(order_ref) or 0)
            for key in (group_id, None):
                buyers[key].add(member_id)
                orders[key][order_id] = net  # an order counts once for the total
        return {key: (len(buyers[key]), sum(orders[key].values())) for key in buyers}


def _daily_row(label: str, group: str | None, joins: int, lefts: int, actives: int, members: int) -> dict[str, Any]:
    return {
        "date": label,
        "group": group,
        "joins": joins,
        "left": lefts,
        "actives": actives,
        "members": members,
        "active_ratio": ratio(actives, members),
    }


def _weekly_row(
    monday: date,
    group: str | None,
    counts: tuple[int, int, int],
    members: int,
    converted: int,
    gmv: int,
    previous: int | None,
) -> dict[str, Any]:
    joins, lefts, actives = counts
    wow = None if not previous else round((converted - previous) / previous, 4)
    return {
        "week": iso_week_label(monday),
        "group": group,
        "joins": joins,
        "left": lefts,
        "actives": actives,
        "members": members,
        "active_ratio": ratio(actives, members),
        "converted": converted,
        "conversion_ratio": ratio(converted, members),
        "gmv": yuan(gmv),
        "converted_wow": wow,
    }


def daily(
    session: Session,
    scope: Scope,
    date_from: date,
    date_to: date,
    group_ids: Iterable[int] | None = None,
    *,
    per_group: bool = True,
    include_total: bool = True,
) -> list[dict[str, Any]]:
    """One row per day (and per group): joins, left, actives, members, active_ratio — of
    ``group_ids`` (each visible to ``scope``, else NotFound), or of every group ``scope`` sees.
    The all-groups row (``group`` None) counts distinct members across those groups: the
    organisation's for a lead or an analyst, the staff member's groups' otherwise."""
    query = _query(session, scope, date_from, date_to, group_ids, per_group, include_total)
    with gc_paused():
        return _Stats(session, query).daily()


def weekly(
    session: Session,
    scope: Scope,
    date_from: date,
    date_to: date,
    group_ids: Iterable[int] | None = None,
    *,
    per_group: bool = True,
    include_total: bool = True,
) -> list[dict[str, Any]]:
    """One row per ISO week touching the range (and per group), whole weeks, with conversion;
    the groups as in ``daily``."""
    query = _query(session, scope, date_from, date_to, group_ids, per_group, include_total)
    with gc_paused():
        return _Stats(session, query).weekly()


def orders_by_day(
    session: Session, scope: Scope, date_from: date, date_to: date, group_ids: Iterable[int] | None = None
) -> list[tuple[int, int]]:
    """(orders, gmv in fen) per day: paid orders of members who were in one of the groups (as in
    ``daily``) when they paid, minus refunds of them made the same day — the weekly ``gmv``
    definition at the grain of a day."""
    check_range(date_from, date_to)
    return _orders_by_day(session, scope.org_id, date_from, date_to, group_ids_in_scope(session, scope, group_ids))


def _orders_by_day(
    session: Session, org_id: int, date_from: date, date_to: date, group_ids: list[int] | None
) -> list[tuple[int, int]]:
    db = SqlDialect(session.connection())
    zone = ZoneInfo(db.run("SELECT time_zone FROM organisations WHERE id = ?", (org_id,)).scalar_one())
    days = daterange(date_from, date_to)
    index = {day_key(d): i for i, d in enumerate(days)}
    start = day_bounds_micros(date_from, zone)[0]
    end = day_bounds_micros(date_to, zone)[1]
    where, params = in_groups("s.group_id", group_ids)
    orders = {
        ref: (paid_at, amount)
        for ref, paid_at, amount in db.run(
            f"SELECT DISTINCT o.external_id, o.paid_at, o.amount_fen {_ORDERS_OF_MEMBERS}{where}",
            (org_id, start, end, *params),
        )
    }
    days_of = DayCalculator(zone)
    out = [[0, 0] for _ in days]
    for paid_at, amount in orders.values():
        slot = out[index[days_of.day(paid_at)]]
        slot[0] += 1
        slot[1] += amount
    if orders:
        for ref, refunded_at, amount in db.run(
            "SELECT order_ref, refunded_at, amount_fen FROM refunds WHERE org_id = ? AND refunded_at >= ?"
            " AND refunded_at < ?",
            (org_id, start, end),
        ):
            paid = orders.get(ref)
            if paid is not None and days_of.day(refunded_at) == days_of.day(paid[0]):
                out[index[days_of.day(paid[0])]][1] -= amount
    return [(n, gmv) for n, gmv in out]


def stats_for_cli(
    period: str, *, org_slug: str, date_from: date, date_to: date, group: str | None, per_group: bool = False
) -> list[dict[str, Any]]:
    """The ``qunyun stats`` contract: the all-groups rows, or one group's rows with ``group``."""
    check_range(date_from, date_to, flags=True)
    with unit_of_work(write=False) as session:
        db = SqlDialect(session.connection())
        org_id = db.run("SELECT id FROM organisations WHERE slug = ?", (org_slug,)).scalar()
        if org_id is None:
            raise NotFound(Msg("api.no_organisation_slug", org=org_slug), field="org")
        if group is not None:
            found = db.rows("SELECT id, platform FROM groups WHERE org_id = ? AND external_id = ?", (org_id, group))
            if not found:
                raise NotFound(Msg("api.no_group_in_org", group=group, org=org_slug), field="group")
            if len(found) > 1:
                platforms = ", ".join(sorted(p for _, p in found))
                raise InvalidInput(Msg("api.stats.group_ambiguous", group=group, platforms=platforms), field="group")
            group_id = found[0][0]
        # No person asks: the organisation-wide scope, as any internal caller has.
        scope = Scope.organisation(org_id)
        read = daily if period == "daily" else weekly
        if group is not None:
            return read(session, scope, date_from, date_to, [group_id], include_total=False)
        return read(session, scope, date_from, date_to, per_group=per_group)

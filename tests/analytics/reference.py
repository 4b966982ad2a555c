"""A deliberately naive reference of PRODUCT.md "Metric definitions (normative)".

Computed by brute force straight from interchange-format event dicts — no rollups, no spans, no
SQL — so that it can be checked by reading it against the definitions. It returns the same row
dicts as ``qunyun.analytics.stats`` (the ``qunyun stats`` contract):

- events with the same ``id`` count once (the first delivery wins);
- days are calendar days in Asia/Shanghai, weeks are ISO weeks, and a weekly report covers every
  whole ISO week touching ``[date_from, date_to]``;
- "member of G at t": the latest join/leave of that member in G at or before t is a join. Ties
  (a join and a leave of one member in one group at the same instant) are left undefined here;
  generated streams avoid them;
- rows: for each date (week) the all-groups row (``group`` None) first, then one row per group
  that exists by the end of ``date_to``, sorted by external id. A group exists from its
  ``group.created`` ts, or else from the earliest event that names it;
- ratios are ``round(x / y, 4)`` (0.0 when y is 0), gmv a decimal string with two places.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

ZONE = ZoneInfo("Asia/Shanghai")
MEMBERSHIP = ("member.joined", "member.left")

Event = Mapping[str, Any]


def instant(event: Event) -> datetime:
    return datetime.fromisoformat(event["ts"])


def local_day(event: Event) -> date:
    return instant(event).astimezone(ZONE).date()


def midnight(d: date) -> datetime:
    """The first instant of day ``d`` in Shanghai."""
    return datetime.combine(d, time(), ZONE)


def fen(amount: str) -> int:
    return int(Decimal(amount) * 100)


def yuan(amount_fen: int) -> str:
    return str((Decimal(amount_fen) / 100).quantize(Decimal("0.01")))


def ratio(numerator: int, denominator: int) -> float:
    return round(numerator / denominator, 4) if denominator else 0.0


def dedupe(events: Iterable[Event]) -> list[Event]:
    seen: set[str] = set()
    unique = []
    for e in events:
        if e["id"] not in seen:
            seen.add(e["id"])
            unique.append(e)
    return unique


class Reference:
    def __init__(self, events: Iterable[Event]) -> None:
        self.events = dedupe(events)

    # -- who is a member when ----------------------------------------------------------------

    def is_member(self, member: str, group: str, t: datetime, *, inclusive: bool) -> bool:
        """Member of ``group`` at ``t`` (``inclusive``: events at exactly ``t`` count)."""
        latest: Event | None = None
        for e in self.events:
            if e["kind"] not in MEMBERSHIP or e["member"] != member or e["group"] != group:
                continue
            at = instant(e)
            if (at <= t if inclusive else at < t) and (latest is None or at >= instant(latest)):
                latest = e
        return latest is not None and latest["kind"] == "member.joined"

    def members_at_end_of(self, d: date, group: str | None) -> set[str]:
        """Members of ``group`` (of any group when None) at the end of day ``d``."""
        end = midnight(d + timedelta(days=1))  # every event before it happened on or before d
        groups = self.group_ids() if group is None else [group]
        return {m for m in self.member_ids() for g in groups if self.is_member(m, g, end, inclusive=False)}

    def member_ids(self) -> set[str]:
        return {e["member"] for e in self.events if e["kind"] in MEMBERSHIP}

    # -- groups --------------------------------------------------------------------------------

    def group_ids(self) -> list[str]:
        return sorted({e["group"] for e in self.events if e.get("group") is not None})

    def group_created_at(self, group: str) -> datetime:
        named = [e for e in self.events if e.get("group") == group]
        announced = [instant(e) for e in named if e["kind"] == "group.created"]
        return min(announced) if announced else min(instant(e) for e in named)

    def groups_in_report(self, date_to: date) -> list[str]:
        end = midnight(date_to + timedelta(days=1))
        return [g for g in self.group_ids() if self.group_created_at(g) < end]

    # -- activity ------------------------------------------------------------------------------

    def distinct(self, kind: str, days: set[date], group: str | None) -> int:
        return len(
            {
                e["member"]
                for e in self.events
                if e["kind"] == kind and local_day(e) in days and (group is None or e["group"] == group)
            }
        )

    def conversions(self, monday: date, group: str | None) -> tuple[int, int]:
        """(converted, gmv in fen) of the ISO week starting ``monday``."""
        week = {monday + timedelta(days=i) for i in range(7)}
        groups = self.group_ids() if group is None else [group]
        orders = [
            e
            for e in self.events
            if e["kind"] == "order.paid"
            and local_day(e) in week
            and any(self.is_member(e["member"], g, instant(e), inclusive=True) for g in groups)
        ]
        gmv = 0
        for order in orders:
            refunds = [
                fen(r["amount"])
                for r in self.events
                if r["kind"] == "order.refunded" and r["order"] == order["order"] and local_day(r) in week
            ]
            gmv += fen(order["amount"]) - sum(refunds)
        return len({o["member"] for o in orders}), gmv

    # -- the reports -----------------------------------------------------------------------------

    def _report_groups(self, date_to: date, group: str | None, per_group: bool) -> list[str | None]:
        included = self.groups_in_report(date_to)
        if group is not None:
            return [group] if group in included else []
        return [None, *included] if per_group else [None]

    def daily(
        self, date_from: date, date_to: date, *, group: str | None = None, per_group: bool = False
    ) -> list[dict[str, Any]]:
        rows = []
        d = date_from
        while d <= date_to:
            for g in self._report_groups(date_to, group, per_group):
                members = len(self.members_at_end_of(d, g))
                actives = self.distinct("message.posted", {d}, g)
                rows.append(
                    {
                        "date": d.isoformat(),
                        "group": g,
                        "joins": self.distinct("member.joined", {d}, g),
                        "left": self.distinct("member.left", {d}, g),
                        "actives": actives,
                        "members": members,
                        "active_ratio": ratio(actives, members),
                    }
                )
            d += timedelta(days=1)
        return rows

    def weekly(
        self, date_from: date, date_to: date, *, group: str | None = None, per_group: bool = False
    ) -> list[dict[str, Any]]:
        rows = []
        monday = date_from - timedelta(days=date_from.weekday())
        while monday <= date_to:
            days = {monday + timedelta(days=i) for i in range(7)}
            sunday = monday + timedelta(days=6)
            year, week, _ = monday.isocalendar()
            for g in self._report_groups(date_to, group, per_group):
                members = len(self.members_at_end_of(sunday, g))
                actives = self.distinct("message.posted", days, g)
                converted, gmv = self.conversions(monday, g)
                previous, _ = self.conversions(monday - timedelta(days=7), g)
                rows.append(
                    {
                        "week": f"{year}-W{week:02d}",
                        "group": g,
                        "joins": self.distinct("member.joined", days, g),
                        "left": self.distinct("member.left", days, g),
                        "actives": actives,
                        "members": members,
                        "active_ratio": ratio(actives, members),
                        "converted": converted,
                        "conversion_ratio": ratio(converted, members),
                        "gmv": yuan(gmv),
                        "converted_wow": round((converted - previous) / previous, 4) if previous else None,
                    }
                )
            monday += timedelta(days=7)
        return rows

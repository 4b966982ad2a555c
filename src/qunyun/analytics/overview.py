"""The overview's figures: the daily trend of the groups a staff member sees, with orders and GMV,
and today against yesterday at the same hour (``intraday``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from qunyun.analytics.stats import daily, orders_by_day
from qunyun.auth.scope import Scope

TREND_DAYS = 30


def trend(session: Session, scope: Scope, today: date, days: int = TREND_DAYS) -> list[dict[str, Any]]:
    """One row per day up to ``today``, oldest first: the daily all-groups row of the groups
    ``scope`` sees (the organisation's for a lead; a total over their groups for scoped staff —
    the figures `qunyun stats daily` gives) with ``orders`` and ``gmv_fen`` of those groups."""
    first = today - timedelta(days=days - 1)
    rows = daily(session, scope, first, today, per_group=False)
    for row, (orders, gmv) in zip(rows, orders_by_day(session, scope, first, today), strict=True):
        row["orders"] = orders
        row["gmv_fen"] = gmv
    return rows


def window(rows: list[dict[str, Any]], days: int) -> dict[str, Any]:
    """Sums over the last ``days`` rows of ``trend``; members at the end; actives and the active
    ratio as daily means over the days that had members (a day without any is no day of activity)."""
    part = rows[-days:]
    counted = [r for r in part if r["members"]]
    return {
        "joins": sum(r["joins"] for r in part),
        "left": sum(r["left"] for r in part),
        "actives": round(sum(r["actives"] for r in counted) / len(counted)) if counted else None,
        "active_ratio": round(sum(r["active_ratio"] for r in counted) / len(counted), 4) if counted else None,
        "members": part[-1]["members"],
        "orders": sum(r["orders"] for r in part),
        "gmv_fen": sum(r["gmv_fen"] for r in part),
    }

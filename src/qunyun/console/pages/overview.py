"""The overview: today against yesterday at the same hour, and the 7- and 30-day trends of the
staff member's groups."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import func, select

from qunyun.analytics.intraday import today_and_yesterday
from qunyun.analytics.stats import StatsQuery, daily_orders, daily_stats
from qunyun.auth.scope import group_visible
from qunyun.console.charts import Series, bar_chart, line_chart
from qunyun.console.labels import percent
from qunyun.console.web import ConsolePage
from qunyun.models import Group

router = APIRouter()
TREND_DAYS = 30
TOP_GROUPS = 8


def trend(page: ConsolePage, days: int = TREND_DAYS) -> list[dict[str, Any]]:
    """One row per day, oldest first: the daily stats total of the visible groups (the numbers
    `qunyun stats daily` gives; a scoped total for staff who see some groups) with orders and GMV."""
    today = page.today()
    first = today - timedelta(days=days - 1)
    group_ids = page.group_ids()
    query = StatsQuery(page.organisation.id, first, today, group_ids=group_ids, per_group=False)
    rows = daily_stats(page.db, query)
    for row, (orders, gmv) in zip(
        rows, daily_orders(page.db, page.organisation.id, first, today, group_ids), strict=True
    ):
        row["orders"] = orders
        row["gmv_fen"] = gmv
    return rows


def shown_ratio(row: dict[str, Any]) -> float | None:
    """The active ratio as shown: none ("—", not 0 %) on a day without members."""
    return row["active_ratio"] if row["members"] else None


def window(rows: list[dict[str, Any]], days: int) -> dict[str, Any]:
    """Sums over the last ``days`` rows; members at the end; actives and the active ratio as
    daily means over the days that had members (a day without any is no day of activity)."""
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


@router.get("/")
def overview(page: ConsolePage) -> Response:
    t_rows = trend(page)
    today, yesterday = today_and_yesterday(
        page.db, page.organisation.id, datetime.now(page.zone), page.zone, page.group_ids()
    )
    labels = [r["date"][5:] for r in t_rows]
    tr = page.t
    charts = {
        "members": line_chart(
            labels, [Series(tr("m_members"), [r["members"] for r in t_rows])], title=tr("m_members"), whole=True
        ),
        "flow": bar_chart(
            labels,
            [
                Series(tr("m_joins"), [r["joins"] for r in t_rows], "s1"),
                Series(tr("m_left"), [r["left"] for r in t_rows], "s3"),
            ],
            title=tr("chart_flow"),
            whole=True,
        ),
        "active": line_chart(
            labels,
            [Series(tr("m_active_ratio"), [shown_ratio(r) for r in t_rows], "s2")],
            title=tr("m_active_ratio"),
            fmt=lambda v: f"{v * 100:.0f}%",
        ),
        "gmv": bar_chart(
            labels,
            [Series(tr("m_gmv"), [r["gmv_fen"] / 100 for r in t_rows], "s4")],
            title=tr("m_gmv"),
            fmt=lambda v: f"¥{v:,.0f}",
        ),
    }
    visible = group_visible(page.scope)
    group_total = page.db.scalar(select(func.count()).select_from(Group).where(visible)) or 0
    groups = page.db.scalars(
        select(Group).where(visible).order_by(Group.member_count.desc(), Group.id).limit(TOP_GROUPS)
    ).all()
    return page.render(
        "overview.html",
        "overview",
        {
            "today": today,
            "yesterday": yesterday,
            "week": window(t_rows, 7),
            "month": window(t_rows, 30),
            "rows": list(reversed(t_rows)),
            "charts": charts,
            "groups": groups,
            "group_total": group_total,
            "top_groups": TOP_GROUPS,
            "ratio": percent,
            "shown_ratio": shown_ratio,
        },
    )

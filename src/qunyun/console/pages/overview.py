"""The overview: today against yesterday at the same hour, and the 7- and 30-day trends of the
staff member's groups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from qunyun.analytics.intraday import today_and_yesterday
from qunyun.analytics.overview import trend, window
from qunyun.console.charts import Series, bar_chart, line_chart
from qunyun.console.labels import percent
from qunyun.console.web import ConsolePage
from qunyun.groups.service import list_groups

router = APIRouter()
TOP_GROUPS = 8


def shown_ratio(row: dict[str, Any]) -> float | None:
    """The active ratio as shown: none ("—", not 0 %) on a day without members."""
    return row["active_ratio"] if row["members"] else None


@router.get("/")
def overview(page: ConsolePage) -> Response:
    t_rows = trend(page.db, page.scope, page.today())
    today, yesterday = today_and_yesterday(page.db, page.scope, datetime.now(page.zone), page.zone)
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
    # The largest groups in sight, and how many there are.
    top, group_total = list_groups(page.db, page.scope, sort="members", descending=True, limit=TOP_GROUPS)
    groups = [row.group for row in top]
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

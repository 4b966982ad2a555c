"""Channels: each channel's cost model, the members it brought and the cost per member (CAC);
kinds by name (短信, not ``sms``), money with thousands separators."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter
from fastapi.responses import Response

from qunyun.acquisition.service import acquired_in_my_groups, list_channels
from qunyun.console.charts import Series, bar_chart
from qunyun.console.labels import kind_name, money
from qunyun.console.web import ConsolePage

router = APIRouter()
MAX_CHANNELS = 500


@router.get("/channels")
def channel_list(page: ConsolePage) -> Response:
    db, scope = page.db, page.scope
    channels, total = list_channels(db, scope, limit=MAX_CHANNELS)
    # Org-wide acquisition figures are aggregates every role may read; scoped staff also see
    # how many members each channel brought into their own groups.
    mine = acquired_in_my_groups(db, scope)
    t = page.t
    labels = [c.name for c in channels]
    charts = {
        "members": bar_chart(
            labels, [Series(t("col_acquired"), [c.members_acquired for c in channels], "s1")], title=t("col_acquired")
        ),
        "cac": bar_chart(
            labels,
            [
                Series(t("col_cac"), [float(Decimal(c.cac)) if c.cac else None for c in channels], "s3"),
                Series(
                    t("col_expected_cac"),
                    [float(Decimal(c.expected_cac)) if c.expected_cac else None for c in channels],
                    "s4",
                ),
            ],
            title=t("col_cac"),
            fmt=lambda v: f"¥{v:,.2f}",
        ),
    }
    kinds = {c.kind: kind_name(t, c.kind) for c in channels}
    return page.render(
        "channels.html",
        "channels",
        {"channels": channels, "total": total, "mine": mine, "charts": charts, "kinds": kinds, "money": money},
    )

"""Channels: each channel's cost model, the members it brought and the cost per member (CAC);
kinds by name (短信, not ``sms``), money with thousands separators. Over a range of days (the
last 28 by default) the channel report, and a page per channel with its funnel (reached →
scanned → joined → active → converted), its scans and joins per day, its live codes and its
spend by day (a lead records a day's touches and fixed cost there)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from qunyun.acquisition.report import channel_detail, channel_report
from qunyun.acquisition.schemas import SpendCreate
from qunyun.acquisition.service import acquired_in_my_groups, list_channels, list_spend, record_spend
from qunyun.api.errors import validation_error
from qunyun.auth.csrf import check_csrf, session_csrf_token
from qunyun.auth.scope import require_lead
from qunyun.console.charts import Series, bar_chart, line_chart
from qunyun.console.labels import kind_name, money, percent
from qunyun.console.web import ConsolePage, Form, path_id
from qunyun.errors import InvalidInput, QunyunError
from qunyun.locale import Msg
from qunyun.timeutil import daterange

router = APIRouter()
MAX_CHANNELS = 500
DEFAULT_DAYS = 28
SPEND_ROWS = 30  # the latest spend rows the channel's page lists


SPEND_FIELDS = ("day", "touches", "fixed_cost", "note")


def _day(value: str | None, default: date, field: str) -> date:
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(Msg("display.err_not_a_date", field=field, value=value[:40]), field=field) from exc


def report_range(page: ConsolePage) -> tuple[date, date]:
    """The ?from=&to= of the page; by default the last 28 days up to today."""
    params = page.request.query_params
    today = page.today()
    last = _day(params.get("to"), today, "to")
    first = _day(params.get("from"), last - timedelta(days=DEFAULT_DAYS - 1), "from")
    return first, last


def _yuan(value: str | None) -> float | None:
    return float(Decimal(value)) if value is not None else None


@router.get("/channels")
def channel_list(page: ConsolePage) -> Response:
    db, scope = page.db, page.scope
    channels, total = list_channels(db, scope, limit=MAX_CHANNELS)
    # Org-wide acquisition figures are aggregates every role may read; scoped staff also see
    # how many members each channel brought into their own groups.
    mine = acquired_in_my_groups(db, scope)
    first, last = report_range(page)
    report = channel_report(db, scope, first, last)
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
        {
            "channels": channels,
            "total": total,
            "mine": mine,
            "charts": charts,
            "kinds": kinds,
            "money": money,
            "report": report,
            "form": {"from": first.isoformat(), "to": last.isoformat()},
        },
    )


@router.get("/channels/{channel_id}")
def channel_page(channel_id: str, page: ConsolePage) -> Response:
    """One channel over a range: its funnel, scans and joins per day, its live codes."""
    number = path_id(channel_id, Msg("err.acquisition.no_channel", id=channel_id[:40]))
    return _channel_page(page, number)


@router.post("/channels/{channel_id}/spend")
def channel_spend(channel_id: str, page: ConsolePage, form: Form) -> Response:
    """A lead records a day's touches and fixed cost of the channel."""
    token = form.get("csrf_token")
    check_csrf(session_csrf_token(page.principal.token.id), token if isinstance(token, str) else None)
    number = path_id(channel_id, Msg("err.acquisition.no_channel", id=channel_id[:40]))
    values = {key: value for key in SPEND_FIELDS if isinstance(value := form.get(key), str) and value.strip()}
    try:
        require_lead(page.scope)
        try:
            data = SpendCreate.model_validate(values)
        except ValidationError as exc:
            raise validation_error(RequestValidationError(exc.errors())) from None
        record_spend(page.db, page.scope, number, data, request=page.request)
    except QunyunError as exc:
        if exc.status_code in (403, 404):
            raise
        page.db.rollback()
        error = {"message": exc.localized(page.t.lang), "field": exc.field or "", "values": values}
        return _channel_page(page, number, spend_error=error, status_code=exc.status_code)
    target = page.url(f"/channels/{number}", done="spend")
    return RedirectResponse(f"{target}#spend", status_code=303)


def _channel_page(
    page: ConsolePage, number: int, *, spend_error: dict[str, Any] | None = None, status_code: int = 200
) -> Response:
    first, last = report_range(page)
    detail = channel_detail(page.db, page.scope, number, first, last)
    t = page.t
    row = detail.channel
    stages = [(s.stage, s.count) for s in detail.funnel]
    shown = [(stage, count) for stage, count in stages if count is not None]
    days = [d.isoformat() for d in daterange(first, last)]
    day_labels = [d[5:] for d in days]
    scans_by_day, joins_by_day = row.scans_by_day or {}, row.joins_by_day or {}
    charts = {
        "funnel": bar_chart(
            [t(f"acq.stage_{stage}") for stage, _ in shown],
            [Series(t("acq.funnel"), [count for _, count in shown], "s1")],
            title=t("acq.funnel"),
            whole=True,
        ),
        "days": line_chart(
            day_labels,
            [
                Series(t("acq.scans"), [scans_by_day.get(d, 0) for d in days], "s2"),
                Series(t("acq.joins"), [joins_by_day.get(d, 0) for d in days], "s1"),
            ],
            title=t("acq.by_day"),
            whole=True,
        ),
    }
    # Each stage as a share of the one before it (the step's conversion).
    steps: list[dict[str, Any]] = []
    previous: int | None = None
    for stage, count in stages:
        rate = count / previous if count is not None and previous else None
        steps.append({"stage": stage, "count": count, "rate": percent(rate) if rate is not None else "—"})
        previous = count if count is not None else previous
    spend, _ = list_spend(page.db, page.scope, number, limit=SPEND_ROWS)
    return page.render(
        "channel_detail.html",
        "channels",
        {
            "detail": detail,
            "row": row,
            "steps": steps,
            "charts": charts,
            "kind": kind_name(t, row.kind),
            "money": money,
            "form": {"from": first.isoformat(), "to": last.isoformat()},
            "spend": spend,
            "spend_error": spend_error,
            "spend_values": (spend_error or {}).get("values") or {"day": page.today().isoformat()},
            "done": page.request.query_params.get("done", ""),
        },
        status_code=status_code,
    )

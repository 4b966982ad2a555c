"""``qunyun channels report``: the channel report over a range of days (PRODUCT.md: one row per
channel, ``channel`` = its code, ``touches`` and the channel-report metrics by their names;
``--format json`` is stable). ``--live-codes``: one row per live code instead."""

from __future__ import annotations

import sys
from datetime import date
from enum import StrEnum
from typing import Annotated

import typer
from sqlalchemy import select

from qunyun.cli_support import CliFailure, require_schema, resolve_org
from qunyun.locale import Msg

app = typer.Typer(help="Acquisition channels: what each brought and what it cost", no_args_is_help=True)


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    table = "table"


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliFailure(Msg("cli.bad_date", name=option, value=value)) from None


@app.command("report")
def report(
    date_from: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD")],
    date_to: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive)")],
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.table,
    live_codes: Annotated[bool, typer.Option("--live-codes", help="One row per live code instead")] = False,
    org: Annotated[
        str | None,
        typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
    ] = None,
) -> None:
    """Per channel: touches, scans, visitors, joins, actives_7d, paying, gmv, cost, cac,
    cost_per_active, cost_per_paying, roi (days in the organisation's time zone)."""
    from qunyun.acquisition.report import channel_report, contract_rows, live_code_rows
    from qunyun.analytics.render import render_rows
    from qunyun.auth.scope import Scope
    from qunyun.db.session import unit_of_work
    from qunyun.models import Organisation

    first, last = _day(date_from, "--from"), _day(date_to, "--to")
    require_schema()
    slug = resolve_org(org)
    with unit_of_work(write=False) as session:
        org_id = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
        if org_id is None:
            raise CliFailure(Msg("api.no_organisation_slug", org=slug))
        # No person asks: the organisation-wide scope, as any internal caller has.
        result = channel_report(session, Scope.organisation(org_id), first, last, flags=True)
    rows = live_code_rows(result) if live_codes else contract_rows(result)
    render_rows(rows, fmt.value, sys.stdout)

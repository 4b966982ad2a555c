"""``qunyun sop apply`` and ``qunyun sop runs`` (PRODUCT.md's contract), registered on the
``qunyun sop`` app by :func:`register`:

- ``sop apply PLAN --group EXT --start YYYY-MM-DD --format json`` prints ``{"runs": N}``;
- ``sop runs --group EXT [--from YYYY-MM-DD --to YYYY-MM-DD] --format json|csv|table``: one row
  per run with ``run``, ``plan``, ``step``, ``group``, ``fire_at`` (ISO 8601 with the
  organisation's offset) and ``state``; ``--from``/``--to`` are days in the organisation's
  zone, both included;
- ``sop retry RUN --format json`` sends a failed run again (``sop.retry``) and prints
  ``{"run": ID, "state": "queued", "attempt": N, "fire_at": "…"}``.

The command line acts as the organisation's lead.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.cli_support import CliFailure, lead_scope_of, require_schema, resolve_org_id, tell
from qunyun.locale import Msg

RUN_COLUMNS = ("run", "plan", "step", "group", "fire_at", "state")

OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]
GroupOption = Annotated[str, typer.Option("--group", help="The group's external id (its id on the platform)")]


class ApplyFormat(StrEnum):
    json = "json"
    table = "table"


class RunsFormat(StrEnum):
    json = "json"
    csv = "csv"
    table = "table"


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CliFailure(Msg("cli.bad_date", name=option, value=value)) from None


def _group_id(session: Session, org_id: int, external_id: str) -> int:
    from qunyun.models import Group

    found = session.scalar(
        select(Group.id).where(Group.org_id == org_id, Group.external_id == external_id).order_by(Group.id).limit(1)
    )
    if found is None:
        raise CliFailure(Msg("err.sop.no_group_ext", group=external_id))
    return found


def apply_command(
    plan: Annotated[int, typer.Argument(min=1, help="The plan's id")],
    group: GroupOption,
    start: Annotated[str | None, typer.Option("--start", help="First day, YYYY-MM-DD (default: today)")] = None,
    org: OrgOption = None,
    fmt: Annotated[ApplyFormat, typer.Option("--format", help="json (stable) or table")] = ApplyFormat.table,
) -> None:
    """Apply an SOP plan to a group: its runs are made (a daily plan 28 days ahead, a campaign
    whole), with their times in the organisation's zone. Applying again makes only what is missing."""
    from qunyun.db.session import unit_of_work
    from qunyun.sop.runs import apply

    first = _day(start, "--start")
    require_schema()
    org_id = resolve_org_id(org)
    scope = lead_scope_of(org_id)
    with unit_of_work() as session:
        applied = apply(session, scope, plan, _group_id(session, org_id, group), first)
    if fmt == ApplyFormat.json:
        print(json.dumps({"runs": applied.runs}))
    else:
        print(f"runs\t{applied.runs}")


def runs_command(
    group: GroupOption,
    date_from: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (included)")] = None,
    org: OrgOption = None,
    fmt: Annotated[RunsFormat, typer.Option("--format", help="json (stable), csv or table")] = RunsFormat.table,
) -> None:
    """A group's SOP runs, soonest first: run, plan, step, group, fire_at, state."""
    from qunyun.db.session import unit_of_work
    from qunyun.sop.runs import list_runs, zone_of

    first, last = _day(date_from, "--from"), _day(date_to, "--to")
    require_schema()
    org_id = resolve_org_id(org)
    scope = lead_scope_of(org_id)
    with unit_of_work(write=False) as session:
        zone = zone_of(session, org_id)
        start = datetime.combine(first, time(), zone) if first is not None else None
        end = datetime.combine(last + timedelta(days=1), time(), zone) if last is not None else None
        found = list_runs(session, scope, group_id=_group_id(session, org_id, group), start=start, end=end)
    rows: list[dict[str, Any]] = [
        {
            "run": r.id,
            "plan": r.plan_id,
            "step": r.step_id,
            "group": r.group_external_id,
            "fire_at": r.fire_at.astimezone(zone).isoformat(),
            "state": r.state.value,
        }
        for r in found
    ]
    if fmt == RunsFormat.json:
        print(json.dumps(rows, ensure_ascii=False))
    elif fmt == RunsFormat.csv:
        from qunyun.analytics.render import neutralise

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(RUN_COLUMNS)
        for row in rows:
            writer.writerow(neutralise(row[c]) for c in RUN_COLUMNS)
    elif rows:
        from qunyun.analytics.render import render_rows

        render_rows(rows, "table", sys.stdout)
    else:
        tell(Msg("cli.sop.no_runs"))


def retry_command(
    run: Annotated[int, typer.Argument(min=1, help="The failed run's id (see sop runs)")],
    org: OrgOption = None,
    fmt: Annotated[ApplyFormat, typer.Option("--format", help="json (stable) or table")] = ApplyFormat.table,
) -> None:
    """Send a failed SOP run again, as a new attempt: queued now, or when the plan's quiet hours
    end. Refused unless the run failed, or when its group is dismissed or its SOP paused."""
    from qunyun.db.session import unit_of_work
    from qunyun.sop.retry import retry_run
    from qunyun.sop.runs import zone_of

    require_schema()
    org_id = resolve_org_id(org)
    scope = lead_scope_of(org_id)
    with unit_of_work() as session:
        retried = retry_run(session, scope, run)
        zone = zone_of(session, org_id)
        out = {
            "run": retried.id,
            "state": retried.state,
            "attempt": retried.attempt,
            "fire_at": retried.fire_at.astimezone(zone).isoformat(),
        }
    if fmt == ApplyFormat.json:
        print(json.dumps(out))
    else:
        print("\t".join(f"{key}\t{value}" for key, value in out.items()))


def register(app: typer.Typer) -> None:
    """Add ``apply``, ``runs`` and ``retry`` to the ``qunyun sop`` app (once)."""
    have = {command.name for command in app.registered_commands}
    if "apply" not in have:
        app.command("apply")(apply_command)
    if "runs" not in have:
        app.command("runs")(runs_command)
    if "retry" not in have:
        app.command("retry")(retry_command)

"""``qunyun sop``: SOP plans from the shell (PRODUCT.md's contract).

- ``sop import FILE.xlsx|FILE.csv --org SLUG --name NAME --format json`` prints ``{"plan": ID,
  "steps": N}``; a bad table prints one line per problem (row and column) and imports nothing;
- ``sop export PLAN -o FILE.xlsx|FILE.csv`` writes the plan's table (the same columns);
- ``sop apply``, ``sop runs`` and ``sop retry`` are in ``runs_cli.py``, registered here.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from qunyun.cli_support import USAGE, fail_line, language, lead_scope_of, require_schema, resolve_org_id, tell
from qunyun.locale import Msg
from qunyun.sop.runs_cli import register as register_runs

app = typer.Typer(help="SOP plans: the SOP table (Excel/CSV), runs", no_args_is_help=True)

OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


def _print(out: dict[str, Any], fmt: OutputFormat) -> None:
    if fmt == OutputFormat.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print("\t".join(f"{key} {value}" for key, value in out.items()))


@app.command("import")
def import_table(
    path: Annotated[Path, typer.Argument(help="The SOP table, .xlsx or .csv", dir_okay=False)],
    name: Annotated[str | None, typer.Option("--name", help="The plan's name (default: the file's name)")] = None,
    org: OrgOption = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="json (stable) or table")] = OutputFormat.table,
) -> None:
    """Create a plan from an SOP table: a daily plan, or a campaign when it has 天数 or 日期.
    All or nothing: every bad cell is reported by row and column."""
    from qunyun.db.session import unit_of_work
    from qunyun.sop.service import create_plan
    from qunyun.sop.table import TableInvalid, read_table

    require_schema()
    data = path.read_bytes()  # OSError: one line (not found, permission)
    try:
        table = read_table(data, path.name)
    except TableInvalid as exc:
        fail_line(exc.msg if exc.msg is not None else exc.message)
        for line in exc.lines(language()):
            print(line, file=sys.stderr, flush=True)
        raise typer.Exit(USAGE) from None
    scope = lead_scope_of(resolve_org_id(org))
    with unit_of_work() as session:
        plan = create_plan(session, scope, name=name or path.stem, kind=table.kind, steps=table.steps)
        plan_id = plan.id
    _print({"plan": plan_id, "steps": len(table.steps)}, fmt)


@app.command("export")
def export_table(
    plan: Annotated[int, typer.Argument(min=1, help="The plan's id")],
    output: Annotated[Path, typer.Option("--output", "-o", help="FILE.xlsx or FILE.csv", dir_okay=False)],
    org: OrgOption = None,
) -> None:
    """Write a plan's steps as an SOP table; importing it again gives the same steps."""
    from qunyun.db.session import unit_of_work
    from qunyun.sop.service import plan_steps
    from qunyun.sop.table import format_of, write_table
    from qunyun.sop.types import PlanKind

    fmt = format_of(output.name)
    require_schema()
    scope = lead_scope_of(resolve_org_id(org))
    with unit_of_work(write=False) as session:
        found, steps = plan_steps(session, scope, plan)
        kind, name = PlanKind(found.kind), found.name
    _write_atomically(output, write_table(kind, steps, fmt))
    tell(Msg("sop_table.exported", name=name, plan=plan, steps=len(steps), path=str(output)))


def _write_atomically(path: Path, data: bytes) -> None:
    """The whole file or none: written beside its place, then renamed over it."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with temporary.open("wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


register_runs(app)  # sop apply, sop runs, sop retry (after import and export in --help)

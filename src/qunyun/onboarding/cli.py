"""``qunyun onboarding coupons import|show``: a playbook's new-member coupon pool from the shell.

- ``coupons import PATH --playbook NAME --format json`` prints ``{"added", "duplicates", "free"}``;
- ``coupons show --playbook NAME --format json`` prints ``{"playbook", "free", "given", "missed",
  "empty_task_open"}``.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from qunyun.cli_support import lead_scope_of, require_schema, resolve_org_id

app = typer.Typer(help="Onboarding: the new-member benefit's coupon codes", no_args_is_help=True)
coupons_app = typer.Typer(help="A playbook's coupon pool (新人福利券码)", no_args_is_help=True)
app.add_typer(coupons_app, name="coupons")

OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]
PlaybookOption = Annotated[str, typer.Option("--playbook", help="The playbook's name")]


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="json (stable) or table")]


def _scope(org: str | None) -> Any:
    return lead_scope_of(resolve_org_id(org))


def _print(out: dict[str, Any], fmt: OutputFormat) -> None:
    if fmt == OutputFormat.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print("\t".join(f"{key} {value}" for key, value in out.items()))


@coupons_app.command("import")
def import_file(
    path: Annotated[str, typer.Argument(help="Codes, one a line, or a CSV with a code column; - for standard input")],
    playbook: PlaybookOption,
    org: OrgOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Add the file's codes to the playbook's pool (all or nothing: a bad row names its row and
    column); codes already in the pool are left out and counted."""
    from qunyun.db.session import unit_of_work
    from qunyun.onboarding.benefits import import_codes, playbook_by_name

    require_schema()
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    scope = _scope(org)
    with unit_of_work() as session:
        book = playbook_by_name(session, scope, playbook)
        report = import_codes(session, scope, book.id, data)
    _print({"added": report.added, "duplicates": report.duplicates, "free": report.free}, fmt)


@coupons_app.command("show")
def show(playbook: PlaybookOption, org: OrgOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """The pool's codes to give, given and missed (members who joined while it was empty)."""
    from qunyun.db.session import unit_of_work
    from qunyun.onboarding.benefits import playbook_by_name, pool_status

    require_schema()
    scope = _scope(org)
    with unit_of_work(write=False) as session:
        status = pool_status(session, scope, playbook_by_name(session, scope, playbook).id)
    _print(
        {
            "playbook": status.playbook,
            "free": status.free,
            "given": status.given,
            "missed": status.missed,
            "empty_task_open": status.empty_task_open,
        },
        fmt,
    )

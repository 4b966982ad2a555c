"""``qunyun privacy export|erase MEMBER``: a member's personal-data requests from the shell.

- ``export MEMBER [-o FILE]`` writes the member's data as JSON (standard output by default);
- ``erase MEMBER --yes`` erases it and prints ``{"member", "erased"}`` (the counts per section).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from qunyun.cli_support import CliFailure, lead_scope_of, require_schema, resolve_org_id, tell
from qunyun.locale import Msg

app = typer.Typer(help="Privacy: export or erase a member's personal data", no_args_is_help=True)

OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]
MemberArg = Annotated[int, typer.Argument(min=1, help="The member's internal id")]


@app.command("export")
def export(
    member: MemberArg,
    org: OrgOption = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the JSON to this file")] = None,
) -> None:
    """Everything the organisation holds about one member, as JSON."""
    from qunyun.db.session import unit_of_work
    from qunyun.privacy.service import export_member

    require_schema()
    scope = lead_scope_of(resolve_org_id(org))
    with unit_of_work() as session:
        data = export_member(session, scope, member)
    text = json.dumps(data, ensure_ascii=False, indent=2)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        tell(Msg("privacy.cli.written", path=str(output)))


@app.command("erase")
def erase(
    member: MemberArg,
    org: OrgOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: erasure cannot be undone")] = False,
) -> None:
    """Erase one member's personal data; what the metrics need stays, under the internal id only."""
    from qunyun.db.session import unit_of_work
    from qunyun.privacy.service import erase_member

    if not yes:
        raise CliFailure(Msg("privacy.cli.confirm"))
    require_schema()
    scope = lead_scope_of(resolve_org_id(org))
    with unit_of_work() as session:
        counts = erase_member(session, scope, member)
    print(json.dumps({"member": member, "erased": counts}, ensure_ascii=False))

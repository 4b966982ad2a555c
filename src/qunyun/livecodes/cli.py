"""``qunyun livecodes create|show``. The JSON of both is a stable contract (PRODUCT.md):

- ``create … --format json`` prints ``{"code": …, "url": "/c/…"}``;
- ``show CODE --format json`` prints ``{"code", "scans", "visitors", "fallback", "groups":
  [{"group": EXT, "routed": N, "limit": N, "joined": N}]}``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from qunyun.cli_support import CliFailure, lead_scope_of, require_schema, resolve_org_id
from qunyun.locale import Msg

app = typer.Typer(
    help="Live codes (活码): one stable URL per channel that routes scans to groups", no_args_is_help=True
)

OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


class Policy(StrEnum):
    fill = "fill"
    round_robin = "round_robin"
    region = "region"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="json (stable) or table")]


def _group_ids(session: Any, org_id: int, externals: list[str], connection: int | None) -> list[int]:
    from sqlalchemy import select

    from qunyun.models import Group

    query = select(Group.external_id, Group.id).where(Group.org_id == org_id, Group.external_id.in_(externals))
    if connection is not None:
        query = query.where(Group.connection_id == connection)
    found: dict[str, list[int]] = {}
    for external, group_id in session.execute(query):
        found.setdefault(external, []).append(group_id)
    ids = []
    for external in externals:
        matches = found.get(external, [])
        if not matches:
            raise CliFailure(Msg("err.livecode.unknown_group", group=external))
        if len(matches) > 1:
            raise CliFailure(Msg("err.livecode.ambiguous_group", group=external))
        ids.append(matches[0])
    return ids


@app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="The code's name (staff see it)")],
    groups: Annotated[str, typer.Option("--groups", help="External ids of the pool's groups, in order: EXT1,EXT2")],
    org: OrgOption = None,
    connection: Annotated[
        int | None, typer.Option("--connection", min=1, help="Connection of the groups, and of new groups")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Channel code the scans count for")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Scan limit of each group (default: its room, 200 for QR)")
    ] = None,
    policy: Annotated[Policy, typer.Option("--policy", help="fill, round_robin or region")] = Policy.fill,
    fallback_url: Annotated[
        str | None, typer.Option("--fallback-url", help="Where scans go when every group is full")
    ] = None,
    hook: Annotated[str, typer.Option("--hook", help="诱饵: what a visitor gets for joining")] = "",
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Create a live code over existing groups; prints its code and the path of its scan page."""
    from pydantic import ValidationError
    from sqlalchemy import select

    from qunyun.db.session import unit_of_work
    from qunyun.livecodes import service
    from qunyun.livecodes.schemas import LiveCodeCreate
    from qunyun.models import Channel, RoutingPolicy

    require_schema()
    org_id = resolve_org_id(org)
    externals = [g.strip() for g in groups.split(",") if g.strip()]
    with unit_of_work() as session:
        group_ids = _group_ids(session, org_id, externals, connection)
        channel_id = None
        if channel is not None:
            channel_id = session.scalar(select(Channel.id).where(Channel.org_id == org_id, Channel.code == channel))
            if channel_id is None:
                raise CliFailure(Msg("err.livecode.no_channel_code", code=channel))
        try:
            data = LiveCodeCreate(
                name=name,
                group_ids=group_ids,
                channel_id=channel_id,
                connection_id=connection,
                policy=RoutingPolicy(policy.value),
                default_limit=limit,
                fallback_url=fallback_url or "",
                hook_text=hook,
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise CliFailure(Msg("cli.error", message=f"--{field.replace('_', '-')}: {first['msg']}")) from None
        row = service.create_live_code(session, lead_scope_of(org_id), data)
        out = {"code": row.code, "url": service.public_path(row.code)}
    if fmt == OutputFormat.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"{out['code']}\t{out['url']}")


@app.command("show")
def show(
    code: Annotated[str, typer.Argument(help="The live code (the part after /c/)")],
    org: OrgOption = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """A live code's scans, visitors, scans served the fallback, and per group what was routed
    there, its limit and the joins attributed to it."""
    from qunyun.db.session import unit_of_work
    from qunyun.livecodes import service

    require_schema()
    org_id = resolve_org_id(org)
    with unit_of_work(write=False) as session:
        row = service.get_by_code(session, lead_scope_of(org_id), code)
        out = service.summary(session, lead_scope_of(org_id), row.id)
    if fmt == OutputFormat.json:
        print(json.dumps(out, ensure_ascii=False))
        return
    print(f"{out['code']}\tscans {out['scans']}\tvisitors {out['visitors']}\tfallback {out['fallback']}")
    for g in out["groups"]:
        print(f"{g['group']}\trouted {g['routed']}/{g['limit']}\tjoined {g['joined']}")

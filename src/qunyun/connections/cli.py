"""``qunyun connections``: add, list, test, disable and enable an organisation's connections, and
re-encrypt every secret with the current key. ``add … --format json`` is a stable contract
(PRODUCT.md): ``{"id", "platform", "callback_path"}``.

Secrets can be typed on the command line, but a command line is seen by other users of the
machine and kept in shell history, so each ``--secret`` value can also come from the environment
(``--secret token=env:NAME``), a file (``--secret token=file:PATH``) or standard input
(``--secret token=-``, one line per such secret, in the order given).
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from qunyun.cli_support import CliFailure, lead_scope_of, require_schema, resolve_org_id, tell
from qunyun.locale import Msg

app = typer.Typer(help="Connections: an organisation's accounts on platforms", no_args_is_help=True)

OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]


class OutputFormat(StrEnum):
    json = "json"
    table = "table"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="json (stable) or table")]


def _pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for number, item in enumerate(values, start=1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():  # never echoed: it may be a secret typed without its key
            raise CliFailure(Msg("conn.cli.bad_pair", option=option, number=number))
        pairs.append((key.strip(), value))
    return pairs


def _secret_value(key: str, value: str) -> str:
    """A secret's value: given, ``env:NAME``, ``file:PATH`` or ``-`` (a line of standard input)."""
    if value == "-":
        line = sys.stdin.readline()
        if not line:
            raise CliFailure(Msg("conn.cli.stdin_empty", name=key))
        return line.rstrip("\r\n")
    if value.startswith("env:"):
        name = value[4:]
        found = os.environ.get(name)
        if found is None:
            raise CliFailure(Msg("conn.cli.env_missing", name=key, variable=name))
        return found
    if value.startswith("file:"):
        return Path(value[5:]).read_text(encoding="utf-8").strip()  # OSError: one line
    return value


def _print(out: Any, fmt: OutputFormat, keys: tuple[str, ...]) -> None:
    rows = out if isinstance(out, list) else [out]
    data = [row.model_dump(mode="json") for row in rows]
    if fmt == OutputFormat.json:
        print(json.dumps(data if isinstance(out, list) else data[0], ensure_ascii=False))
        return
    for item in data:
        print("\t".join("" if item.get(k) is None else str(item.get(k)) for k in keys))


SHOWN = ("id", "platform", "name", "status", "callback_path", "last_error")


@app.command("add")
def add(
    platform: Annotated[str, typer.Argument(help="simulator, wecom, telegram or matrix")],
    name: Annotated[str, typer.Option("--name", help="A name unique in the organisation")],
    org: OrgOption = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A setting, key=value (repeat). simulator: seed, reconcile (true|false), record_to (a file "
            "in the var directory), groups (g1,g2); wecom: corp_id, agent_id; "
            "telegram: mode (webhook|polling); matrix: homeserver, user_id.",
        ),
    ] = None,
    secrets: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="A secret, key=value (repeat). simulator: webhook_secret; wecom: secret, token, aes_key; "
            "telegram: bot_token, webhook_secret; matrix: access_token. Keep it out of shell history: "
            "key=env:VARIABLE reads the environment, key=file:PATH a file, key=- a line of standard input.",
        ),
    ] = None,
    corp_id: Annotated[str | None, typer.Option("--corp-id", help="wecom: the corp id (ww…)")] = None,
    agent_id: Annotated[str | None, typer.Option("--agent-id", help="wecom: the app's AgentId")] = None,
    token: Annotated[str | None, typer.Option("--token", help="wecom: the callback token")] = None,
    aes_key: Annotated[str | None, typer.Option("--aes-key", help="wecom: the callback EncodingAESKey")] = None,
    api_base: Annotated[
        str | None, typer.Option("--api-base", help="wecom, telegram: where the platform's API answers")
    ] = None,
    bot_token: Annotated[str | None, typer.Option("--bot-token", help="telegram: the bot's token")] = None,
    webhook_secret: Annotated[
        str | None, typer.Option("--webhook-secret", help="telegram, simulator: the webhook's secret token")
    ] = None,
    polling: Annotated[bool, typer.Option("--polling", help="telegram: long polling instead of a webhook")] = False,
    homeserver: Annotated[str | None, typer.Option("--homeserver", help="matrix: the homeserver's URL")] = None,
    user_id: Annotated[str | None, typer.Option("--user-id", help="matrix: the bot's user id")] = None,
    access_token: Annotated[str | None, typer.Option("--access-token", help="matrix: the bot's access token")] = None,
    as_token: Annotated[str | None, typer.Option("--as-token", help="matrix: the appservice's as_token")] = None,
    hs_token: Annotated[str | None, typer.Option("--hs-token", help="matrix: the appservice's hs_token")] = None,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Add a connection; prints its id, platform and the callback path its webhooks go to
    (/hooks/PLATFORM/ID). It is stored even when the platform cannot be reached: its status says
    why, and `qunyun connections test ID` tries again.

    Each platform's settings and secrets can be given by name (`--corp-id`, `--bot-token`,
    `--access-token`…) or as `--set key=value` / `--secret key=value`; a secret's value may be
    `env:NAME`, `file:PATH` or `-` (standard input). For wecom, `--secret S` alone is the app secret."""
    from qunyun.connections.schemas import ConnectionAdded, callback_path
    from qunyun.connections.service import add_connection
    from qunyun.db.session import unit_of_work

    require_schema()
    org_id = resolve_org_id(org)
    secret_items = list(secrets or [])
    if platform == "wecom":  # `--secret S`: the app secret (a WeCom secret never holds "=")
        secret_items = [item if "=" in item else f"secret={item}" for item in secret_items]
    given_settings: dict[str, Any] = dict(_pairs(settings or [], "--set"))
    given_secrets = {key: _secret_value(key, value) for key, value in _pairs(secret_items, "--secret")}
    named_settings = {"corp_id": corp_id, "agent_id": agent_id, "api_base": api_base}
    named_settings |= {"homeserver": homeserver, "user_id": user_id}
    if polling:
        named_settings["mode"] = "polling"
    elif platform == "matrix" and (as_token is not None or hs_token is not None):
        named_settings["mode"] = "appservice"
    named_secrets = {"token": token, "aes_key": aes_key, "bot_token": bot_token, "webhook_secret": webhook_secret}
    named_secrets |= {"access_token": access_token, "as_token": as_token, "hs_token": hs_token}
    given_settings |= {key: value for key, value in named_settings.items() if value is not None}
    given_secrets |= {key: _secret_value(key, value) for key, value in named_secrets.items() if value is not None}
    with unit_of_work() as session:
        row = add_connection(session, lead_scope_of(org_id), platform, name, given_settings, given_secrets)
        added = ConnectionAdded(id=row.id, platform=row.platform, callback_path=callback_path(row.platform, row.id))
        status, error = row.status, row.last_error
    if fmt == OutputFormat.json:
        print(json.dumps(added.model_dump(), ensure_ascii=False))
    else:
        print(f"{added.id}\t{added.platform}\t{added.callback_path}")
    if error:
        tell(Msg("conn.cli.status", id=added.id, status=status, reason=error))


@app.command("list")
def list_(org: OrgOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """The organisation's connections (secrets are never shown: has_secrets says which are set)."""
    from qunyun.connections.schemas import ConnectionOut
    from qunyun.connections.service import list_connections
    from qunyun.db.session import unit_of_work

    require_schema()
    org_id = resolve_org_id(org)
    with unit_of_work(write=False) as session:
        rows = [ConnectionOut.of(row) for row in list_connections(session, lead_scope_of(org_id))]
    _print(rows, fmt, SHOWN)


def _act(action: str, connection_id: int, org: str | None, fmt: OutputFormat) -> None:
    from qunyun.connections import service
    from qunyun.connections.schemas import ConnectionOut
    from qunyun.db.session import unit_of_work

    require_schema()
    org_id = resolve_org_id(org)
    operation = {
        "test": service.test_connection,
        "disable": service.disable_connection,
        "enable": service.enable_connection,
    }[action]
    with unit_of_work() as session:
        out = ConnectionOut.of(operation(session, lead_scope_of(org_id), connection_id))
    _print(out, fmt, SHOWN)


ConnectionId = Annotated[int, typer.Argument(help="Connection id (see `qunyun connections list`)", min=1)]


@app.command("test")
def test(connection_id: ConnectionId, org: OrgOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """Try the connection again; its status becomes active, or error with the reason."""
    _act("test", connection_id, org, fmt)


@app.command("disable")
def disable(connection_id: ConnectionId, org: OrgOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """Turn the connection off: nothing is sent through it and its webhooks are refused."""
    _act("disable", connection_id, org, fmt)


@app.command("enable")
def enable(connection_id: ConnectionId, org: OrgOption = None, fmt: FormatOption = OutputFormat.table) -> None:
    """Turn a disabled connection back on (and test it)."""
    _act("enable", connection_id, org, fmt)


@app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every connection's secrets (all organisations) with QUNYUN_SECRET_KEY. After
    changing the key, put the old one in QUNYUN_PREVIOUS_SECRET_KEYS, run this, then remove it."""
    from qunyun.connections.service import rotate_key as rotate
    from qunyun.db.session import unit_of_work

    require_schema()
    with unit_of_work() as session:
        count = rotate(session)
    tell(Msg("conn.cli.rotated", count=count))


def import_connection(org_slug: str, connection_id: int) -> str:
    """``qunyun events import --connection ID``: the platform of connection ``connection_id`` of
    organisation ``org_slug`` (one line naming the connection when it is not one of its own)."""
    from sqlalchemy import select

    from qunyun.connections.service import get_connection
    from qunyun.db.session import unit_of_work
    from qunyun.errors import NotFound
    from qunyun.models import Organisation

    with unit_of_work(write=False) as session:
        org_id = session.scalar(select(Organisation.id).where(Organisation.slug == org_slug))
        if org_id is None:
            raise NotFound(Msg("err.connection.not_found", id=connection_id), field="connection_id")
        return get_connection(session, org_id, connection_id).platform

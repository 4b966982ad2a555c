"""``qunyun telegram``: point a Telegram bot's webhook at qunyun, or take it away.

``set-webhook ID --url https://qunyun.example.org`` calls ``setWebhook`` with the connection's
callback address (``{url}/hooks/telegram/{ID}``), its ``webhook_secret`` as ``secret_token``
and ``allowed_updates`` naming ``chat_member`` (Telegram leaves it out by default).
``delete-webhook ID`` removes it (a connection switching to polling)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from qunyun.cli_support import CliFailure, lead_scope_of, require_schema, resolve_org_id, tell
from qunyun.connectors.base import TransientError
from qunyun.connectors.registry import ConnectionConfig
from qunyun.locale import Msg

app = typer.Typer(help="Telegram connections: webhook set-up", no_args_is_help=True)

ConnectionId = Annotated[int, typer.Argument(help="Connection id (see `qunyun connections list`)", min=1)]
OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]


def _config(connection_id: int, org: str | None) -> ConnectionConfig:
    from qunyun.connections.service import require_connection
    from qunyun.connectors.registry import config_of
    from qunyun.db.session import unit_of_work

    require_schema()
    org_id = resolve_org_id(org)
    with unit_of_work(write=False) as session:
        row = require_connection(session, lead_scope_of(org_id), connection_id)
        if row.platform != "telegram":
            raise CliFailure(Msg("err.telegram.not_telegram", id=connection_id))
        return config_of(row)


def _call(config: ConnectionConfig, method: str, params: dict[str, Any]) -> None:
    from qunyun.connectors.telegram.botapi import BotApiError, OutcomeUnknown
    from qunyun.connectors.telegram.factory import api_of

    api = api_of(config)
    try:
        api.call(method, params)
    except (BotApiError, TransientError, OutcomeUnknown) as exc:
        raise CliFailure(Msg("err.telegram.api", reason=str(exc))) from None
    finally:
        api.close()


@app.command("set-webhook")
def set_webhook(
    connection_id: ConnectionId,
    url: Annotated[str, typer.Option("--url", help="qunyun's public HTTPS address, e.g. https://qunyun.example.org")],
    org: OrgOption = None,
) -> None:
    """Have Telegram post this connection's updates to qunyun (with its secret token)."""
    from qunyun.connections.schemas import callback_path
    from qunyun.connectors.telegram.updates import ALLOWED_UPDATES

    if not url.startswith("https://"):
        raise CliFailure(Msg("err.telegram.bad_url"))
    config = _config(connection_id, org)
    secret = config.secrets.get("webhook_secret")
    if not secret:
        raise CliFailure(Msg("hooks.rejected.unsigned"))
    target = url.rstrip("/") + callback_path("telegram", connection_id)
    params = {"url": target, "secret_token": secret, "allowed_updates": list(ALLOWED_UPDATES), "max_connections": 40}
    _call(config, "setWebhook", params)
    tell(Msg("telegram.cli.webhook_set", id=connection_id, url=target))


@app.command("delete-webhook")
def delete_webhook(connection_id: ConnectionId, org: OrgOption = None) -> None:
    """Stop Telegram posting to a webhook (updates wait for getUpdates instead)."""
    config = _config(connection_id, org)
    _call(config, "deleteWebhook", {"drop_pending_updates": False})
    tell(Msg("telegram.cli.webhook_deleted", id=connection_id))

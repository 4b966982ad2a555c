"""Matrix connections: a bot account (``access_token``) or an application service
(``as_token``, acting as ``user_id``, the registration's sender)."""

from __future__ import annotations

from qunyun.connectors.matrix.api import MatrixApi, MatrixError
from qunyun.connectors.matrix.client import MatrixConnector
from qunyun.connectors.registry import ConnectionConfig


class MatrixCheckFailed(Exception):
    """Why a Matrix connection cannot be used (English; no secret in it)."""


def token_of(config: ConnectionConfig) -> str:
    mode = config.settings.get("mode") or "bot"
    name = "as_token" if mode == "appservice" else "access_token"
    token = config.secrets.get(name)
    if not isinstance(token, str) or not token:
        raise MatrixCheckFailed(f"the connection has no {name}")
    return token


def build(config: ConnectionConfig) -> MatrixConnector:
    user_id = config.settings.get("user_id")
    return MatrixConnector(
        str(config.settings["homeserver"]),
        token_of(config),
        user_id=user_id if isinstance(user_id, str) and user_id else None,
    )


def check(config: ConnectionConfig) -> None:
    """Ask the homeserver whose token this is (``/account/whoami``); it must be ``user_id``
    when one is set."""
    api = MatrixApi(str(config.settings["homeserver"]), token_of(config), timeout=10.0)
    try:
        query = None
        user_id = config.settings.get("user_id")
        if (config.settings.get("mode") or "bot") == "appservice" and isinstance(user_id, str) and user_id:
            query = {"user_id": user_id}  # an appservice asks as its sender
        answer = api.request("GET", "/_matrix/client/v3/account/whoami", query=query)
    except MatrixError as exc:
        raise MatrixCheckFailed(f"the homeserver refused the token ({exc.errcode or exc.status})") from None
    finally:
        api.close()
    actual = answer.get("user_id")
    expected = config.settings.get("user_id")
    if expected and actual != expected:
        raise MatrixCheckFailed(f"the token belongs to {actual}, not to {expected}")

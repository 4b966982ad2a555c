"""Telegram connections: a connector per bot token; ``check`` asks Telegram who the bot is and
readies the chosen way in (polling: no webhook may be set, or getUpdates is refused)."""

from __future__ import annotations

from sqlalchemy import Engine

from qunyun.connectors.pace import shared_windows
from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.telegram.botapi import BotApi
from qunyun.connectors.telegram.client import Limiter, TelegramConnector
from qunyun.errors import InvalidInput
from qunyun.locale import Msg


def api_of(config: ConnectionConfig, *, timeout: float = 15.0) -> BotApi:
    token = config.secrets.get("bot_token")
    if not isinstance(token, str) or not token:
        raise InvalidInput(Msg("err.telegram.no_token"), field="bot_token")
    api_base = config.settings.get("api_base")
    return BotApi(token, api_base if isinstance(api_base, str) and api_base else None, timeout=timeout)


def _engine() -> Engine:
    from qunyun.db.session import get_engine

    return get_engine()


def build(config: ConnectionConfig) -> TelegramConnector:
    """The connection's connector; its rate budgets are the bot's, shared with the other
    processes through Redis when ``QUNYUN_REDIS_URL`` is set (a bot's limits are Telegram's per
    bot, whichever process calls)."""
    api = api_of(config)
    limiter = Limiter(windows=shared_windows(), prefix=f"telegram:{api.bot_id}:")
    return TelegramConnector(api, org_id=config.org_id, engine=_engine, limiter=limiter)


def check(config: ConnectionConfig) -> None:
    """getMe (the token works); in polling mode also deleteWebhook (Telegram refuses getUpdates
    while a webhook is set). A webhook is set with ``qunyun telegram set-webhook``."""
    api = api_of(config, timeout=10.0)
    try:
        me = api.call("getMe")
        if not isinstance(me, dict) or not me.get("is_bot"):
            raise ValueError("getMe did not describe a bot")
        if config.settings.get("mode") == "polling":
            api.call("deleteWebhook", {"drop_pending_updates": False})
    finally:
        api.close()

"""WeCom connections: a connector per connection (client with the shared token cache), and the
connection check (gettoken with its corp id and secret)."""

from __future__ import annotations

from qunyun.connectors.pace import shared_windows
from qunyun.connectors.registry import ConnectionConfig
from qunyun.connectors.wecom.client import RateLimiter, WeComClient
from qunyun.connectors.wecom.connector import WeComConnector
from qunyun.connectors.wecom.tokens import TokenCache


def client_for(config: ConnectionConfig, *, timeout: float = 10.0) -> WeComClient:
    """The connection's client; its per-API rate windows are the corp's, shared with the other
    processes through Redis when ``QUNYUN_REDIS_URL`` is set."""
    corp_id = str(config.settings.get("corp_id") or "")
    return WeComClient(
        corp_id,
        str(config.secrets.get("secret") or ""),
        TokenCache(config.id),
        api_base=config.settings.get("api_base") or None,
        timeout=timeout,
        limiter=RateLimiter(windows=shared_windows(), prefix=f"wecom:{corp_id}:"),
    )


def build(config: ConnectionConfig) -> WeComConnector:
    return WeComConnector(config.id, client_for(config))


def check(config: ConnectionConfig) -> None:
    """Ask gettoken with the connection's corp id and secret; raises ``WeComApiError`` with the
    reason in words (40013 wrong corp id, 40001 wrong secret …) or ``WeComBusy`` when unreachable."""
    client = client_for(config, timeout=5.0)
    try:
        client.fetch_token()
    finally:
        client.close()

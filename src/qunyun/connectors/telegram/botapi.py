"""A small synchronous Bot API client (``POST {api_base}/bot{token}/{method}`` with a JSON body).

Telegram answers ``{"ok": true, "result": …}`` or ``{"ok": false, "error_code", "description",
"parameters": {"retry_after" | "migrate_to_chat_id"}}``. This maps the answers onto the
connector's errors:

- 429 (``retry_after`` seconds) → :class:`RateLimited`, a ``TransientError`` that carries the wait;
- 400 with ``migrate_to_chat_id`` → :class:`ChatMigrated` (the group is a supergroup now);
- 5xx, or no connection at all → ``TransientError`` (nothing reached Telegram, or it failed);
- a timeout after the request was sent → :class:`OutcomeUnknown` (it may have been performed);
- any other error → :class:`BotApiError` (permanent: the same call fails the same way).

The token is part of every URL: it is never logged (httpx logs request URLs; a filter on its
logger masks the token).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx

from qunyun.connectors.base import TransientError

DEFAULT_API_BASE = "https://api.telegram.org"
_TOKEN_IN_URL = re.compile(r"/bot[0-9]+:[A-Za-z0-9_\-]+")


def _masked(arg: object) -> object:
    if isinstance(arg, int | float) or arg is None:
        return arg  # numbers keep their %d
    text = str(arg)
    return _TOKEN_IN_URL.sub("/bot***", text) if "/bot" in text else arg


class _MaskToken(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(a) for a in record.args)
        record.msg = _TOKEN_IN_URL.sub("/bot***", str(record.msg))
        return True


for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _MaskToken) for f in _logger.filters):
        _logger.addFilter(_MaskToken())


class BotApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class RateLimited(TransientError):
    retry_after: float

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited: retry after {retry_after:g} s")
        self.retry_after = retry_after


class ChatMigrated(BotApiError):
    def __init__(self, description: str, new_chat_id: int) -> None:
        super().__init__(400, description)
        self.new_chat_id = new_chat_id


class OutcomeUnknown(Exception):
    """The request was sent but no answer came: Telegram may have performed it."""


class BotApi:
    def __init__(self, token: str, api_base: str | None = None, *, timeout: float = 15.0) -> None:
        self._token = token
        self.base = (api_base or DEFAULT_API_BASE).rstrip("/")
        self._client = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"BotApi(base={self.base!r})"

    @property
    def bot_id(self) -> str:
        return self._token.split(":", 1)[0]

    def close(self) -> None:
        self._client.close()

    def __del__(self) -> None:  # a connector dropped when its connection changed: free its sockets
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        url = f"{self.base}/bot{self._token}/{method}"
        body = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            if timeout is None:
                response = self._client.post(url, json=body)
            else:
                response = self._client.post(url, json=body, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"{method}: cannot reach the Bot API ({type(exc).__name__})") from None
        except httpx.TimeoutException as exc:
            raise OutcomeUnknown(f"{method}: no answer ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise OutcomeUnknown(f"{method}: connection lost ({type(exc).__name__})") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if response.status_code >= 500:
                raise TransientError(f"{method}: HTTP {response.status_code}")
            raise BotApiError(response.status_code, "not a Bot API answer")
        if data.get("ok") is True:
            return data.get("result")
        code = int(data.get("error_code") or response.status_code)
        description = str(data.get("description") or "")[:300]
        parameters = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        assert isinstance(parameters, dict)
        if code == 429:
            retry_after = parameters.get("retry_after")
            raise RateLimited(float(retry_after) if isinstance(retry_after, int | float) else 1.0)
        if isinstance(parameters.get("migrate_to_chat_id"), int):
            raise ChatMigrated(description, parameters["migrate_to_chat_id"])
        if code >= 500:
            raise TransientError(f"{method}: {code} {description}")
        raise BotApiError(code, description)

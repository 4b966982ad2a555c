"""Calls to a homeserver's client-server API, synchronous, over httpx.

The requests are built by matrix-nio's sans-I/O :class:`nio.Api` (paths, query strings and
bodies as the specification spells them). nio puts the access token in the query string; it is
taken out here and sent as ``Authorization: Bearer`` instead, so that no URL that reaches a log
(httpx logs the URLs it requests) carries it.

Errors: a timeout, a connection failure, a 5xx or a 429 raise :class:`TransientError` (retry later
with the same key; a 429's ``retry_after_ms`` is kept on the error); any other 4xx raises
:class:`MatrixError` with the homeserver's ``errcode`` (a permanent refusal).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from qunyun.connectors.base import TransientError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


class MatrixError(Exception):
    """The homeserver refused a request (4xx other than 429): ``errcode`` says why."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(f"{status} {errcode}: {error}"[:300])
        self.status = status
        self.errcode = errcode
        self.error = error


class MatrixTransient(TransientError):
    """A failure worth retrying; ``retry_after`` in seconds when the homeserver said (429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _strip_token(path: str) -> str:
    """``path`` without its ``access_token`` query parameter (nio adds one to every call)."""
    parts = urlsplit(path)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "access_token"]
    return urlunsplit(("", "", parts.path, urlencode(query), ""))


class MatrixApi:
    """One account's (or one application service's) view of a homeserver."""

    def __init__(
        self,
        homeserver: str,
        access_token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.homeserver = homeserver.rstrip("/")
        self._token = access_token
        self._http = httpx.Client(
            base_url=self.homeserver,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {access_token}"},
            follow_redirects=False,
        )
        # A connector dropped by the registry (its connection changed) closes its connections.
        self._finalizer = weakref.finalize(self, self._http.close)

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        return f"MatrixApi({self.homeserver!r})"

    @property
    def token(self) -> str:
        """The access token (placeholder for nio's builders, which want one)."""
        return self._token

    def close(self) -> None:
        self._finalizer()

    def call(
        self,
        request: tuple[str, ...],
        *,
        timeout: float | None = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send a request built by :class:`nio.Api` (``(method, path)`` or ``(method, path,
        body)``) and return the JSON answer."""
        method, path = request[0], _strip_token(request[1])
        body = request[2] if len(request) > 2 else None
        return self.request(method, path, content=body, timeout=timeout, query=query)

    def request(
        self,
        method: str,
        path: str,
        *,
        content: str | bytes | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        if json_body is not None:
            content = json.dumps(json_body)
        headers = {"Content-Type": "application/json"} if content is not None else {}
        try:
            response = self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                params=dict(query) if query else None,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException as exc:
            raise MatrixTransient(f"{method} timed out: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise MatrixTransient(f"{method} failed: {type(exc).__name__}") from None
        return self._answer(method, response)

    @staticmethod
    def _answer(method: str, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        status = response.status_code
        if status < 300:
            return data
        errcode = str(data.get("errcode") or "")
        error = str(data.get("error") or "")
        if status == 429 or errcode == "M_LIMIT_EXCEEDED":
            retry_ms = data.get("retry_after_ms")
            retry = float(retry_ms) / 1000 if isinstance(retry_ms, int | float) else None
            raise MatrixTransient(f"{method}: rate limited", retry_after=retry)
        if status >= 500:
            raise MatrixTransient(f"{method}: homeserver answered {status} {errcode}")
        raise MatrixError(status, errcode, error)

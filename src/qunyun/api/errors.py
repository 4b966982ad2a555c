"""Render every error as one JSON shape: ``{"code", "message", "field"?, "detail"?}``.

Console pages (paths outside /api) get a small HTML page instead, except that an unauthenticated
console request is sent to the login page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from qunyun.auth.throttle import TooManyAttempts
from qunyun.errors import InvalidInput, QunyunError, Unauthenticated
from qunyun.locale import Msg

log = logging.getLogger(__name__)

# The parts of a validation location that say where, not what: dropped from the field name.
_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/healthz"


def field_name(loc: Sequence[int | str]) -> str:
    """('body', 'assignments', 0, 'staff_id') → 'assignments.0.staff_id'."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in _LOCATIONS:
        parts = parts[1:]
    return ".".join(parts) or "body"


def error_response(exc: QunyunError, request: Request | None = None) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyAttempts):
        headers["Retry-After"] = str(exc.retry_after)
    if request is not None and not _is_api(request):
        # Imported here: the console module imports modules that import this one.
        from qunyun.api.console import console_error_page

        if isinstance(exc, Unauthenticated):
            return RedirectResponse("/login", status_code=303)
        return console_error_page(request, exc, headers)
    return JSONResponse(exc.as_dict(api_language(request)), status_code=exc.status_code, headers=headers)


def api_language(request: Request | None) -> str:
    """API messages are English unless the caller asks for Chinese with Accept-Language."""
    if request is None:
        return "en"
    accept = request.headers.get("accept-language", "").strip().lower()
    return "zh" if accept.startswith("zh") else "en"


def validation_error(exc: RequestValidationError) -> InvalidInput:
    """Pydantic's error list → one InvalidInput naming the first bad field (all are in detail)."""
    errors: list[dict[str, Any]] = []
    for err in exc.errors():
        # A body that is not JSON at all has the byte offset as its location, not a field.
        name = "body" if err.get("type") == "json_invalid" else field_name(err.get("loc", ()))
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        errors.append({"field": name, "message": message, "type": err.get("type", "")})
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return InvalidInput(f"{first['field']}: {first['message']}", field=first["field"], errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    async def on_qunyun_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, QunyunError)
        return error_response(exc, request)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc), request)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "forbidden"}
        error = QunyunError(str(exc.detail))
        error.status_code = exc.status_code
        error.code = codes.get(exc.status_code, "http_error")
        response = error_response(error, request)
        for key, value in (exc.headers or {}).items():
            response.headers.setdefault(key, value)
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = QunyunError(Msg("err.internal"))
        error.status_code = 500
        error.code = "internal_error"
        return error_response(error, request)

    app.add_exception_handler(QunyunError, on_qunyun_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

"""Render every error as one JSON shape: ``{"code", "message", "field"?, "detail"?}``.

Console pages (paths outside /api) get a small HTML page instead, except that an unauthenticated
console request is sent to the login page.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from qunyun.auth.throttle import TooManyAttempts
from qunyun.errors import InvalidInput, NotFound, QunyunError, Unauthenticated
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


# Range errors on a path parameter: the id is out of the range of its column, so no such object
# can exist — the same 404 as an id that is merely unused (api/pagination.py).
_RANGE_TYPES = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than", "int_parsing_size"})
_NOT_FOUND_KEYS = {"group_id": "api.no_group", "member_id": "api.no_member", "staff_id": "api.no_staff"}

# Pydantic error type → catalogue key (api.v.<key>); several types share a sentence. A type not
# listed here gets the generic "api.v.other", which carries pydantic's own English text.
_PROBLEM_KEYS = {
    "missing": "missing",
    "string_too_short": "string_too_short",
    "string_too_long": "string_too_long",
    "too_short": "too_short",
    "too_long": "too_long",
    "greater_than_equal": "greater_than_equal",
    "greater_than": "greater_than",
    "less_than_equal": "less_than_equal",
    "less_than": "less_than",
    "int_parsing": "int",
    "int_type": "int",
    "int_from_float": "int_from_float",
    "int_parsing_size": "int_parsing_size",
    "float_parsing": "number",
    "float_type": "number",
    "decimal_parsing": "number",
    "decimal_type": "number",
    "finite_number": "number",
    "decimal_max_digits": "decimal_max_digits",
    "decimal_max_places": "decimal_max_places",
    "decimal_whole_digits": "decimal_whole_digits",
    "bool_parsing": "bool",
    "bool_type": "bool",
    "date_parsing": "date",
    "date_type": "date",
    "date_from_datetime_parsing": "date",
    "date_from_datetime_inexact": "date",
    "datetime_parsing": "datetime",
    "datetime_type": "datetime",
    "datetime_from_date_parsing": "datetime",
    "timezone_aware": "timezone_aware",
    "literal_error": "one_of",
    "enum": "one_of",
    "extra_forbidden": "extra_forbidden",
    "json_invalid": "json_invalid",
    "json_type": "json_invalid",
    "list_type": "list",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
    "string_type": "string",
    "string_unicode": "string",
    "string_pattern_mismatch": "pattern",
    "not_null": "not_null",
    "blank": "blank",
}


_CHOICE_SEPARATOR = re.compile(r"(?<='), (?=')|(?<=') or (?=')")


def problem_message(error_type: str, ctx: dict[str, Any] | None, fallback: str) -> Msg:
    """One pydantic error (its ``type``, ``ctx`` and English ``msg``) as a localized sentence
    without the field name, e.g. "must be at most 200 characters" / "最多 200 个字符"."""
    ctx = dict(ctx or {})
    if error_type == "string_too_short" and ctx.get("min_length") == 1:
        return Msg("api.v.blank")
    key = _PROBLEM_KEYS.get(error_type)
    if key is None:
        return Msg("api.v.other", detail=fallback.removeprefix("Value error, "))
    values = {
        name: ctx[name]
        for name in (
            "min_length",
            "max_length",
            "ge",
            "gt",
            "le",
            "lt",
            "expected",
            "pattern",
            "max_digits",
            "decimal_places",
            "whole_digits",
        )
        if name in ctx
    }
    if isinstance(values.get("expected"), str):
        # "'a', 'b' or 'c'" → "'a', 'b', 'c'": a list that reads the same in every language.
        values["expected"] = ", ".join(_CHOICE_SEPARATOR.split(values["expected"]))
    return Msg(f"api.v.{key}", **values)


class ValidationFailed(InvalidInput):
    """Bad request input: the first problem as the message, every problem in ``detail.errors``
    as ``{field, message, type}``, each message in the reader's language."""

    def __init__(self, problems: list[tuple[str, Msg, str]]) -> None:
        field, problem, _ = problems[0] if problems else ("body", Msg("api.v.invalid_request"), "")
        super().__init__(Msg("api.invalid_field", field=field, problem=problem), field=field)
        self.problems = problems

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        body = super().as_dict(lang)
        body["detail"] = {
            "errors": [
                {"field": field, "message": problem.render(lang), "type": error_type}
                for field, problem, error_type in self.problems
            ]
        }
        return body


def validation_error(exc: RequestValidationError) -> QunyunError:
    """Pydantic's error list → one ValidationFailed naming the first bad field (all are in
    detail), or NotFound when a path id is out of the range any object's id can have."""
    problems: list[tuple[str, Msg, str]] = []
    for err in exc.errors():
        error_type = str(err.get("type", ""))
        loc = tuple(err.get("loc", ()))
        if loc[:1] == ("path",) and error_type in _RANGE_TYPES:
            name = field_name(loc)
            key = _NOT_FOUND_KEYS.get(name)
            value = err.get("input")
            message = Msg(key, id=value) if key else Msg("api.no_such_id", field=name, id=value)
            return NotFound(message, field=name)
        # A body that is not JSON at all has the byte offset as its location, not a field.
        name = "body" if error_type in ("json_invalid", "json_type") else field_name(loc)
        problems.append((name, problem_message(error_type, err.get("ctx"), str(err.get("msg", ""))), error_type))
    return ValidationFailed(problems)


def out_of_range(exc: Exception) -> InvalidInput:
    """A number the database cannot hold (SQLite: OverflowError past 2^63 - 1; PostgreSQL: numeric
    value out of range, or text longer than its column): bad input, not a server fault. Every
    route bounds its numbers first; this is the net for a bound that was missed."""
    log.warning("input out of the database's range reached a query: %s", exc)
    return InvalidInput(Msg("api.out_of_range"))


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

    async def on_out_of_range(request: Request, exc: Exception) -> Response:
        return error_response(out_of_range(exc), request)

    app.add_exception_handler(QunyunError, on_qunyun_error)
    app.add_exception_handler(OverflowError, on_out_of_range)
    app.add_exception_handler(DataError, on_out_of_range)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)

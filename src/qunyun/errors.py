"""One error base class: an HTTP status, a machine-readable code and a message a user can act on."""

from __future__ import annotations

from typing import Any


class QunyunError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.detail:
            body["detail"] = self.detail
        return body


class InvalidInput(QunyunError):
    status_code = 422
    code = "invalid_input"


class NotFound(QunyunError):
    status_code = 404
    code = "not_found"


class Conflict(QunyunError):
    status_code = 409
    code = "conflict"


class Unauthenticated(QunyunError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(QunyunError):
    status_code = 403
    code = "forbidden"

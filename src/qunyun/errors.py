"""One error base class: an HTTP status, a machine-readable code and a message a user can act on.

The message is a ``Msg`` (a catalogue key and its values, see ``qunyun.locale``) so that the
console shows it in Chinese or English and the API in the language asked for; ``message`` is the
English text.
"""

from __future__ import annotations

from typing import Any

from qunyun.locale import Msg


class QunyunError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: Msg | str, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(str(message))
        self.msg = message if isinstance(message, Msg) else None
        self.message = str(message)
        self.field = field
        self.detail = detail

    def localized(self, lang: str) -> str:
        """The message in ``lang`` (zh or en)."""
        return self.msg.render(lang) if self.msg is not None else self.message

    def as_dict(self, lang: str = "en") -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.localized(lang)}
        if self.field:
            body["field"] = self.field
        if self.detail:
            body["detail"] = {k: str(v) if isinstance(v, Msg) else v for k, v in self.detail.items()}
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

"""The compact form of one validated event, as the ingestion pipeline consumes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qunyun.models.event import EventKind


@dataclass(slots=True)
class ParsedEvent:
    """One valid event. The fields every hot path needs are attributes; the optional fields of
    the rarer kinds live in ``extra`` (kept small: building these is the import's inner loop)."""

    external_id: str
    kind: EventKind
    ts: int  # UTC epoch microseconds
    group: str | None
    member: str | None
    msg_type: int | None = None
    length: int | None = None
    text: str | None = None
    # The platform's message id (message.posted, message.deleted).
    message: str | None = None
    # The member's display name as the platform told it (joins, leaves, messages); "" tells nothing.
    member_name: str | None = None
    extra: dict[str, Any] | None = None

    def _get(self, name: str) -> Any:
        return self.extra.get(name) if self.extra is not None else None

    channel = property(lambda self: self._get("channel"))
    link = property(lambda self: self._get("link"))
    inviter = property(lambda self: self._get("inviter"))
    scene = property(lambda self: self._get("scene"))
    reason = property(lambda self: self._get("reason"))
    order = property(lambda self: self._get("order"))
    amount_fen = property(lambda self: self._get("amount_fen"))
    product = property(lambda self: self._get("product"))
    name = property(lambda self: self._get("name"))
    capacity = property(lambda self: self._get("capacity"))
    region = property(lambda self: self._get("region"))
    tier = property(lambda self: self._get("tier"))
    owner = property(lambda self: self._get("owner"))

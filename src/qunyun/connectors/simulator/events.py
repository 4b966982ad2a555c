"""Interchange-format v1 events as the simulator reports them (the simulator speaks v1 natively,
so its "raw" callbacks are v1 events and normalization is validation)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from qunyun.errors import InvalidInput
from qunyun.locale import Msg

# Required fields per kind, beyond id, ts and kind (PRODUCT.md, "Event interchange format v1").
REQUIRED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "group.created": ("group", "name"),
    "member.joined": ("group", "member"),
    "member.left": ("group", "member"),
    "message.posted": ("group", "member", "msg_type"),
    "message.deleted": ("group", "message"),
    "order.paid": ("order", "member", "amount"),
    "order.refunded": ("order", "amount"),
}


def event(kind: str, ts: datetime, **fields: Any) -> dict[str, Any]:
    """An event without its id (assigned when reported); ``None`` fields are left out."""
    out: dict[str, Any] = {"ts": ts.isoformat(), "kind": kind}
    out.update({name: value for name, value in fields.items() if value is not None})
    return out


def validate(raw: Any, index: int = 0) -> dict[str, Any]:
    """A copy of ``raw`` if it is a well-formed v1 event; ``InvalidInput`` naming the field."""
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            Msg("err.event.at_index", index=index, reason=Msg("err.sim.not_object")), field=f"events[{index}]"
        )
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in REQUIRED_FIELDS:
        raise InvalidInput(
            Msg("err.event.at_index", index=index, reason=Msg("err.sim.unknown_kind", kind=repr(kind))),
            field=f"events[{index}].kind",
        )
    for name in ("id", "ts", *REQUIRED_FIELDS[kind]):
        value = raw.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidInput(
                Msg("err.event.at_index", index=index, reason=Msg("err.sim.required", field=name)),
                field=f"events[{index}].{name}",
            )
    try:
        ts = datetime.fromisoformat(raw["ts"])
    except ValueError as exc:
        raise InvalidInput(
            Msg("err.event.at_index", index=index, reason=Msg("err.sim.ts_format")), field=f"events[{index}].ts"
        ) from exc
    if ts.tzinfo is None:
        raise InvalidInput(
            Msg("err.event.at_index", index=index, reason=Msg("err.sim.ts_offset")), field=f"events[{index}].ts"
        )
    return dict(raw)

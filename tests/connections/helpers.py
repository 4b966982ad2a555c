"""Connection rows for tests that arrange them directly rather than through the service."""

from __future__ import annotations

from typing import Any

from qunyun.models import Connection
from qunyun.timeutil import utcnow


def connection_row(org_id: int, name: str, *, platform: str = "simulator", **columns: Any) -> Connection:
    """An unsaved connection of ``org_id``: active, no settings, no secrets, unless ``columns`` say."""
    now = utcnow()
    values: dict[str, Any] = {
        "settings": {},
        "secrets": "",
        "status": "active",
        "created_at": now,
        "updated_at": now,
        **columns,
    }
    return Connection(org_id=org_id, platform=platform, name=name, **values)

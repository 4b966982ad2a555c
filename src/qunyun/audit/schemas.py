"""Audit log entries as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    staff_id: int | None
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    ip: str | None
    user_agent: str | None
    at: datetime

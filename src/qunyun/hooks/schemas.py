"""The inbox's job payloads and what its pages and answers are made of."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

PROCESS_KIND = "hooks.process"
PURGE_KIND = "hooks.purge_payloads"


class ProcessDelivery(BaseModel):
    """The payload of a ``hooks.process`` job: the delivery to normalize and ingest."""

    delivery_id: int = Field(gt=0)


@dataclass(frozen=True)
class RejectionCount:
    """Refusals of one connection for one reason: today (UTC) and over the last days."""

    connection_id: int
    connection_name: str
    reason: str
    today: int
    recent: int
    last_at: datetime


@dataclass(frozen=True)
class Receipt:
    """What became of an accepted request: the delivery it is stored as, and whether it was new."""

    delivery_id: int
    created: bool

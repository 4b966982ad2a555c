"""Arranging data for the console tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from qunyun.ingestion.service import ingest
from qunyun.models import Staff
from qunyun.team.service import create_organisation
from tests.api.conftest import World


def qiji_organisation(world: World, password_hash: str, events: list[dict[str, object]]) -> int:
    """Organisation 骑迹 (slug qiji) with a lead, qiji-lead, and ``events`` ingested as history."""
    with world.db() as s:
        organisation = create_organisation(s, name="骑迹", slug="qiji")
        now = datetime.now(ZoneInfo("Asia/Shanghai"))
        s.add(Staff(org_id=organisation.id, username="qiji-lead", display_name="Lead",
                    password_hash=password_hash, role="lead", created_at=now))  # fmt: skip
        ingest(s, organisation.id, events, platform="sim", source="test", live=False)
        s.commit()
        return organisation.id

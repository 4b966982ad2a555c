"""Member personas pulled from the platform through the connector (``member_profiles``).

Platforms know part of a member's persona (WeCom: name and gender; the simulator: everything).
Ingestion creates members from events with empty persona fields; this fills them in, through the
connector interface like every other platform call. Erased members are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qunyun.connectors.base import Capability, Connector, MemberProfile, get_connector
from qunyun.models import Member
from qunyun.worker.queue import enqueue, job_handler

SYNC_JOB = "crm.sync_member_profiles"
CHUNK = 500  # external ids per platform call


def _changes(profile: MemberProfile) -> dict[str, Any]:
    """The columns a profile sets: only what the platform knows (``None`` keeps the stored value)."""
    values: dict[str, Any] = {}
    if profile.display_name:
        values["display_name"] = profile.display_name[:200]
    if profile.gender in ("male", "female"):
        values["gender"] = profile.gender
    if profile.birth_year is not None:
        values["birth_year"] = profile.birth_year
    if profile.occupation is not None:
        values["occupation"] = profile.occupation[:100]
    if profile.region is not None:
        values["region"] = profile.region[:64]
    if profile.interests is not None:
        values["interests"] = list(profile.interests)
    return values


def sync_member_profiles(session: Session, org_id: int, connector: Connector, member_ids: Sequence[int]) -> int:
    """Fetch the persona of ``member_ids`` (members of ``connector``'s platform) and store it,
    overwriting only the fields the platform knows; returns how many members were updated."""
    if not member_ids or not connector.profile.has(Capability.MEMBER_PROFILES):
        return 0
    updated = 0
    ids = sorted(set(member_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        rows = session.execute(
            select(Member.id, Member.external_id).where(
                Member.org_id == org_id,
                Member.platform == connector.platform,
                Member.id.in_(chunk),
                Member.erased_at.is_(None),
            )
        ).all()
        if not rows:
            continue
        profiles = connector.fetch_member_profiles([external_id for _, external_id in rows])
        params = []
        for member_id, external_id in rows:
            profile = profiles.get(external_id)
            values = _changes(profile) if profile is not None else {}
            if values:
                params.append({"id": member_id, **values})
        # Rows with the same set of columns go in one executemany (bulk UPDATE by primary key).
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for p in params:
            by_columns.setdefault(tuple(sorted(p)), []).append(p)
        for batch in by_columns.values():
            session.execute(update(Member), batch)
        updated += len(params)
    return updated


def request_profile_sync(session: Session, org_id: int, platform: str, member_ids: Sequence[int]) -> None:
    """Enqueue a profile sync of ``member_ids`` in the caller's transaction (run by the worker)."""
    if member_ids:
        enqueue(
            session,
            SYNC_JOB,
            {"org_id": org_id, "platform": platform, "member_ids": sorted(set(member_ids))},
            org_id=org_id,
        )


class SyncProfilesPayload(BaseModel):
    """The payload of ``crm.sync_member_profiles``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int
    platform: str = Field(min_length=1)
    member_ids: list[int]


@job_handler(SYNC_JOB, payload=SyncProfilesPayload)
def sync_member_profiles_job(session: Session, payload: SyncProfilesPayload) -> None:
    """Job: fetch the platform's profiles of ``member_ids``; the platform's connector must be
    configured (else the job fails and is retried)."""
    sync_member_profiles(session, payload.org_id, get_connector(payload.platform), payload.member_ids)

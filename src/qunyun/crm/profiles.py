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

from qunyun.connections.service import default_connection, get_connection
from qunyun.connectors import registry
from qunyun.connectors.base import Capability, Connector, MemberProfile
from qunyun.errors import InvalidInput
from qunyun.locale import Msg
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


def request_profile_sync(
    session: Session, org_id: int, platform: str, member_ids: Sequence[int], *, connection_id: int | None = None
) -> None:
    """Enqueue a profile sync of ``member_ids`` in the caller's transaction (run by the worker),
    through connection ``connection_id`` (None: the organisation's default one for ``platform``)."""
    if member_ids:
        payload: dict[str, Any] = {"org_id": org_id, "platform": platform, "member_ids": sorted(set(member_ids))}
        if connection_id is not None:
            payload["connection_id"] = connection_id
        enqueue(session, SYNC_JOB, payload, org_id=org_id)


class SyncProfilesPayload(BaseModel):
    """The payload of ``crm.sync_member_profiles``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int
    platform: str = Field(min_length=1)
    member_ids: list[int]
    # The connection whose connector fetches the profiles; absent in jobs queued before
    # connections existed (then: the organisation's default connection of ``platform``).
    connection_id: int | None = None


@job_handler(SYNC_JOB, payload=SyncProfilesPayload)
def sync_member_profiles_job(session: Session, payload: SyncProfilesPayload) -> None:
    """Job: fetch the profiles of ``member_ids`` through the connection's connector (the job
    fails and is retried while the connection has none or is disabled)."""
    connection_id = payload.connection_id
    if connection_id is None:
        connection_id = default_connection(session, payload.org_id, payload.platform).id
    elif get_connection(session, payload.org_id, connection_id).platform != payload.platform:
        raise InvalidInput(Msg("err.connection.not_found", id=connection_id), field="connection_id")
    connector = registry.connector_for(session, connection_id)
    sync_member_profiles(session, payload.org_id, connector, payload.member_ids)

"""Member personas pulled from the platform through the connector (``member_profiles``).

Platforms know part of a member's persona (WeCom: name and gender; the simulator: everything).
Ingestion creates members from events with empty persona fields; this fills them in, through the
connector interface like every other platform call. Erased members are never touched. The job is
two-phase (``qunyun.worker.queue.TwoPhaseJob``): the platform is asked with no transaction open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from qunyun.worker.queue import TwoPhaseJob, enqueue, two_phase_handler

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


@dataclass(frozen=True)
class ProfileFetch:
    """What a profile sync asks the platform: the members' ids and external ids, and the
    connector that asks (decided in a transaction, used outside any)."""

    org_id: int
    platform: str
    connector: Connector
    members: tuple[tuple[int, str], ...]


def plan_profile_sync(
    session: Session, org_id: int, connector: Connector, member_ids: Sequence[int]
) -> ProfileFetch | None:
    """Which of ``member_ids`` to ask ``connector``'s platform about (members of that platform,
    not erased); None when there is nothing to ask or the platform has no profiles."""
    if not member_ids or not connector.profile.has(Capability.MEMBER_PROFILES):
        return None
    ids = sorted(set(member_ids))
    rows: list[tuple[int, str]] = []
    for start in range(0, len(ids), CHUNK):
        rows.extend(
            (member_id, external_id)
            for member_id, external_id in session.execute(
                select(Member.id, Member.external_id)
                .where(
                    Member.org_id == org_id,
                    Member.platform == connector.platform,
                    Member.id.in_(ids[start : start + CHUNK]),
                    Member.erased_at.is_(None),
                )
                .order_by(Member.id)
            )
        )
    return ProfileFetch(org_id, connector.platform, connector, tuple(rows)) if rows else None


def fetch_profiles(fetch: ProfileFetch) -> dict[str, MemberProfile]:
    """Ask the platform for the personas, ``CHUNK`` members a call (no session: run it outside
    any transaction). Unknown members are left out."""
    profiles: dict[str, MemberProfile] = {}
    for start in range(0, len(fetch.members), CHUNK):
        chunk = [external_id for _, external_id in fetch.members[start : start + CHUNK]]
        profiles.update(fetch.connector.fetch_member_profiles(chunk))
    return profiles


def store_profiles(session: Session, fetch: ProfileFetch, profiles: Mapping[str, MemberProfile]) -> int:
    """Write the fetched personas, overwriting only the fields the platform knows, on the members
    that are still not erased (locked first: an erasure that came while the platform was asked
    wins). Returns how many members were updated."""
    wanted = {member_id: profiles[external_id] for member_id, external_id in fetch.members if external_id in profiles}
    updated = 0
    ids = sorted(wanted)
    for start in range(0, len(ids), CHUNK):
        still = session.scalars(
            select(Member.id)
            .where(Member.id.in_(ids[start : start + CHUNK]), Member.erased_at.is_(None))
            .order_by(Member.id)
            .with_for_update()
        ).all()
        params = [{"id": member_id, **values} for member_id in still if (values := _changes(wanted[member_id]))]
        # Rows with the same set of columns go in one executemany (bulk UPDATE by primary key).
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for p in params:
            by_columns.setdefault(tuple(sorted(p)), []).append(p)
        for batch in by_columns.values():
            session.execute(update(Member), batch)
        updated += len(params)
    return updated


def sync_member_profiles(session: Session, org_id: int, connector: Connector, member_ids: Sequence[int]) -> int:
    """Fetch the persona of ``member_ids`` (members of ``connector``'s platform) and store it, in
    ``session``: for a platform in this process (a simulation's), which no transaction waits on.
    Anything that reaches a real platform goes through the job (``request_profile_sync``), which
    asks it outside any transaction. Returns how many members were updated."""
    fetch = plan_profile_sync(session, org_id, connector, member_ids)
    if fetch is None:
        return 0
    return store_profiles(session, fetch, fetch_profiles(fetch))


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


@two_phase_handler(SYNC_JOB, payload=SyncProfilesPayload)
class SyncProfiles(TwoPhaseJob[SyncProfilesPayload, ProfileFetch, dict[str, MemberProfile]]):
    """Job: fetch the profiles of ``member_ids`` through the connection's connector, in three
    steps: read who to ask (committed), ask the platform with no transaction open, then write
    the answers with the job's completion. The job fails and is retried while the connection has
    no connector or is disabled, and when the platform fails."""

    def prepare(self, session: Session, payload: SyncProfilesPayload) -> ProfileFetch | None:
        connection_id = payload.connection_id
        if connection_id is None:
            connection_id = default_connection(session, payload.org_id, payload.platform).id
        elif get_connection(session, payload.org_id, connection_id).platform != payload.platform:
            raise InvalidInput(Msg("err.connection.not_found", id=connection_id), field="connection_id")
        connector = registry.connector_for(session, connection_id)
        return plan_profile_sync(session, payload.org_id, connector, payload.member_ids)

    def call(self, prepared: ProfileFetch) -> dict[str, MemberProfile]:
        return fetch_profiles(prepared)

    def record(
        self,
        session: Session,
        payload: SyncProfilesPayload,
        prepared: ProfileFetch,
        outcome: dict[str, MemberProfile] | BaseException,
    ) -> None:
        if isinstance(outcome, BaseException):
            raise outcome  # retried with backoff, then dead with the reason
        store_profiles(session, prepared, outcome)

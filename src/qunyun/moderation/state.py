"""What is derived from the append-only decisions and reversals: a member's strikes, blacklist
entries and mutes. Nothing here writes; the engine and the service read through these."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from qunyun.models import BlacklistScope, Group, ModerationDecision, ModerationReversal
from qunyun.moderation.types import SEVERITY, Action

D = ModerationDecision
# A member's strikes count the decisions of this many days, unless the policy says otherwise
# (its ``strike_window_days``).
DEFAULT_STRIKE_WINDOW_DAYS = 30
# The actions that count as a strike: warn and everything stronger.
STRIKE_ACTIONS = tuple(str(a) for a, level in SEVERITY.items() if level >= SEVERITY[Action.WARN])


def not_reversed() -> ColumnElement[bool]:
    """A WHERE clause on ``ModerationDecision``: no reversal of it exists."""
    return ~exists().where(ModerationReversal.decision_id == D.id)


def in_force() -> ColumnElement[bool]:
    """Decisions that count: not dry runs, not reversed."""
    return and_(D.dry_run.is_(False), not_reversed())


def strikes(session: Session, org_id: int, member_ids: Iterable[int], since: datetime) -> dict[int, int]:
    """Each member's strikes: decisions in force with action ≥ warn taken at or after ``since``
    (members without any are left out)."""
    ids = sorted(set(member_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(D.member_id, func.count())
        .where(
            D.org_id == org_id,
            D.member_id.in_(ids),
            D.at >= since,
            D.action.in_(STRIKE_ACTIONS),
            in_force(),
        )
        .group_by(D.member_id)
    )
    return {int(member_id): int(count) for member_id, count in rows if member_id is not None}


def strike_since(now: datetime, window_days: int | None) -> datetime:
    return now - timedelta(days=window_days or DEFAULT_STRIKE_WINDOW_DAYS)


@dataclass(frozen=True, slots=True)
class GroupPlace:
    """Where a group sits, for blacklist scopes: itself and its community."""

    group_id: int
    community_id: int | None


def blacklist_entries(session: Session, org_id: int, member_ids: Collection[int]) -> list[ModerationDecision]:
    """The blacklist entries in force of ``member_ids``, oldest first."""
    if not member_ids:
        return []
    return list(
        session.scalars(
            select(D)
            .where(
                D.org_id == org_id, D.member_id.in_(sorted(member_ids)), D.action == str(Action.BLACKLIST), in_force()
            )
            .order_by(D.id)
        )
    )


def entry_covers(entry: ModerationDecision, place: GroupPlace) -> bool:
    """Whether a blacklist entry keeps its member out of the group at ``place``."""
    scope = entry.blacklist_scope or BlacklistScope.ORGANISATION
    if scope == BlacklistScope.ORGANISATION:
        return True
    if scope == BlacklistScope.COMMUNITY:
        return place.community_id is not None and entry.community_id == place.community_id
    return entry.group_id == place.group_id


def blacklisted_in(
    session: Session, org_id: int, pairs: Collection[tuple[int, int]]
) -> dict[tuple[int, int], ModerationDecision]:
    """For (group id, member id) pairs: the entry that keeps the member out of the group, for the
    pairs that have one. One query for the entries, one for the groups' communities."""
    members = {m for _, m in pairs}
    entries = blacklist_entries(session, org_id, members)
    if not entries:
        return {}
    places = {
        gid: GroupPlace(gid, cid)
        for gid, cid in session.execute(
            select(Group.id, Group.community_id).where(Group.id.in_(sorted({g for g, _ in pairs})))
        )
    }
    found: dict[tuple[int, int], ModerationDecision] = {}
    for group_id, member_id in pairs:
        place = places.get(group_id, GroupPlace(group_id, None))
        for entry in entries:
            if entry.member_id == member_id and entry_covers(entry, place):
                found[(group_id, member_id)] = entry
                break
    return found


def refused_by_live_codes(session: Session, org_id: int, member_ids: Collection[int]) -> bool:
    """Whether one of the members has an entry in force that reaches past one group
    (organisation or community): live codes refuse them. A group-wide entry keeps a member out
    of that group only (a join there is kicked), not out of the organisation's other groups."""
    if not member_ids:
        return False
    found = session.scalar(
        select(D.id)
        .where(
            D.org_id == org_id,
            D.member_id.in_(sorted(member_ids)),
            D.action == str(Action.BLACKLIST),
            or_(D.blacklist_scope.is_(None), D.blacklist_scope != str(BlacklistScope.GROUP)),
            in_force(),
        )
        .limit(1)
    )
    return found is not None


def active_mutes(session: Session, org_id: int, member_id: int, now: datetime) -> list[ModerationDecision]:
    """The member's mutes in force that have not run out at ``now`` (None seconds: until
    unmuted), oldest first."""
    rows = session.scalars(
        select(D)
        .where(D.org_id == org_id, D.member_id == member_id, D.action == str(Action.MUTE), in_force())
        .order_by(D.id)
    )
    return [d for d in rows if d.mute_seconds is None or d.at + timedelta(seconds=d.mute_seconds) > now]

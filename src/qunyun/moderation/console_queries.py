"""Names the moderation pages show beside ids (the member a decision is about, the staff member
who decided or reversed it, what a policy is attached to), narrowed by the caller's scope like
every service read. Read-only; the console's moderation pages are their only caller."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, member_visible
from qunyun.community.service import list_communities, playbooks_of
from qunyun.groups.service import group_choices
from qunyun.models import Member, Staff


def member_names(session: Session, scope: Scope, member_ids: Collection[int]) -> dict[int, str]:
    """Display names (else external ids) of the members in ``member_ids`` the caller sees."""
    ids = sorted({i for i in member_ids if i is not None})
    if not ids:
        return {}
    rows = session.execute(
        select(Member.id, Member.display_name, Member.external_id).where(Member.id.in_(ids), member_visible(scope))
    )
    return {int(i): (name or external) for i, name, external in rows}


def staff_names(session: Session, scope: Scope, staff_ids: Collection[int]) -> dict[int, str]:
    """Display names of the organisation's staff in ``staff_ids`` (who decided, who reversed)."""
    ids = sorted({i for i in staff_ids if i is not None})
    if not ids:
        return {}
    rows = session.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(ids), Staff.org_id == scope.org_id))
    return {int(i): name for i, name in rows}


@dataclass(frozen=True)
class Targets:
    """What a policy may be attached to, as the caller sees them: (id, name) pairs."""

    communities: list[tuple[int, str]]
    playbooks: list[tuple[int, str]]
    groups: list[tuple[int, str]]

    def name(self, target_type: str, target_id: int | None) -> str | None:
        """The name of one target (None: the organisation, or one out of sight)."""
        pairs = {"community": self.communities, "playbook": self.playbooks, "group": self.groups}.get(target_type)
        return dict(pairs).get(target_id) if pairs is not None and target_id is not None else None


def policy_targets(session: Session, scope: Scope) -> Targets:
    """The communities, their playbooks and the groups the caller sees."""
    communities = list_communities(session, scope)
    playbooks = playbooks_of(session, [c.id for c in communities])
    return Targets(
        communities=[(c.id, c.name) for c in communities],
        playbooks=sorted(((p.id, p.name) for p in playbooks.values()), key=lambda p: p[1]),
        groups=group_choices(session, scope),
    )

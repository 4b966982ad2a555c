"""Data scope: which groups and members the current staff member may see and change.

- lead (总群主): every group and member of the organisation; may write.
- analyst: reads the whole organisation; every write is Forbidden (403).
- owner / admin / operator: the groups they own (Group.owner_id) or are assigned to
  (StaffGroupAssignment), and the members who have or had a membership span in one of them.

Another organisation's objects are NotFound (404), never Forbidden: the answer must not reveal
that they exist. An object of the own organisation outside the scope is NotFound as well, for the
same reason; a read-only role trying to write to an object it can see is Forbidden.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from qunyun.errors import Forbidden, NotFound
from qunyun.locale import Msg
from qunyun.models import Group, Member, MembershipSpan, Role, StaffGroupAssignment

READ_ONLY_MESSAGE = Msg("api.read_only")


@dataclass(frozen=True)
class Scope:
    """What the current staff member may see: built once per request from the staff row.

    Services take it first (after the session) and narrow every read by it themselves; callers
    without a person use ``Scope.organisation``.
    """

    staff_id: int
    org_id: int
    role: Role
    # Not a person: the organisation-wide reader of internal callers (CLI, benches, exports).
    system: bool = False

    @classmethod
    def organisation(cls, org_id: int) -> Scope:
        """The whole organisation, read-only, for callers without a person (``qunyun stats``,
        benches, the simulator's report): no staff member, every write Forbidden."""
        return cls(staff_id=0, org_id=org_id, role=Role.ANALYST, system=True)

    @property
    def can_write(self) -> bool:
        return self.role is not Role.ANALYST

    @property
    def is_lead(self) -> bool:
        return self.role is Role.LEAD

    @property
    def whole_org(self) -> bool:
        """Leads and analysts see every group and member of the organisation."""
        return self.role in (Role.LEAD, Role.ANALYST)


def visible_group_ids(scope: Scope) -> Select[int]:
    """SELECT of the ids of the groups ``scope`` may see (embed it with ``in_``)."""
    query = select(Group.id).where(Group.org_id == scope.org_id)
    if scope.whole_org:
        return query
    assigned = select(StaffGroupAssignment.group_id).where(StaffGroupAssignment.staff_id == scope.staff_id)
    return query.where(or_(Group.owner_id == scope.staff_id, Group.id.in_(assigned)))


def visible_member_ids(scope: Scope) -> Select[int]:
    """SELECT of the ids of the members ``scope`` may see: for scoped roles, everyone with a
    membership span (current or past) in a visible group."""
    if scope.whole_org:
        return select(Member.id).where(Member.org_id == scope.org_id)
    return select(MembershipSpan.member_id).where(
        MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id.in_(visible_group_ids(scope))
    )


def group_visible(scope: Scope) -> ColumnElement[bool]:
    """A WHERE clause on ``Group`` limiting rows to the scope."""
    if scope.whole_org:
        return Group.org_id == scope.org_id
    return Group.id.in_(visible_group_ids(scope))


def member_visible(scope: Scope) -> ColumnElement[bool]:
    """A WHERE clause on ``Member`` limiting rows to the scope."""
    if scope.whole_org:
        return Member.org_id == scope.org_id
    return Member.id.in_(visible_member_ids(scope))


def group_id_visible(column: ColumnElement[Any] | InstrumentedAttribute[Any], scope: Scope) -> ColumnElement[bool]:
    """A WHERE clause on a ``group_id`` column of another table (events, spans)."""
    return column.in_(visible_group_ids(scope))


def group_ids_in_scope(session: Session, scope: Scope, group_ids: Iterable[int] | None = None) -> list[int] | None:
    """The ids of the groups a read covers: each of ``group_ids`` if the scope may see it (else
    NotFound naming the first one it may not), or without ``group_ids`` every visible group —
    None when that is the whole organisation (leads, analysts, system scopes), so that
    organisation-wide figures can come from organisation-wide rollups."""
    if group_ids is None:
        if scope.whole_org:
            return None
        return sorted(int(i) for i in session.scalars(visible_group_ids(scope)))
    wanted = list(dict.fromkeys(int(i) for i in group_ids))
    if not wanted:
        return []
    seen = set(session.scalars(select(Group.id).where(Group.id.in_(wanted), group_visible(scope))))
    for group_id in wanted:
        if group_id not in seen:
            raise NotFound(Msg("api.no_group", id=group_id), field="group_id")
    return wanted


def require_write(scope: Scope) -> None:
    if not scope.can_write:
        raise Forbidden(READ_ONLY_MESSAGE)


def require_lead(scope: Scope) -> None:
    if not scope.is_lead:
        raise Forbidden(Msg("api.lead_only"))


def require_group(session: Session, scope: Scope, group_id: int, write: bool = False) -> Group:
    """The group ``group_id`` if the scope may see it (else NotFound), and change it if ``write``
    (else Forbidden)."""
    group = session.scalar(select(Group).where(Group.id == group_id, group_visible(scope)))
    if group is None:
        raise NotFound(Msg("api.no_group", id=group_id), field="group_id")
    if write:
        require_write(scope)
    return group


def require_member(session: Session, scope: Scope, member_id: int, write: bool = False) -> Member:
    """The member ``member_id`` if the scope may see them (else NotFound), and change them if
    ``write`` (else Forbidden)."""
    member = session.scalar(
        select(Member).where(Member.id == member_id, Member.org_id == scope.org_id, member_visible(scope))
    )
    if member is None:
        raise NotFound(Msg("api.no_member", id=member_id), field="member_id")
    if write:
        require_write(scope)
    return member

"""Create organisations and staff; assign staff to groups; each person's workload."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from sqlalchemy import Select, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from qunyun.auth.passwords import hash_password
from qunyun.auth.scope import Scope
from qunyun.errors import Conflict, InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import Group, GroupDaily, Organisation, Role, Staff, StaffGroupAssignment
from qunyun.tasks.service import counts as task_counts
from qunyun.timeutil import day_key, utcnow

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
ORG_NAME_LIMIT = 200  # Organisation.name: String(200)
USERNAME_LIMIT = 100  # Staff.username and Staff.display_name: String(100)


def _check_slug(slug: str) -> None:
    if not _SLUG.match(slug):
        raise InvalidInput(Msg("err.team.bad_slug"), field="slug")


def _check_org_name(name: str) -> None:
    if not 1 <= len(name) <= ORG_NAME_LIMIT:
        raise InvalidInput(Msg("err.team.org_name_length", limit=ORG_NAME_LIMIT), field="name")


def create_organisation(session: Session, *, name: str, slug: str, time_zone: str = "Asia/Shanghai") -> Organisation:
    """Create a tenant; ``slug`` is its stable short name."""
    _check_slug(slug)
    _check_org_name(name)
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None:
        raise Conflict(Msg("err.team.org_exists", slug=slug), field="slug")
    org = Organisation(name=name, slug=slug, time_zone=time_zone, created_at=utcnow())
    session.add(org)
    session.flush()
    return org


def ensure_organisation(
    session: Session, slug: str, *, name: str | None = None, time_zone: str = "Asia/Shanghai"
) -> int:
    """The id of the organisation ``slug``, created with defaults if there is none. Safe when two
    transactions ask at once (two first imports): the insert does nothing on a slug that exists or
    is being inserted by another transaction (it waits for that one), then the row is read."""
    _check_slug(slug)
    _check_org_name(name or slug)
    org_id = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
    if org_id is not None:
        return org_id
    values = {"name": name or slug, "slug": slug, "time_zone": time_zone, "created_at": utcnow()}
    dialect = session.get_bind().dialect.name
    statement = (
        postgresql.insert(Organisation).values(values).on_conflict_do_nothing(index_elements=["slug"])
        if dialect == "postgresql"
        else sqlite.insert(Organisation).values(values).on_conflict_do_nothing(index_elements=["slug"])
        if dialect == "sqlite"
        else insert(Organisation).values(values)
    )
    session.execute(statement)
    org_id = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
    assert org_id is not None  # inserted here, or committed by the transaction we waited for
    return org_id


def create_staff(
    session: Session,
    org_id: int,
    *,
    username: str,
    password: str,
    role: Role | str,
    display_name: str | None = None,
    language: str = "zh",
) -> Staff:
    """Create a staff account with an argon2 password hash."""
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput(Msg("err.team.unknown_role", role=str(role)), field="role") from exc
    if role is Role.INTEGRATION:
        # Integrations have no password; a lead creates them with their token (auth/integrations.py).
        raise InvalidInput(Msg("err.team.integration_not_staff"), field="role")
    if len(password) < 8:
        raise InvalidInput(Msg("err.team.password_too_short", min=8), field="password")
    if not 1 <= len(username) <= USERNAME_LIMIT:
        raise InvalidInput(Msg("err.team.username_length", limit=USERNAME_LIMIT), field="username")
    if display_name is not None and len(display_name) > USERNAME_LIMIT:
        raise InvalidInput(Msg("err.team.display_name_length", limit=USERNAME_LIMIT), field="display_name")
    if session.scalar(select(Staff.id).where(Staff.username == username)) is not None:
        raise Conflict(Msg("err.team.username_taken", username=username), field="username")
    staff = Staff(
        org_id=org_id,
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role.value,
        language=language,
        is_active=True,
        created_at=utcnow(),
    )
    session.add(staff)
    session.flush()
    return staff


def assign_group(session: Session, staff_id: int, group_id: int, role: str = "operator") -> StaffGroupAssignment:
    """Give a staff member a group to run (idempotent; updates the role)."""
    if role not in {"owner", "admin", "operator"}:
        raise InvalidInput(Msg("err.team.unknown_group_role", role=role), field="role")
    existing = session.scalar(
        select(StaffGroupAssignment).where(
            StaffGroupAssignment.staff_id == staff_id, StaffGroupAssignment.group_id == group_id
        )
    )
    if existing is not None:
        existing.role = role
        return existing
    assignment = StaffGroupAssignment(staff_id=staff_id, group_id=group_id, role=role, created_at=utcnow())
    session.add(assignment)
    session.flush()
    return assignment


# --- workload -----------------------------------------------------------------------------------

# 004 §三.2: a full-time operator runs 5-10 groups.
GROUPS_PER_OPERATOR = (5, 10)
GROUP_RUNNING_ROLES = frozenset({Role.OWNER.value, Role.ADMIN.value, Role.OPERATOR.value})
Load = Literal["", "under", "ok", "over"]


@dataclass
class WorkloadRow:
    """One person's load: the groups they own or are assigned to (``roles``: group id → owner,
    admin or operator), those groups' members and today's actives, their open and overdue tasks,
    and where the group count falls against ``GROUPS_PER_OPERATOR`` ("" for roles that run no
    groups)."""

    staff: Staff
    groups: list[Group] = field(default_factory=list)
    roles: dict[int, str] = field(default_factory=dict)
    owned: int = 0
    members: int = 0
    actives: int = 0
    tasks: int = 0
    overdue: int = 0
    load: Load = ""


def load_of(role: str, groups: int) -> Load:
    """Where ``groups`` falls for a person of ``role`` against GROUPS_PER_OPERATOR."""
    if role not in GROUP_RUNNING_ROLES:
        return ""
    lo, hi = GROUPS_PER_OPERATOR
    return "under" if groups < lo else "over" if groups > hi else "ok"


def workload(session: Session, scope: Scope, today: date, *, now: datetime | None = None) -> list[WorkloadRow]:
    """Each visible person's workload on ``today`` (the organisation's calendar day): leads and
    analysts see everyone of the organisation, others themselves. Rows in staff id order."""
    query = select(Staff).where(Staff.org_id == scope.org_id)
    if not scope.whole_org:
        query = query.where(Staff.id == scope.staff_id)
    people = list(session.scalars(query.order_by(Staff.id)))
    ids = [p.id for p in people]
    links = group_links(session, scope.org_id, ids)
    group_ids = {g for per in links.values() for g in per}
    groups = (
        {g.id: g for g in session.scalars(select(Group).where(Group.org_id == scope.org_id, Group.id.in_(group_ids)))}
        if group_ids
        else {}
    )
    actives: dict[int, int] = (
        dict(
            session.execute(
                select(GroupDaily.group_id, GroupDaily.actives).where(
                    GroupDaily.org_id == scope.org_id,
                    GroupDaily.day == day_key(today),
                    GroupDaily.group_id.in_(group_ids),
                )
            ).all()
        )
        if group_ids
        else {}
    )
    tasks = task_counts(session, scope, ids, now or utcnow())
    rows = []
    for person in people:
        mine = [groups[g] for g in links[person.id] if g in groups]
        open_tasks, overdue = tasks.get(person.id, (0, 0))
        rows.append(
            WorkloadRow(
                staff=person,
                groups=mine,
                roles=links[person.id],
                owned=sum(1 for role in links[person.id].values() if role == "owner"),
                members=sum(g.member_count for g in mine),
                actives=sum(actives.get(g.id, 0) for g in mine),
                tasks=open_tasks,
                overdue=overdue,
                load=load_of(person.role, len(mine)),
            )
        )
    return rows


def group_links(session: Session, org_id: int, staff_ids: list[int]) -> dict[int, dict[int, str]]:
    """Groups per person: owned (Group.owner_id, "owner"), or assigned with the assignment's role."""
    links: dict[int, dict[int, str]] = {i: {} for i in staff_ids}
    if not staff_ids:
        return links
    for group_id, owner_id in session.execute(
        select(Group.id, Group.owner_id).where(Group.org_id == org_id, Group.owner_id.in_(staff_ids))
    ):
        if owner_id is not None:
            links[owner_id][group_id] = "owner"
    for staff_id, group_id, role in session.execute(
        select(StaffGroupAssignment.staff_id, StaffGroupAssignment.group_id, StaffGroupAssignment.role).where(
            StaffGroupAssignment.staff_id.in_(staff_ids)
        )
    ):
        links[staff_id].setdefault(group_id, role)
    return links


# --- staff accounts (the API) -------------------------------------------------------------------


def staff_query(scope: Scope, role: Role | None = None) -> Select[Staff]:
    """Staff of the caller's organisation (callers are leads: the API checks)."""
    query = select(Staff).where(Staff.org_id == scope.org_id)
    if role is not None:
        query = query.where(Staff.role == role.value)
    return query


def list_staff(
    session: Session, scope: Scope, *, role: Role | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Staff], int]:
    """A page of the organisation's staff in id order, and how many match."""
    query = staff_query(scope, role)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(session.scalars(query.order_by(Staff.id).limit(limit).offset(offset))), total


def get_staff(session: Session, scope: Scope, staff_id: int) -> Staff:
    """A staff member of the caller's organisation; NotFound otherwise."""
    staff = session.scalar(staff_query(scope).where(Staff.id == staff_id))
    if staff is None:
        raise NotFound(Msg("api.no_staff", id=staff_id), field="staff_id")
    return staff


def staff_group_ids(session: Session, org_id: int, staff_ids: list[int]) -> dict[int, list[int]]:
    """The ids of the groups each person owns or is assigned to, sorted."""
    return {s: sorted(groups) for s, groups in group_links(session, org_id, staff_ids).items()}

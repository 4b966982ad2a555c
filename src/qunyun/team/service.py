"""Create organisations and staff; assign staff to groups."""

from __future__ import annotations

import re

from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from qunyun.auth.passwords import hash_password
from qunyun.errors import Conflict, InvalidInput
from qunyun.locale import Msg
from qunyun.models import Organisation, Role, Staff, StaffGroupAssignment
from qunyun.timeutil import utcnow

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

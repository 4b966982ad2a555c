"""Create organisations and staff; assign staff to groups."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.auth.passwords import hash_password
from qunyun.errors import Conflict, InvalidInput
from qunyun.models import Organisation, Role, Staff, StaffGroupAssignment
from qunyun.timeutil import utcnow

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def create_organisation(session: Session, *, name: str, slug: str, time_zone: str = "Asia/Shanghai") -> Organisation:
    """Create a tenant; ``slug`` is its stable short name."""
    if not _SLUG.match(slug):
        raise InvalidInput("slug must be 2-63 lowercase letters, digits or '-'", field="slug")
    if session.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None:
        raise Conflict(f"organisation {slug!r} exists", field="slug")
    org = Organisation(name=name, slug=slug, time_zone=time_zone, created_at=utcnow())
    session.add(org)
    session.flush()
    return org


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
        raise InvalidInput(f"unknown role {role!r}", field="role") from exc
    if len(password) < 8:
        raise InvalidInput("password must be at least 8 characters", field="password")
    if session.scalar(select(Staff.id).where(Staff.username == username)) is not None:
        raise Conflict(f"username {username!r} is taken", field="username")
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
        raise InvalidInput(f"unknown group role {role!r}", field="role")
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

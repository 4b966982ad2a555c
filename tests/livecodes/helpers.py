"""Arranging live codes for tests: an organisation with a lead and an owner, groups with
capacity, QR images, and scans served through the service (the HTTP tests go through /c/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.livecodes import routing, service
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.livecodes.visitors import new_visitor_id
from qunyun.models import Group, Role
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow

# The first bytes of a PNG are all the store checks; enough for a stand-in group QR image.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Org:
    db: sessionmaker[Session]
    id: int
    lead: int
    owner: int
    groups: dict[str, int] = field(default_factory=dict)

    @property
    def lead_scope(self) -> Scope:
        return Scope(staff_id=self.lead, org_id=self.id, role=Role.LEAD)

    @property
    def owner_scope(self) -> Scope:
        return Scope(staff_id=self.owner, org_id=self.id, role=Role.OWNER)


def make_org(db: sessionmaker[Session], slug: str = "acme") -> Org:
    with unit_of_work(db) as s:
        org = create_organisation(s, name=slug.title(), slug=slug)
        lead = create_staff(s, org.id, username=f"{slug}-lead", password="password-1", role="lead")
        owner = create_staff(s, org.id, username=f"{slug}-owner", password="password-1", role="owner")
        return Org(db, org.id, lead.id, owner.id)


def add_group(
    org: Org,
    key: str,
    *,
    capacity: int = 500,
    members: int = 0,
    region: str = "",
    owned: bool = True,
    platform: str = "api",
    connection_id: int | None = None,
    qr: bool = True,
) -> int:
    """A group (with a QR image valid for a week unless ``qr`` is False)."""
    with unit_of_work(org.db) as s:
        group = Group(
            org_id=org.id,
            platform=platform,
            external_id=f"ext-{key}",
            name=f"群{key}",
            capacity=capacity,
            member_count=members,
            region=region,
            status="active",
            owner_id=org.owner if owned else None,
            connection_id=connection_id,
            created_at=utcnow(),
        )
        s.add(group)
        s.flush()
        org.groups[key] = group.id
        if qr:
            service.upload_qr_image(s, org.lead_scope, group.id, PNG)
    return org.groups[key]


def make_code(org: Org, keys: list[str], **values: Any) -> tuple[int, str]:
    with unit_of_work(org.db) as s:
        row = service.create_live_code(
            s, org.lead_scope, LiveCodeCreate(name="测试活码", group_ids=[org.groups[k] for k in keys], **values)
        )
        return row.id, row.code


def scan(
    org: Org,
    code: str,
    visitor: str | None = None,
    *,
    now: datetime | None = None,
    region: str = "",
    user_agent: str = "Mozilla/5.0 (iPhone) MicroMessenger/8.0",
    ip: str = "203.0.113.7",
) -> routing.ScanResult:
    visit = routing.Visit(visitor or new_visitor_id(), visitor is not None, user_agent, ip, region)
    with unit_of_work(org.db) as s:
        return routing.scan(s, code, visit, now=now)


def later(**kwargs: float) -> datetime:
    return utcnow() + timedelta(**kwargs)

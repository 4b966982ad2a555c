"""Factories for the API tests: two organisations, staff of every role, groups, members, spans.

Organisation A ("acme"):
  groups   g1 "Alpha"  owned by `owner`; `operator` and `admin` assigned
           g2 "Beta"   owned by `owner`; nobody assigned
           g3 "Gamma"  no owner, nobody assigned (only lead and analyst see it)
  members  m1 in g1 now (joined through channel "sms", scene qr)
           m2 was in g2 (joined, then left)
           m3 in g3 now
           m4 in no group (only lead and analyst see them)
  tag "VIP" on m1; channel "sms"
Organisation B ("rival"): group gb1 with member mb1, tag, channel, a lead and an operator.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

PASSWORD = "correct horse battery"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 2026-03-02 09:00 in Asia/Shanghai


@pytest.fixture(scope="session")
def password_hash() -> str:
    # Argon2 is deliberately slow: hash the shared test password once per run.
    from qunyun.auth.passwords import hash_password

    return hash_password(PASSWORD)


@dataclass
class World:
    db: sessionmaker[Session]
    org_a: int = 0
    org_b: int = 0
    staff: dict[str, int] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    members: dict[str, int] = field(default_factory=dict)
    tags: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    events: dict[str, int] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, who: str) -> str:
        """An API bearer token for staff ``who`` (issued once per test)."""
        if who not in self._tokens:
            from qunyun.auth.tokens import TokenKind, issue_token
            from qunyun.models import Staff

            with self.db() as s:
                staff = s.get(Staff, self.staff[who])
                assert staff is not None
                issued = issue_token(s, staff, TokenKind.API, now=datetime.now(UTC), name="test")
                s.commit()
            self._tokens[who] = issued.secret
        return self._tokens[who]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(who)}"}


def _add_staff(s: Session, world: World, org_id: int, key: str, role: str, password_hash: str) -> int:
    from qunyun.models import Staff

    staff = Staff(
        org_id=org_id,
        username=key,
        display_name=key.title(),
        password_hash=password_hash,
        role=role,
        language="zh",
        is_active=True,
        created_at=T0,
    )
    s.add(staff)
    s.flush()
    world.staff[key] = staff.id
    return staff.id


def _add_group(s: Session, world: World, org_id: int, key: str, name: str, owner: str | None) -> int:
    from qunyun.models import Group

    group = Group(
        org_id=org_id,
        platform="api",
        external_id=f"ext-{key}",
        name=name,
        tier="normal",
        region="shanghai" if key != "g2" else "beijing",
        capacity=500,
        status="active",
        owner_id=world.staff[owner] if owner else None,
        member_count=0,
        created_at=T0,
    )
    s.add(group)
    s.flush()
    world.groups[key] = group.id
    return group.id


def _add_member(s: Session, world: World, org_id: int, key: str) -> int:
    from qunyun.models import Member

    member = Member(
        org_id=org_id,
        platform="api",
        external_id=f"ext-{key}",
        display_name=f"Member {key}",
        gender="",
        occupation="",
        region="",
        interests=[],
        first_seen_at=T0,
    )
    s.add(member)
    s.flush()
    world.members[key] = member.id
    return member.id


def _event(s: Session, world: World, org_id: int, key: str, kind: int, ts: datetime, **values: object) -> int:
    from qunyun.models import Event

    event = Event(
        org_id=org_id,
        external_id=key,
        kind=kind,
        ts=ts,
        day=int(ts.astimezone(UTC).strftime("%Y%m%d")),
        source="test",
        **values,
    )
    s.add(event)
    s.flush()
    world.events[key] = event.id
    return event.id


def _join(
    s: Session,
    world: World,
    org_id: int,
    group: str,
    member: str,
    *,
    at: datetime,
    left: datetime | None = None,
    channel: str | None = None,
) -> None:
    from qunyun.models import EventKind, Group, MembershipSpan

    group_id, member_id = world.groups[group], world.members[member]
    join_id = _event(
        s,
        world,
        org_id,
        f"join-{group}-{member}",
        int(EventKind.MEMBER_JOINED),
        at,
        group_id=group_id,
        member_id=member_id,
        scene="qr",
        channel_id=world.channels[channel] if channel else None,
    )
    leave_id = None
    if left is not None:
        leave_id = _event(
            s,
            world,
            org_id,
            f"leave-{group}-{member}",
            int(EventKind.MEMBER_LEFT),
            left,
            group_id=group_id,
            member_id=member_id,
            reason="left",
        )
    s.add(
        MembershipSpan(
            org_id=org_id,
            group_id=group_id,
            member_id=member_id,
            joined_at=at,
            left_at=left,
            join_event_id=join_id,
            leave_event_id=leave_id,
        )
    )
    if left is None:
        grp = s.get(Group, group_id)
        assert grp is not None
        grp.member_count += 1
    s.flush()


@pytest.fixture
def world(db: sessionmaker[Session], password_hash: str) -> World:
    from qunyun.models import Channel, Organisation, StaffGroupAssignment, Tag, Tagging

    w = World(db=db)
    with db() as s:
        org_a = Organisation(name="Acme 社群", slug="acme", time_zone="Asia/Shanghai", created_at=T0)
        org_b = Organisation(name="Rival", slug="rival", time_zone="Asia/Shanghai", created_at=T0)
        s.add_all([org_a, org_b])
        s.flush()
        w.org_a, w.org_b = org_a.id, org_b.id
        for key, role in (
            ("lead", "lead"),
            ("owner", "owner"),
            ("admin", "admin"),
            ("operator", "operator"),
            ("analyst", "analyst"),
        ):
            _add_staff(s, w, org_a.id, key, role, password_hash)
        _add_staff(s, w, org_b.id, "lead_b", "lead", password_hash)
        _add_staff(s, w, org_b.id, "operator_b", "operator", password_hash)

        for org_id, key in ((org_a.id, "sms"), (org_b.id, "sms_b")):
            channel = Channel(
                org_id=org_id,
                code="sms",
                name="短信",
                kind="sms",
                cost_per_touch_fen=5,
                reward_per_member_fen=150,
                fixed_cost_fen=0,
                touches=1000,
                expected_rate_bp=800,
                created_at=T0,
            )
            s.add(channel)
            s.flush()
            w.channels[key] = channel.id

        _add_group(s, w, org_a.id, "g1", "Alpha 福利群", "owner")
        _add_group(s, w, org_a.id, "g2", "Beta 学习群", "owner")
        _add_group(s, w, org_a.id, "g3", "Gamma 核心群", None)
        _add_group(s, w, org_b.id, "gb1", "Rival group", None)
        for staff, group, role in (
            ("operator", "g1", "operator"),
            ("admin", "g1", "admin"),
            ("operator_b", "gb1", "operator"),
        ):
            s.add(StaffGroupAssignment(staff_id=w.staff[staff], group_id=w.groups[group], role=role, created_at=T0))

        for key in ("m1", "m2", "m3", "m4"):
            _add_member(s, w, org_a.id, key)
        _add_member(s, w, org_b.id, "mb1")
        _join(s, w, org_a.id, "g1", "m1", at=T0, channel="sms")
        _join(s, w, org_a.id, "g2", "m2", at=T0, left=T0 + timedelta(days=1))
        _join(s, w, org_a.id, "g3", "m3", at=T0 + timedelta(hours=1))
        _join(s, w, org_b.id, "gb1", "mb1", at=T0, channel="sms_b")

        for org_id, key in ((org_a.id, "vip"), (org_b.id, "vip_b")):
            tag = Tag(org_id=org_id, name="VIP", category="value", created_at=T0)
            s.add(tag)
            s.flush()
            w.tags[key] = tag.id
        s.add(Tagging(member_id=w.members["m1"], tag_id=w.tags["vip"], source="manual", created_at=T0))
        s.commit()
    return w


@pytest.fixture(scope="session")
def api_app(database_url: str) -> FastAPI:
    # Building the route table takes a noticeable fraction of a second: once per run is enough.
    from qunyun.api.app import create_app

    return create_app()


def _test_client(app: FastAPI) -> Iterator[TestClient]:
    from qunyun.auth.throttle import LoginThrottle

    app.state.login_throttle = LoginThrottle()  # failed logins of one test never lock another
    with TestClient(app) as c:
        yield c


@pytest.fixture
def client(world: World, api_app: FastAPI) -> Iterator[TestClient]:
    yield from _test_client(api_app)


@pytest.fixture
def anon(db: sessionmaker[Session], api_app: FastAPI) -> Iterator[TestClient]:
    """A client on an empty database (no world)."""
    yield from _test_client(api_app)


def console_login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the console form; returns the session cookie value."""
    import re

    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    cookie = client.cookies.get("qunyun_session")
    assert cookie
    return cookie


def csrf_from(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)

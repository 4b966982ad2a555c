"""Join requests on Telegram, through the real webhook, worker and database against the fake Bot
API: a request through a live code's link is stored with the requester, the link's live code and
channel; it is decided as the code's entry threshold says (staff in the task inbox, approved
automatically, the blacklisted declined); the decision is performed through the outbound path;
the approved member's join is attributed to the code. Runs on SQLite, and on PostgreSQL with
QUNYUN_TEST_DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.auth.tokens import TokenKind, issue_token
from qunyun.connections.secrets import encrypt
from qunyun.connectors import registry
from qunyun.db.session import unit_of_work
from qunyun.livecodes import service as livecodes
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.models import (
    Channel,
    Group,
    LiveCodeJoin,
    Member,
    OutboundAction,
    Role,
    Staff,
    StaffTask,
    Tag,
    Tagging,
)
from qunyun.models.telegram_state import JoinRequest
from qunyun.privacy.service import erase_member, export_member
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from qunyun.worker.runner import load_handler_modules
from tests.api.conftest import anon, api_app
from tests.connections.helpers import connection_row
from tests.connectors.telegram.fakebot import TOKEN, FakeBotApi
from tests.connectors.telegram.test_loop import BOT, CHAT, SECRET, Telegram, run_jobs, user

__all__ = ["anon", "api_app"]


@dataclass
class Setup:
    db: sessionmaker[Session]
    tg: Telegram
    org_id: int
    lead_id: int
    owner_id: int
    analyst_id: int
    group_id: int
    code_id: int
    channel_id: int
    link: str

    def scope(self) -> Scope:
        return Scope(staff_id=self.lead_id, org_id=self.org_id, role=Role.LEAD)

    def token(self, staff_id: int) -> dict[str, str]:
        with self.db() as s:
            staff = s.get_one(Staff, staff_id)
            issued = issue_token(s, staff, TokenKind.API, now=datetime.now(UTC), name="test")
            s.commit()
        return {"Authorization": f"Bearer {issued.secret}"}

    def request_join(self, who: int, *, name: str = "", username: str | None = None, bio: str | None = None) -> None:
        body: dict[str, Any] = {
            "chat": self.tg.chat(),
            "from": {**user(who, name or None), **({"username": username} if username else {})},
            "user_chat_id": who,
            "date": self.tg.start + 30,
            "invite_link": {
                "invite_link": self.link,
                "creator": BOT,
                "creates_join_request": True,
                "is_primary": False,
                "is_revoked": False,
                "name": "qunyun",
            },
        }
        if bio is not None:
            body["bio"] = bio
        self.tg.send("chat_join_request", body)

    def requests(self) -> list[JoinRequest]:
        with self.db() as s:
            return list(
                s.scalars(select(JoinRequest).where(JoinRequest.org_id == self.org_id).order_by(JoinRequest.id))
            )


def make_setup(db: sessionmaker[Session], client: TestClient, fakebot: FakeBotApi, policy: str) -> Setup:
    load_handler_modules()
    with unit_of_work(db) as s:
        org = create_organisation(s, name="晨跑社", slug="run")
        lead_id = create_staff(s, org.id, username="lead", password="password-1", role="lead").id
        owner_id = create_staff(s, org.id, username="owner", password="password-1", role="owner").id
        analyst_id = create_staff(s, org.id, username="analyst", password="password-1", role="analyst").id
        channel = Channel(org_id=org.id, code="poster", name="海报", kind="offline", created_at=utcnow())
        s.add(channel)
        row = connection_row(
            org.id,
            "晨跑 bot",
            platform="telegram",
            settings={"mode": "webhook", "api_base": fakebot.url},
            secrets=encrypt({"bot_token": TOKEN, "webhook_secret": SECRET}),
        )
        s.add(row)
        s.flush()
        org_id, connection_id, channel_id = org.id, row.id, channel.id
    tg = Telegram(client, connection_id)
    tg.bot_added()
    run_jobs(db)
    lead = Scope(staff_id=lead_id, org_id=org_id, role=Role.LEAD)
    with unit_of_work(db) as s:
        group = s.scalars(select(Group).where(Group.org_id == org_id, Group.external_id == str(CHAT))).one()
        group.owner_id = owner_id
        code = livecodes.create_live_code(
            s,
            lead,
            LiveCodeCreate(name="春季活码", group_ids=[group.id], channel_id=channel_id, join_request_policy=policy),
        )
        group_id, code_id = group.id, code.id
    run_jobs(db)  # the code's invite link
    [link] = list(fakebot.links)
    return Setup(db, tg, org_id, lead_id, owner_id, analyst_id, group_id, code_id, channel_id, link)


@pytest.fixture
def forget_connectors() -> Iterator[None]:
    yield
    for connection_id in range(1, 50):
        registry.forget(connection_id)


def test_a_request_waits_for_staff_who_approve_it_and_the_join_is_attributed(
    anon: TestClient, db: sessionmaker[Session], fakebot: FakeBotApi, forget_connectors: None
) -> None:
    world = make_setup(db, anon, fakebot, "review")
    world.request_join(601, name="小红", username="xiaohong", bio="每天晨跑 5 公里")
    world.request_join(601, name="小红", username="xiaohong", bio="每天晨跑 5 公里")  # redelivered: once
    run_jobs(db)
    [req] = world.requests()
    assert (req.status, req.user_id, req.name, req.username, req.bio) == (
        "pending",
        "601",
        "小红",
        "xiaohong",
        "每天晨跑 5 公里",
    )
    assert (req.invite_link, req.live_code_id, req.channel_id, req.group_id) == (
        world.link,
        world.code_id,
        world.channel_id,
        world.group_id,
    )
    assert req.requested_at == datetime.fromtimestamp(world.tg.start + 30, UTC)
    assert fakebot.called("approveChatJoinRequest") == [] and fakebot.called("declineChatJoinRequest") == []
    with db() as s:
        task = s.get_one(StaffTask, req.task_id)
        assert (task.status, task.assignee_id, task.group_id) == ("open", world.owner_id, world.group_id)
        assert task.detail["join_request_id"] == req.id and "小红" in task.title

    # Listed for staff; an analyst may look but not decide.
    listed = anon.get("/api/v1/join-requests", headers=world.token(world.lead_id))
    assert listed.status_code == 200 and [r["id"] for r in listed.json()] == [req.id]
    denied = anon.post(f"/api/v1/join-requests/{req.id}/approve", headers=world.token(world.analyst_id))
    assert denied.status_code == 403
    assert anon.post("/api/v1/join-requests/999999/approve", headers=world.token(world.lead_id)).status_code == 404

    # The owner approves it: the bot approves it through the outbound path, the task is done.
    owner = world.token(world.owner_id)
    approved = anon.post(f"/api/v1/join-requests/{req.id}/approve", headers=owner)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["decided_by"], body["decided_by_id"]) == ("approved", "staff", world.owner_id)
    again = anon.post(f"/api/v1/join-requests/{req.id}/decline", headers=owner)
    assert again.status_code == 409 and again.json()["field"] == "request_id"
    run_jobs(db)
    assert fakebot.called("approveChatJoinRequest") == [{"user_id": 601, "chat_id": CHAT}]
    with db() as s:
        action = s.get_one(OutboundAction, body["action_id"])
        assert (action.action, action.state) == ("approve_join_request", "sent")
        assert s.get_one(StaffTask, req.task_id).status == "done"
    assert anon.get("/api/v1/join-requests", headers=world.token(world.lead_id)).json() == []

    # Telegram reports the join through the link: attributed to the code and its channel.
    world.tg.member_change(601, "left", "member", link=world.link)
    run_jobs(db)
    with db() as s:
        member_id = s.scalars(select(Member.id).where(Member.org_id == world.org_id, Member.external_id == "601")).one()
        [join] = s.scalars(select(LiveCodeJoin).where(LiveCodeJoin.live_code_id == world.code_id)).all()
        assert (join.member_id, join.channel_id, join.matched_by) == (member_id, world.channel_id, "link")

    # The request is the requester's personal data: exported, and erased on request.
    with unit_of_work(db) as s:
        exported = export_member(s, world.scope(), member_id)
        assert [r["bio"] for r in exported["join_requests"]] == ["每天晨跑 5 公里"]
        erase_member(s, world.scope(), member_id)
    [erased] = world.requests()
    assert (erased.name, erased.username, erased.bio) == ("", "", "") and erased.user_id != "601"


def test_the_code_approves_by_itself_and_declines_the_blacklisted(
    anon: TestClient, db: sessionmaker[Session], fakebot: FakeBotApi, forget_connectors: None
) -> None:
    world = make_setup(db, anon, fakebot, "approve")
    with unit_of_work(db) as s:
        banned = Member(org_id=world.org_id, platform="telegram", external_id="602", first_seen_at=utcnow())
        tag = Tag(org_id=world.org_id, name="黑名单", created_at=utcnow())
        s.add_all([banned, tag])
        s.flush()
        s.add(Tagging(member_id=banned.id, tag_id=tag.id, source="manual", created_at=utcnow()))
    world.request_join(602)
    world.request_join(603)
    run_jobs(db)
    decided = {r.user_id: (r.status, r.decided_by, r.rule, r.task_id) for r in world.requests()}
    assert decided == {"602": ("declined", "rule", "blacklist", None), "603": ("approved", "rule", "approve", None)}
    assert fakebot.called("declineChatJoinRequest") == [{"user_id": 602, "chat_id": CHAT}]
    assert fakebot.called("approveChatJoinRequest") == [{"user_id": 603, "chat_id": CHAT}]
    with db() as s:
        assert s.scalars(select(StaffTask.id).where(StaffTask.org_id == world.org_id)).all() == []


def test_the_console_lists_pending_requests_and_decides_them(
    anon: TestClient, db: sessionmaker[Session], fakebot: FakeBotApi, forget_connectors: None
) -> None:
    from tests.api.conftest import console_login, csrf_from

    world = make_setup(db, anon, fakebot, "review")
    world.request_join(604, name="阿强")
    run_jobs(db)
    [req] = world.requests()
    console_login(anon, "owner", "password-1")
    page = anon.get("/join-requests")
    assert page.status_code == 200 and "阿强" in page.text and f'data-join-request="{req.id}"' in page.text
    refused = anon.post(f"/join-requests/{req.id}/decline", data={"csrf_token": "nope"}, follow_redirects=False)
    assert refused.status_code == 403
    done = anon.post(
        f"/join-requests/{req.id}/decline", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303
    run_jobs(db)
    assert fakebot.called("declineChatJoinRequest") == [{"user_id": 604, "chat_id": CHAT}]
    [after] = world.requests()
    assert (after.status, after.decided_by) == ("declined", "staff")
    assert "阿强" not in anon.get("/join-requests").text


@pytest.mark.parametrize("policy", ["review", "approve"])
def test_a_code_that_decides_requests_makes_links_whose_joins_are_requests(
    anon: TestClient, db: sessionmaker[Session], fakebot: FakeBotApi, forget_connectors: None, policy: str
) -> None:
    make_setup(db, anon, fakebot, policy)
    [params] = fakebot.called("createChatInviteLink")
    # Telegram refuses a member limit on such a link; the pool's scan limit still routes visitors.
    assert params["creates_join_request"] is True and "member_limit" not in params


def test_a_direct_code_makes_member_limited_links_that_let_members_straight_in(
    anon: TestClient, db: sessionmaker[Session], fakebot: FakeBotApi, forget_connectors: None
) -> None:
    make_setup(db, anon, fakebot, "direct")
    [params] = fakebot.called("createChatInviteLink")
    assert "creates_join_request" not in params and params["member_limit"] >= 1

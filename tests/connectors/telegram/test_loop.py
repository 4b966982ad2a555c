"""The whole loop on Telegram against the fake Bot API, through the real webhook, worker and
database: a group announced by the bot's addition → members join through a live code's invite
link (attributed) → they post → moderation deletes an offending message and removes the member
on the third strike → an SOP step posts on time, exactly once → the stats and the group's
timeline show all of it. Runs on SQLite, and on PostgreSQL with QUNYUN_TEST_DATABASE_URL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from typing import Any

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.analytics import stats
from qunyun.auth.scope import Scope
from qunyun.connections.secrets import encrypt
from qunyun.connectors import registry
from qunyun.db.session import unit_of_work
from qunyun.groups.service import group_timeline
from qunyun.livecodes import service as livecodes
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.models import Group, LiveCodeJoin, ModerationDecision, OutboundAction, Playbook, Role
from qunyun.moderation import service as moderation
from qunyun.sop import runs
from qunyun.sop import service as sop
from qunyun.sop.execute import claim_due, fire_runs
from qunyun.sop.types import StepSpec
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from qunyun.worker.runner import Worker, load_handler_modules
from tests.api.conftest import anon, api_app
from tests.connections.helpers import connection_row
from tests.connectors.telegram.fakebot import TOKEN, FakeBotApi
from tests.sop.conftest import tomorrow

__all__ = ["anon", "api_app"]

SECRET = "loop-secret-token_0123456789"
CHAT = -1001555000111
BOT_ID = 123456789
BOT: dict[str, Any] = {"id": BOT_ID, "is_bot": True, "first_name": "qunyun", "username": "qy_bot"}
SPAM = "加我微信领红包"


class Telegram:
    """Sends updates the way Telegram does: to the connection's webhook with the secret token."""

    def __init__(self, client: TestClient, connection_id: int) -> None:
        self.client, self.connection_id = client, connection_id
        self.ids = itertools.count(700000001)
        self.message_ids = itertools.count(1)
        self.start = int(datetime.now(UTC).timestamp()) - 3600

    def send(self, kind: str, body: dict[str, Any]) -> None:
        update = {"update_id": next(self.ids), kind: body}
        response = self.client.post(
            f"/hooks/telegram/{self.connection_id}",
            content=orjson.dumps(update),
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text

    def chat(self) -> dict[str, Any]:
        return {"id": CHAT, "title": "晨跑打卡群", "type": "supergroup"}

    def bot_added(self) -> None:
        self.send(
            "my_chat_member",
            {
                "chat": self.chat(),
                "from": user(1, "群主"),
                "date": self.start,
                "old_chat_member": {"user": BOT, "status": "left"},
                "new_chat_member": {"user": BOT, "status": "administrator", **ADMIN_RIGHTS},
            },
        )

    def member_change(self, who: int, old: str, new: str, *, by: int | None = None, link: str | None = None) -> None:
        body: dict[str, Any] = {
            "chat": self.chat(),
            "from": BOT if by == BOT_ID else user(by or who),
            "date": self.start + 60,
            "old_chat_member": {"user": user(who), "status": old},
            "new_chat_member": {"user": user(who), "status": new, **({"until_date": 0} if new == "kicked" else {})},
        }
        if link is not None:
            body["invite_link"] = {
                "invite_link": link,
                "creator": BOT,
                "creates_join_request": False,
                "is_primary": False,
                "is_revoked": False,
                "name": "qunyun",
            }
        self.send("chat_member", body)

    def post(self, who: int, text: str, minute: int) -> int:
        message_id = next(self.message_ids)
        self.send(
            "message",
            {
                "message_id": message_id,
                "from": user(who),
                "chat": self.chat(),
                "date": self.start + 120 + minute * 60,
                "text": text,
            },
        )
        return message_id


ADMIN_RIGHTS = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
}


def user(uid: int, name: str | None = None) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": name or f"跑友{uid}"}


def run_jobs(db: sessionmaker[Session]) -> int:
    worker = Worker("telegram-loop", factory=db)
    ran = 0
    while True:
        jobs = worker.claim_batch(50)
        if not jobs:
            return ran
        worker.execute_batch(jobs)
        ran += len(jobs)


def test_the_whole_loop_on_telegram(anon: TestClient, db: sessionmaker[Session], fakebot: FakeBotApi) -> None:
    load_handler_modules()
    with unit_of_work(db) as s:
        org = create_organisation(s, name="晨跑社", slug="run")
        lead_id = create_staff(s, org.id, username="lead", password="password-1", role="lead").id
        owner_id = create_staff(s, org.id, username="owner", password="password-1", role="owner").id
        playbook = Playbook(org_id=org.id, name="晨跑群", settings={}, welcome_text="", created_at=utcnow())
        s.add(playbook)
        row = connection_row(
            org.id,
            "晨跑 bot",
            platform="telegram",
            settings={"mode": "webhook", "api_base": fakebot.url},
            secrets=encrypt({"bot_token": TOKEN, "webhook_secret": SECRET}),
        )
        s.add(row)
        s.flush()
        org_id, connection_id, playbook_id = org.id, row.id, playbook.id
    lead = Scope(staff_id=lead_id, org_id=org_id, role=Role.LEAD)
    tg = Telegram(anon, connection_id)
    try:
        # A person adds the bot as an admin: the group appears, on this connection.
        tg.bot_added()
        run_jobs(db)
        with unit_of_work(db) as s:
            group = s.scalars(select(Group).where(Group.org_id == org_id, Group.external_id == str(CHAT))).one()
            assert (group.name, group.connection_id, group.platform) == ("晨跑打卡群", connection_id, "telegram")
            group.owner_id, group.playbook_id = owner_id, playbook_id
            group_id = group.id
            moderation.create_policy(
                s,
                lead,
                name="群规",
                target_type="organisation",
                settings={"rules": [{"name": "广告", "kind": "words"}]},
                words=[{"word": "加我微信", "category": "广告"}],
            )
            code = livecodes.create_live_code(s, lead, LiveCodeCreate(name="春季活码", group_ids=[group_id]))
            code_id = code.id

        # The live code's named, member-limited invite link is made by the bot.
        run_jobs(db)
        [made] = fakebot.called("createChatInviteLink")
        assert made["chat_id"] == CHAT and made["name"].startswith("qunyun ") and made["member_limit"] >= 1
        [link] = list(fakebot.links)

        # Three people join through it (one rejoins later without a link: not attributed again).
        for who in (501, 502, 503):
            tg.member_change(who, "left", "member", link=link)
        run_jobs(db)
        with db() as s:
            joins = list(s.scalars(select(LiveCodeJoin).where(LiveCodeJoin.live_code_id == code_id)))
            assert sorted(j.matched_by for j in joins) == ["link", "link", "link"]

        # They post; 503 advertises three times: warned, warned, then the message deleted and removed.
        tg.post(501, "今天 5 公里打卡", 0)
        run_jobs(db)
        spam_ids = []
        for n in range(3):
            spam_ids.append(tg.post(503, f"{SPAM} {n}", 1 + n))
            run_jobs(db)
        with db() as s:
            decisions = [d.action for d in s.scalars(select(ModerationDecision).order_by(ModerationDecision.id))]
        assert decisions == ["warn", "warn", "kick"]
        assert (CHAT, spam_ids[2]) in fakebot.deleted
        assert [p["user_id"] for p in fakebot.called("banChatMember")] == [503]
        assert [p["user_id"] for p in fakebot.called("unbanChatMember")] == [503]
        warnings = [p["text"] for p in fakebot.called("sendMessage")]
        assert len(warnings) == 2 and all("广告" in w for w in warnings)
        # Telegram reports the removal back.
        tg.member_change(503, "member", "kicked", by=BOT_ID)
        run_jobs(db)

        # An SOP step posts at its time, once.
        with unit_of_work(db) as s:
            plan = sop.create_plan(
                s,
                lead,
                name="晨跑节奏",
                kind="daily",
                steps=[StepSpec(at=time(6, 0), category="早安语", script="早安，{group_name}！")],
            )
            runs.apply(s, lead, plan.id, group_id, tomorrow())
        with db() as s:
            first = min(runs.list_runs(s, lead), key=lambda r: r.due_at)
            due, run_id = first.due_at, first.id
        with unit_of_work(db) as s:
            assert claim_due(s, due - timedelta(minutes=1)) == 0  # not before its time
        with unit_of_work(db) as s:
            assert claim_due(s, due + timedelta(seconds=1)) >= 1
        with unit_of_work(db) as s:
            fire_runs(s, [run_id], due)
        run_jobs(db)
        with unit_of_work(db) as s:
            fire_runs(s, [run_id], due)  # a second firing sends nothing
        run_jobs(db)
        posted = [p for p in fakebot.called("sendMessage") if p["text"] == "早安，晨跑打卡群！"]
        assert len(posted) == 1 and posted[0]["chat_id"] == CHAT
        with db() as s:
            sent = s.scalars(select(OutboundAction).where(OutboundAction.idempotency_key == f"sop:run:{run_id}")).one()
            assert sent.state == "sent" and sent.external_ref is not None

        # The stats and the group's timeline.
        with db() as s:
            day = datetime.fromtimestamp(tg.start + 60, UTC).astimezone(org_zone(s, org_id)).date()
            rows = stats.daily(s, lead, day, day, [group_id], include_total=False)
            assert [(r["joins"], r["left"], r["members"]) for r in rows] == [(3, 1, 2)]
            items = group_timeline(s, lead, group_id, None)["items"]
        kinds = [(i["kind"], i["reason"]) for i in reversed(items)]
        assert kinds.count(("join", None)) == 3 and kinds[-1] == ("leave", "removed")
        assert next(i["text"] for i in reversed(items) if i["kind"] == "message") == "今天 5 公里打卡"
    finally:
        registry.forget(connection_id)


def org_zone(s: Session, org_id: int) -> Any:
    from zoneinfo import ZoneInfo

    from qunyun.models import Organisation

    organisation = s.get(Organisation, org_id)
    assert organisation is not None
    return ZoneInfo(organisation.time_zone)

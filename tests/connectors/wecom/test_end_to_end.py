"""The whole WeCom flow against the fake server (issue 13): add a connection from the command line
→ full sync → a live code's join way → a scan → the join callback (attributed by the join way's
state) → the welcome template → a customer contact and its welcome → an SOP run's mass send
waiting for the owner → the owner confirms on the fake server → the action, the run and the SOP
report reconcile. Then a missed callback: the next one's LastMemVer differs from the version held
and the group is synced again in full."""

from __future__ import annotations

import json
from datetime import time, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from qunyun.auth.scope import Scope
from qunyun.cli import app as cli_app
from qunyun.connectors.actions import SetWelcomeMessage
from qunyun.connectors.dispatch import request_action
from qunyun.connectors.wecom.crypto import WeComCrypto
from qunyun.connectors.wecom.fake import FakeWeCom, callback_request
from qunyun.connectors.wecom.sync import callbacks_job
from qunyun.db.session import unit_of_work
from qunyun.livecodes import routing, service
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.livecodes.visitors import new_visitor_id
from qunyun.models import Connection, Group, LiveCodeJoin, OutboundAction, Role, SopRun
from qunyun.models.wecom_state import WeComContact, WeComJoinWay, WeComSyncReport
from qunyun.modules import load_domain_modules
from qunyun.sop import reports as sop_reports
from qunyun.sop import runs as sop_runs
from qunyun.sop import service as sop_service
from qunyun.sop.execute import claim_due
from qunyun.sop.types import RunState, StepSpec
from qunyun.worker.scheduler import PeriodicPayload
from tests.api.conftest import World
from tests.connectors.wecom.conftest import AES_KEY, CORP_ID, SECRET, TOKEN
from tests.hooks.conftest import run_jobs

CHAT = "wrOgQhDgAAvipgroup000000000001"
OTHER = "wrOgQhDgAAvipgroup000000000002"


def _sync(world: World) -> None:
    with unit_of_work(world.db) as s:
        callbacks_job(s, PeriodicPayload())


def _group(world: World, chat_id: str) -> Group:
    with world.db() as s:
        group = s.scalar(select(Group).where(Group.external_id == chat_id))
        assert group is not None
        return group


def _post(client: TestClient, cid: int, crypto: WeComCrypto, xml: str) -> None:
    query, body = callback_request(crypto, xml)
    response = client.post(f"/hooks/wecom/{cid}", params=query, content=body.encode())
    assert response.status_code == 200, response.text


def test_the_wecom_flow_end_to_end(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    load_domain_modules()  # the worker's job handlers (connectors.perform, …)
    server, base = fake
    server.add_group(CHAT, "VIP 1 群", "owner1", {"wmcust0001": {"name": "老王"}, "wmcust0002": {}})
    server.add_group(OTHER, "VIP 2 群", "owner2", {"wmcust0003": {}})

    # 1. Add the connection from the command line: it checks gettoken against the fake server.
    result = CliRunner().invoke(
        cli_app,
        [
            "connections", "add", "wecom", "--org", "acme", "--name", "企微主体",
            "--corp-id", CORP_ID, "--secret", SECRET, "--token", TOKEN, "--aes-key", AES_KEY,
            "--api-base", base, "--format", "json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    cid = added["id"]
    assert added == {"id": cid, "platform": "wecom", "callback_path": f"/hooks/wecom/{cid}"}
    with world.db() as s:
        connection = s.get(Connection, cid)
        assert connection is not None and connection.status == "active" and connection.last_error is None

    # 2. The first pass of the job syncs everything, with a report.
    _sync(world)
    group = _group(world, CHAT)
    assert (group.name, group.member_count, group.connection_id) == ("VIP 1 群", 3, cid)
    assert _group(world, OTHER).member_count == 2
    with world.db() as s:
        report = s.scalar(select(WeComSyncReport).where(WeComSyncReport.connection_id == cid))
        assert report is not None and report.reason == "added" and report.error is None
        assert (report.groups, report.members) == (2, 5)
        assert sorted(d["what"] for d in report.differences).count("joined") == 5

    # 3. A live code over the group: its join way is made on the fake server.
    lead = Scope(staff_id=world.staff["lead"], org_id=world.org_a, role=Role.LEAD)
    with unit_of_work(world.db) as s:
        code = service.create_live_code(s, lead, LiveCodeCreate(name="企微活码", group_ids=[group.id])).code
    run_jobs(world.db)
    with world.db() as s:
        way = s.scalar(select(WeComJoinWay).where(WeComJoinWay.connection_id == cid))
        assert way is not None and way.chat_ids == [CHAT]
    assert server.join_ways[way.config_id]["state"] == way.state
    routing.forget()

    # 4. A visitor scans the code and is sent to the join way's QR code.
    visit = routing.Visit(new_visitor_id(), False, "Mozilla/5.0 (iPhone) MicroMessenger/8.0", "203.0.113.7", "")
    with unit_of_work(world.db) as s:
        scanned = routing.scan(s, code, visit)
    assert scanned.entry is not None and scanned.invite_link == way.qr_code

    # 5. They join through it: WeCom calls back; groupchat/get gives the state, hence the live code.
    _post(client, cid, crypto, server.add_member(CHAT, "wmnewcomer01", scene=3, state=way.state, name="小李"))
    run_jobs(world.db)
    with world.db() as s:
        joins = list(s.scalars(select(LiveCodeJoin)))
    assert len(joins) == 1 and joins[0].group_id == group.id
    assert joins[0].matched_by == "link"
    assert _group(world, CHAT).member_count == 4

    # 6. The welcome: a group welcome template WeCom sends to joiners.
    with unit_of_work(world.db) as s:
        request_action(
            s, world.org_a, SetWelcomeMessage.kind, connection_id=cid,
            payload={"text": "欢迎加入！"}, idempotency_key="e2e:welcome",
        )  # fmt: skip
    run_jobs(world.db)
    assert list(server.welcome_templates.values()) == ["欢迎加入！"]

    # 6b. A customer adds the owner through a contact way whose state is the live code's: the
    # contact is recorded with it, and welcomed with the connection's text within WeCom's 20 s.
    with unit_of_work(world.db) as s:
        row = s.get(Connection, cid)
        assert row is not None
        row.settings = {**row.settings, "welcome_text": "您好，我是群主，欢迎入群"}
    _post(client, cid, crypto, server.add_contact("owner1", "wmcontact777", name="小赵", state=code))
    run_jobs(world.db)
    with world.db() as s:
        contact = s.scalar(select(WeComContact).where(WeComContact.external_userid == "wmcontact777"))
        assert contact is not None and contact.live_code_id is not None and contact.name == "小赵"
        assert contact.welcome_status == "sent"
    assert server.welcomes_sent[-1]["text"] == {"content": "您好，我是群主，欢迎入群"}
    assert server.welcomes_sent[-1]["after"] < 20

    # 7. An SOP run over the group: fired at its time, it becomes a mass send (add_msg_template)
    # waiting for the owner's confirmation with WeCom's msgid; the run reads awaiting_confirmation.
    with unit_of_work(world.db) as s:
        step = StepSpec(at=time(20), category="内容推送", script="今晚 8 点直播")
        plan = sop_service.create_plan(s, lead, name="企微推送", kind="daily", steps=[step])
        sop_runs.apply(s, lead, plan.id, group.id, None)
    with world.db() as s:
        run = s.scalars(select(SopRun).where(SopRun.plan_id == plan.id).order_by(SopRun.due_at)).first()
        assert run is not None
        run_id, due = run.id, run.due_at
    with unit_of_work(world.db) as s:
        assert claim_due(s, due, org_id=world.org_a) == 1  # its time: the sop.fire job is queued
    run_jobs(world.db)  # sop.fire, then the connector's send

    def sop_run() -> tuple[RunState, int | None, int, int]:
        """The run's state and action, and the SOP report's executed and waiting counts for it."""
        with world.db() as s:
            row = next(r for r in sop_runs.list_runs(s, lead, group_id=group.id) if r.id == run_id)
            day = due.date()
            figures = sop_reports.execution(
                s,
                lead,
                start=day - timedelta(days=1),
                end=day + timedelta(days=1),
                group_id=group.id,
                now=due + timedelta(minutes=1),
            ).total
            return row.state, row.action_id, figures.executed, figures.waiting

    state, action_id, executed, waiting = sop_run()
    assert (state, executed, waiting) == (RunState.AWAITING_CONFIRMATION, 0, 1)
    with world.db() as s:
        action = s.get(OutboundAction, action_id)
        assert action is not None and action.state == "awaiting_confirmation"
        msgid = action.external_ref
    assert msgid in server.msg_templates
    assert server.msg_templates[msgid]["sender"] == "owner1"
    assert server.msg_templates[msgid]["text"] == "今晚 8 点直播"

    # Not yet sent: the job leaves it waiting.
    _sync(world)
    assert sop_run()[0] == RunState.AWAITING_CONFIRMATION

    # 8. The owner presses send; the next pass reconciles from get_groupmsg_task /
    # get_groupmsg_send_result: the action, the run and the SOP report say it went out.
    server.confirm(str(msgid))
    _sync(world)
    state, _, executed, waiting = sop_run()
    assert (state, executed, waiting) == (RunState.CONFIRMED, 1, 0)
    with world.db() as s:
        assert s.get(OutboundAction, action_id).state == "confirmed"  # type: ignore[union-attr]

    # 9. A change whose callback was lost, then one that arrives: the version gap re-syncs the group.
    server.add_member(CHAT, "wmmissed0001", scene=1)  # its callback never arrives
    _post(client, cid, crypto, server.remove_member(CHAT, "wmcust0002", removed=True))
    run_jobs(world.db)
    assert _group(world, CHAT).member_count == 3  # the callback alone: 4 − 1
    _sync(world)
    assert _group(world, CHAT).member_count == len(server.groups[CHAT].members) == 4
    with world.db() as s:
        gap = s.scalar(select(WeComSyncReport).where(WeComSyncReport.reason == "version_gap"))
        assert gap is not None
        assert {"group": CHAT, "what": "joined", "member": "wmmissed0001"} in gap.differences
        by_link = select(func.count()).select_from(LiveCodeJoin).where(LiveCodeJoin.matched_by == "link")
        assert s.scalar(by_link) == 1

    # 10. A rename arrives as a callback; the name comes from groupchat/get.
    _post(client, cid, crypto, server.rename(CHAT, "VIP 1 群（新）"))
    run_jobs(world.db)
    _sync(world)
    assert _group(world, CHAT).name == "VIP 1 群（新）"

    # The nightly sync finds nothing left to correct.
    from qunyun.connectors.wecom.sync import nightly_job

    with unit_of_work(world.db) as s:
        nightly_job(s, PeriodicPayload())
    with world.db() as s:
        nightly = s.scalar(select(WeComSyncReport).where(WeComSyncReport.reason == "nightly"))
        assert nightly is not None and nightly.differences == [] and nightly.corrected == 0

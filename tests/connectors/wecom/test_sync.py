"""Full syncs and their reconciliation reports: what differed and what was corrected, groups that
vanished or were dismissed, and a sync that WeCom cannot finish."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.connectors.registry import config_of
from qunyun.connectors.wecom.crypto import WeComCrypto
from qunyun.connectors.wecom.factory import client_for
from qunyun.connectors.wecom.fake import FakeWeCom, callback_request
from qunyun.connectors.wecom.sync import full_sync, run_connection
from qunyun.db.session import unit_of_work
from qunyun.models import Connection, Event, EventKind, Group, Member
from qunyun.models.wecom_state import WeComGroup, WeComSyncReport
from tests.api.conftest import World
from tests.connectors.wecom.conftest import add_wecom
from tests.hooks.conftest import run_jobs


def _run(world: World, cid: int) -> None:
    with unit_of_work(world.db) as s:
        connection = s.get(Connection, cid)
        assert connection is not None
        run_connection(s, connection)


def _reports(world: World, cid: int) -> list[WeComSyncReport]:
    with world.db() as s:
        return list(
            s.scalars(select(WeComSyncReport).where(WeComSyncReport.connection_id == cid).order_by(WeComSyncReport.id))
        )


def test_a_sync_corrects_what_differs_and_reports_it(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "一群", "o1", {"wm1": {"name": "甲"}, "wm2": {}})
    server.add_group("c2", "二群", "o2")
    _run(world, cid)
    first = _reports(world, cid)[0]
    assert (first.reason, first.groups, first.members, first.error) == ("added", 2, 4, None)

    # Meanwhile on WeCom: c1 renamed, wm2 left, wm3 joined; c2 dismissed (no longer listed).
    server.groups["c1"].name = "一群（改）"
    del server.groups["c1"].members["wm2"]
    server.groups["c1"].members["wm3"] = {"userid": "wm3", "type": 2, "join_time": 1764748800, "join_scene": 1}
    server.groups["c2"].dismissed = True
    with unit_of_work(world.db) as s:
        connection = s.get(Connection, cid)
        assert connection is not None
        client = client_for(config_of(connection))
        with client.tokens.using(s):
            report = full_sync(s, connection, client, reason="manual")
        client.close()
        differences = sorted((d["group"], d["what"], d.get("member", "")) for d in report.differences)
    assert differences == [
        ("c1", "joined", "wm3"),
        ("c1", "left", "wm2"),
        ("c1", "renamed", ""),
        ("c2", "dismissed", ""),
    ]
    with world.db() as s:
        groups = {g.external_id: g for g in s.scalars(select(Group).where(Group.connection_id == cid))}
        state = s.scalar(select(WeComGroup).where(WeComGroup.chat_id == "c2"))
    assert groups["c1"].name == "一群（改）" and groups["c1"].member_count == 3
    assert groups["c2"].status == "dismissed" and state is not None and state.dismissed


def test_a_sync_wecom_cannot_finish_is_reported(world: World, fake: tuple[FakeWeCom, str]) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "一群", "o1")
    server.fail_next["externalcontact/groupchat/list"] = [48002]
    _run(world, cid)
    report = _reports(world, cid)[0]
    assert report.error is not None and "48002" in report.error
    assert report.finished_at is not None


def test_dismiss_and_rename_callbacks(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "一群", "o1")
    _run(world, cid)
    for xml in (server.rename("c1", "新名字"), server.chat_change_xml("c1", "dismiss")):
        query, body = callback_request(crypto, xml)
        assert client.post(f"/hooks/wecom/{cid}", params=query, content=body.encode()).status_code == 200
    run_jobs(world.db)
    _run(world, cid)
    with world.db() as s:
        group = s.scalar(select(Group).where(Group.external_id == "c1"))
    assert group is not None and group.name == "新名字" and group.status == "dismissed"


def test_a_sync_reads_groupchat_get_join_scenes_as_documented(world: World, fake: tuple[FakeWeCom, str]) -> None:
    # groupchat/get: join_scene 1 invited directly, 2 through an invite link, 3 by the group's QR
    # code (the callback's JoinScene is 0 for both invitations: tests/connectors/wecom/test_callbacks.py).
    server, base = fake
    cid = add_wecom(world, base)
    server.add_group("c1", "一群", "o1", {"wm1": {"join_scene": 1}, "wm2": {"join_scene": 2}, "wm3": {}})
    _run(world, cid)
    with world.db() as s:
        scenes = dict(
            s.execute(
                select(Member.external_id, Event.scene)
                .join(Event, Event.member_id == Member.id)
                .where(Event.kind == EventKind.MEMBER_JOINED, Member.external_id.in_(["wm1", "wm2", "wm3"]))
            ).all()
        )
    assert scenes == {"wm1": "invite", "wm2": "link", "wm3": "qr"}

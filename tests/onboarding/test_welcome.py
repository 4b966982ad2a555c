"""Welcomes through the real pipeline: a join on the simulated platform is ingested live, the
follow-up leaves a notice, the group's greet job sends one message naming the new members."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.onboarding.harness import RULES_URL, organisation


def test_a_join_is_welcomed_with_its_variables_and_an_at_mention(db: sessionmaker[Session]) -> None:
    with organisation(db) as org:
        org.join("m1", name="老王")
        org.step()
        [message] = org.bot_messages()
        assert message.text == f"@m1 欢迎 老王 加入华东1群！我是群主王群主，群规：{RULES_URL}"
        [action] = org.actions()
        assert (action.action, action.state, action.payload["mentions"]) == ("welcome_members", "sent", ["m1"])


def test_a_redelivered_join_greets_nobody_twice(db: sessionmaker[Session]) -> None:
    from qunyun.db.session import unit_of_work
    from qunyun.ingestion.service import ingest

    with organisation(db) as org:
        org.join("m1", name="老王")
        [event] = org.sim.sim.drain_events()
        for _ in range(2):  # the platform delivers the same join twice
            with unit_of_work(db) as s:
                ingest(s, org.org_id, [event], platform="simulator", source="test", live=True)
            org.run_jobs()
        org.advance(3600)
        org.run_jobs()
        assert len(org.bot_messages()) == 1
        assert [(n.kind, n.status) for n in org.notices()] == [("welcome", "sent")]


def test_a_raid_gets_one_welcome_per_interval_naming_everyone_who_joined_meanwhile(
    db: sessionmaker[Session],
) -> None:
    with organisation(db) as org:
        org.join("m1", name="老王")
        org.step()
        assert [m.text.split(" 欢迎")[0] for m in org.bot_messages()] == ["@m1"]
        # Four more within the next 40 seconds, each ingested as it comes.
        for n, seconds in ((2, 5), (3, 10), (4, 10), (5, 15)):
            org.join(f"m{n}", name=f"骑友{n}", after=seconds)
            org.step()
        assert len(org.bot_messages()) == 1  # the raid protection holds them until 60 s after the first
        org.advance(20)  # 60 s after the first welcome
        org.run_jobs()
        first, second = org.bot_messages()
        names = "骑友2、骑友3、骑友4、骑友5"
        assert second.text == f"@m2 @m3 @m4 @m5 欢迎 {names} 加入华东1群！我是群主王群主，群规：{RULES_URL}"
        assert (second.sent_at - first.sent_at).total_seconds() >= 60
        welcomes = org.actions("welcome_members")
        assert [a.payload["mentions"] for a in welcomes] == [["m1"], ["m2", "m3", "m4", "m5"]]
        # Everyone named once; nothing left to send.
        assert {n.status for n in org.notices()} == {"sent"}
        org.advance(3600)
        assert org.run_jobs() == 0 and len(org.bot_messages()) == 2


def test_the_interval_is_the_playbooks(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_interval_seconds=300) as org:
        org.join("m1")
        org.step()
        org.join("m2", after=100)
        org.step()
        org.advance(100)  # 200 s after the first: still inside the playbook's 5 minutes
        org.run_jobs()
        assert len(org.bot_messages()) == 1
        org.advance(100)
        org.run_jobs()
        assert [m.text.split(" 欢迎")[0] for m in org.bot_messages()] == ["@m1", "@m2"]


def test_quiet_groups_are_welcomed_at_once_and_groups_do_not_hold_each_other_back(
    db: sessionmaker[Session],
) -> None:
    with organisation(db) as org:
        org.create_group("G2", "华东2群")
        org.join("m1", "G1")
        org.join("m2", "G2")
        org.step()
        assert len(org.bot_messages("G1")) == len(org.bot_messages("G2")) == 1
        org.join("m3", "G1", after=120)  # the last welcome in G1 is two minutes old
        org.step()
        assert len(org.bot_messages("G1")) == 2


def test_members_who_left_before_their_welcome_are_not_named(db: sessionmaker[Session]) -> None:
    with organisation(db) as org:
        org.join("m1")
        org.step()
        org.join("m2", after=10)
        org.join("m3", after=1)
        org.sim.sim.leave("m3", "G1")
        org.step()
        org.advance(60)
        org.run_jobs()
        assert org.bot_messages()[-1].text.startswith("@m2 欢迎 新朋友 加入")  # no name reported: a friendly word
        assert [(n.status, n.reason) for n in org.notices()][-2:] == [("sent", ""), ("skipped", "left")]


def test_a_group_without_a_welcome_text_is_not_greeted(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_text="") as org:
        org.join("m1")
        org.step()
        assert org.bot_messages() == [] and org.actions() == [] and org.notices() == []


def test_where_the_platform_cannot_mention_the_text_names_them_and_the_owner_confirms(
    db: sessionmaker[Session],
) -> None:
    from qunyun.connectors.base import get_profile
    from qunyun.tasks.titles import render_title

    # WeCom: no @-mention in a group mass send, and the owner presses send.
    with organisation(db, profile=get_profile("wecom"), welcome_text="欢迎加入{group_name}！") as org:
        org.join("m1", name="老王")
        org.join("m2", name="小李")
        org.step()
        [action] = org.actions()
        assert action.state == "awaiting_confirmation"
        assert action.payload == {"text": "老王、小李：欢迎加入华东1群！", "mentions": []}
        [task] = org.tasks()
        assert task.kind == "confirm_send" and task.assignee_id == org.owner_id
        assert render_title(task, "zh") == "在企业微信上确认发送：在「华东1群」欢迎新成员"

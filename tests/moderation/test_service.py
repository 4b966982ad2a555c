"""Moderation's service on a simulated platform: which policy judges a group, manual blacklist
entries, lifting a mute on appeal, joins judged by name card and corp, new members' links, the
default policy, and a member's evidence exported and erased."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.session import unit_of_work
from qunyun.livecodes.blacklist import is_blacklisted
from qunyun.models import Community, Connection, Member, ModerationDecision, ModerationRecentMessage
from qunyun.moderation import service
from qunyun.timeutil import utcnow
from tests.moderation.test_engine import SPAM, decisions, lead, moderated
from tests.onboarding.harness import organisation


def member_id(org: object, external: str) -> int:
    with org.db() as s:  # type: ignore[attr-defined]
        return int(s.scalars(select(Member.id).where(Member.external_id == external)).one())


def test_the_most_specific_policy_judges_a_group(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.create_group("G2", "华东2群")
        with unit_of_work(db) as s:
            # G2's playbook, and G2 itself: the group's own policy wins over the playbook's.
            g2 = org.groups["G2"]
            service.create_policy(
                s, lead(org), name="剧本", target_type="playbook", target_id=org.playbook_id, words=["代购"]
            )
            service.create_policy(s, lead(org), name="G2", target_type="group", target_id=g2, words=["拼团"])
        org.join("m1")
        org.sim.sim.join("m1", "G2")
        org.step()
        for group in ("G1", "G2"):
            for text in (SPAM, "代购", "拼团"):
                org.sim.sim.post("m1", group, text)
        org.step()
        # G1: the playbook's policy (代购); G2: its own (拼团); the organisation's judges neither.
        seen = {(d.group_id, d.matches[0]["word"]) for d in decisions(org)}
        assert seen == {(org.groups["G1"], "代购"), (g2, "拼团")}
        with unit_of_work(db) as s:
            policy = service.effective_policy(s, lead(org), g2)
            assert policy is not None and policy.name == "G2"


def test_a_community_policy_and_a_disabled_one(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        with unit_of_work(db) as s:
            community = Community(org_id=org.org_id, name="骑行社群", created_at=utcnow())
            s.add(community)
            s.flush()
            from qunyun.models import Group

            s.get_one(Group, org.groups["G1"]).community_id = community.id
            row = service.create_policy(
                s, lead(org), name="社群", target_type="community", target_id=community.id, words=["代购"]
            )
            policy_id = row.id
        org.join("m1")
        org.sim.sim.post("m1", "G1", "代购")
        org.step()
        assert [d.matches[0]["word"] for d in decisions(org)] == ["代购"]
        with unit_of_work(db) as s:
            service.update_policy(s, lead(org), policy_id, {"enabled": False})
        org.sim.sim.post("m1", "G1", SPAM)
        org.step()
        # Disabled: the organisation's policy judges the group again.
        assert [d.matches[0]["word"] for d in decisions(org)] == ["代购", "加我微信"]


def test_a_manual_blacklist_removes_the_member_and_live_codes_refuse_them(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.create_group("G2", "华东2群")
        org.join("scammer")
        org.sim.sim.join("scammer", "G2")
        org.step()
        scammer = member_id(org, "scammer")
        with unit_of_work(db) as s:
            entry = service.blacklist_member(s, lead(org), scammer, reach="organisation", reason="诈骗")
            assert len(entry.action_ids) == 2
        org.run_jobs()
        assert not org.sim.sim.is_member("scammer", "G1") and not org.sim.sim.is_member("scammer", "G2")
        with db() as s:
            assert is_blacklisted(s, org.org_id, [scammer])
        with unit_of_work(db) as s:
            service.unblacklist_member(s, lead(org), scammer, reason="已核实身份")
        with db() as s:
            assert not is_blacklisted(s, org.org_id, [scammer])


def test_a_group_entry_keeps_them_out_of_that_group_only(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.create_group("G2", "华东2群")
        org.join("m1")
        org.step()
        m1 = member_id(org, "m1")
        with unit_of_work(db) as s:
            service.blacklist_member(s, lead(org), m1, reach="group", group_id=org.groups["G1"], reason="刷屏")
        org.run_jobs()
        assert not org.sim.sim.is_member("m1", "G1")
        with db() as s:
            assert not is_blacklisted(s, org.org_id, [m1])  # live codes may still route them elsewhere
        org.sim.sim.join("m1", "G2")
        org.sim.sim.join("m1", "G1")
        org.step()
        assert org.sim.sim.is_member("m1", "G2") and not org.sim.sim.is_member("m1", "G1")


def test_an_appeal_lifts_a_running_mute(db: sessionmaker[Session]) -> None:
    settings = {"rules": [{"name": "广告", "kind": "words", "action": "mute", "mute_minutes": 120}]}
    with moderated(db, settings=settings) as org:
        org.join("m1")
        org.sim.sim.post("m1", "G1", SPAM)
        org.step()
        assert org.sim.sim.is_muted("G1", "m1")
        [mute] = decisions(org)
        assert mute.mute_seconds == 7200
        with unit_of_work(db) as s:
            record = service.member_record(s, lead(org), mute.member_id or 0, now=org.clock.now())
            assert [d.id for d in record.mutes] == [mute.id]
            service.reverse_decision(s, lead(org), mute.id, "误伤")
        org.run_jobs()
        assert not org.sim.sim.is_muted("G1", "m1")
        assert [a.action for a in org.actions()][-1] == "unmute"


def test_joins_are_judged_by_name_card_and_corp(db: sessionmaker[Session]) -> None:
    settings = {
        "rules": [
            {"name": "名片广告", "kind": "name_card", "action": "kick"},
            {"name": "外部企业", "kind": "other_corp", "action": "kick"},
        ]
    }
    with moderated(db, settings=settings) as org:
        org.join("ad", name="加我微信领红包")
        org.join("fine", name="骑友老王")
        org.step()
        assert not org.sim.sim.is_member("ad", "G1") and org.sim.sim.is_member("fine", "G1")
        [kick] = decisions(org)
        assert (kick.rule, kick.excerpt) == ("名片广告", "加我微信领红包")
        # A member of another WeCom corp (the connector tells the corp) is removed when they join;
        # the organisation's own corp is its connection's.
        with unit_of_work(db) as s:
            connection = s.get_one(Connection, org.connection_id)
            connection.settings = {**(connection.settings or {}), "corp_id": "wwOURS"}
            s.add(
                Member(
                    org_id=org.org_id,
                    platform=org.platform_name,
                    external_id="rival",
                    display_name="同行",
                    corp="wwRIVAL",
                    first_seen_at=utcnow(),
                )
            )
        org.join("rival", name="同行")
        org.step()
        assert not org.sim.sim.is_member("rival", "G1")
        assert decisions(org)[-1].rule == "外部企业"


def test_new_members_may_not_post_links(db: sessionmaker[Session]) -> None:
    settings = {"rules": [{"name": "新人", "kind": "new_member", "hours": 24, "action": "delete"}]}
    with moderated(db, settings=settings, words=[]) as org:
        org.join("new")
        org.step()
        org.advance(60)
        org.sim.sim.post("new", "G1", "看看这个 http://example.com/deal")
        org.step()
        [row] = decisions(org)
        assert (row.rule, row.action) == ("新人", "delete")
        assert org.sim.sim.messages_in("G1") == []  # deleted
        assert [a.action for a in org.actions()] == ["delete_message"]
        org.advance(25 * 3600)
        org.sim.sim.post("new", "G1", "看看这个 http://example.com/deal")
        org.step()
        assert len(decisions(org)) == 1


def test_the_default_policy_warns_with_the_shipped_list(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_text="") as org:
        with unit_of_work(db) as s:
            policy = service.create_default_policy(s, org.org_id)
            assert len(policy.words) > 20
            assert service.create_default_policy(s, org.org_id).id == policy.id
        org.join("m1", name="小李")
        org.sim.sim.post("m1", "G1", "兼职刷单日结，有意私聊")
        org.step()
        [row] = decisions(org)
        assert (row.action, row.rule) == ("warn", "敏感词")
        assert org.bot_messages()[0].text.startswith("@小李 ")


def test_a_members_evidence_is_exported_and_erased(db: sessionmaker[Session]) -> None:
    flood = {"rules": [{"name": "广告", "kind": "words"}, {"name": "刷屏", "kind": "flood", "count": 5}]}
    with moderated(db, settings=flood) as org:
        org.join("m1")
        org.sim.sim.post("m1", "G1", SPAM)
        org.step()
        with db() as s:
            assert s.scalar(select(ModerationRecentMessage.event_id)) is not None
        m1 = member_id(org, "m1")
        with unit_of_work(db) as s:
            [exported] = service.export_member_evidence(s, org.org_id, m1)
            assert (exported["excerpt"], exported["matches"][0]["word"]) == (SPAM, "加我微信")
            assert service.erase_member_evidence(s, org.org_id, m1) == 1
        with db() as s:
            row = s.scalars(select(ModerationDecision)).one()
            assert (row.excerpt, row.matches, row.action) == ("", [], "warn")
            assert row.erased_at is not None
            assert s.scalar(select(ModerationRecentMessage.event_id)) is None


def test_a_live_code_refuses_a_member_moderation_blacklisted(db: sessionmaker[Session]) -> None:
    from qunyun.livecodes.attribution import first_scans, record_join
    from tests.livecodes.helpers import add_group, make_code, make_org, scan

    org = make_org(db)
    add_group(org, "a")
    code_id, code = make_code(org, ["a"])
    first = scan(org, code)
    with unit_of_work(db) as s:
        member = Member(org_id=org.id, platform="api", external_id="m1", first_seen_at=utcnow())
        s.add(member)
        s.flush()
        [found] = first_scans(s, org.id, org.groups["a"], until=utcnow())
        record_join(
            s,
            org_id=org.id,
            live_code_id=code_id,
            group_id=org.groups["a"],
            member_id=member.id,
            event_id=1,
            joined_at=utcnow(),
            matched_by="window",
            scan_id=found.scan_id,
        )
        service.blacklist_member(s, org.lead_scope, member.id, reach="organisation", reason="诈骗")
        member_id = member.id
    assert scan(org, code, first.visitor).outcome == "blocked"
    with unit_of_work(db) as s:
        service.unblacklist_member(s, org.lead_scope, member_id, reason="误判")
    assert scan(org, code, first.visitor).outcome == "routed"


def test_excerpts_go_with_the_message_texts_retention(db: sessionmaker[Session]) -> None:
    from datetime import timedelta

    from qunyun.moderation.retention import PURGE_JOB, purge_excerpts
    from qunyun.worker.scheduler import periodic_jobs

    assert any(p.kind == PURGE_JOB for p in periodic_jobs())
    with moderated(db) as org:
        org.join("m1")
        org.sim.sim.post("m1", "G1", SPAM)
        org.step()
        [row] = decisions(org)
        with unit_of_work(db) as s:
            # Within 30 days of the message: kept; after: blanked, the decision stays.
            assert purge_excerpts(s, now=row.at + timedelta(days=29), retention_days=30) == 0
            assert purge_excerpts(s, now=row.at + timedelta(days=31), retention_days=30) == 1
        [row] = decisions(org)
        assert (row.excerpt, row.action, row.matches[0]["word"]) == ("", "warn", "加我微信")


def test_a_reader_sees_no_group_entry_of_a_group_outside_their_scope(db: sessionmaker[Session]) -> None:
    from qunyun.auth.scope import Scope
    from qunyun.models import Group, Role
    from qunyun.team.service import create_staff

    with moderated(db) as org:
        org.create_group("G2", "华东2群")
        org.join("m1")
        org.sim.sim.join("m1", "G2")
        org.step()
        m1 = member_id(org, "m1")
        with unit_of_work(db) as s:
            owner = create_staff(s, org.org_id, username="owner2", password="password-1", role="owner")
            s.get_one(Group, org.groups["G2"]).owner_id = owner.id
            owner_id = owner.id
            service.blacklist_member(s, lead(org), m1, reach="group", group_id=org.groups["G1"], reason="刷屏")
        with db() as s:
            theirs = service.member_record(s, lead(org), m1)
            mine = service.member_record(s, Scope(staff_id=owner_id, org_id=org.org_id, role=Role.OWNER), m1)
        assert [e.group_id for e in theirs.blacklist] == [org.groups["G1"]]
        assert mine.blacklist == []

"""The moderation engine through the real pipeline: people post and join on a simulated
platform, the events are ingested live, the engine judges them inline, the worker performs the
actions on the platform (or hands them to a person where the platform cannot)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.connectors.base import get_profile
from qunyun.db.session import unit_of_work
from qunyun.ingestion import followups
from qunyun.ingestion.service import ingest
from qunyun.models import ModerationDecision, Role
from qunyun.moderation import engine, service
from tests.onboarding.harness import Org, organisation

SPAM = "加我微信领红包"
RULES: dict[str, Any] = {"rules": [{"name": "广告", "kind": "words"}]}


def lead(org: Org) -> Scope:
    return Scope(staff_id=org.lead_id, org_id=org.org_id, role=Role.LEAD)


@contextmanager
def moderated(
    db: sessionmaker[Session], settings: dict[str, Any] | None = None, words: list[Any] | None = None, **kw: Any
) -> Iterator[Org]:
    """An organisation whose policy lists 加我微信 (ads), with no welcome, G1 on its platform."""
    with organisation(db, welcome_text="", **kw) as org:
        with unit_of_work(db) as s:
            service.create_policy(
                s,
                lead(org),
                name="群规",
                target_type="organisation",
                settings=settings if settings is not None else RULES,
                words=words if words is not None else [{"word": "加我微信", "category": "广告"}],
            )
        yield org


def decisions(org: Org) -> list[ModerationDecision]:
    with org.db() as s:
        return list(s.scalars(select(ModerationDecision).order_by(ModerationDecision.id)))


def test_a_spammer_is_warned_twice_then_kicked(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.join("spammer", name="小广告")
        org.join("fan", name="骑友")
        org.step()
        org.sim.sim.post("fan", "G1", "今天骑了50公里")
        for n in range(3):
            org.advance(60)
            org.sim.sim.post("spammer", "G1", f"{SPAM} {n}")
            org.step()
        rows = decisions(org)
        assert [(d.action, d.rule, d.category) for d in rows] == [
            ("warn", "广告", "ads"),
            ("warn", "广告", "ads"),
            ("kick", "广告", "ads"),
        ]
        assert rows[0].matches == [{"word": "加我微信", "category": "ads", "start": 0, "end": 4}]
        assert rows[0].excerpt == f"{SPAM} 0"
        warnings = [m.text for m in org.bot_messages()]
        assert len(warnings) == 2
        assert warnings[0].startswith("@小广告 ") and "「广告」" in warnings[0]
        # The kick removed them and deleted the message that earned it.
        assert not org.sim.sim.is_member("spammer", "G1")
        assert org.sim.sim.is_member("fan", "G1")
        kinds = [(a.action, a.state) for a in org.actions()]
        assert kinds == [
            ("send_group_message", "sent"),
            ("send_group_message", "sent"),
            ("delete_message", "sent"),
            ("kick", "sent"),
        ]
        assert rows[2].action_ids == [a.id for a in org.actions()][2:]


def test_clean_messages_decide_nothing(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.join("fan", name="骑友")
        org.step()
        org.sim.sim.post("fan", "G1", "周末一起骑车吗")
        org.step()
        assert decisions(org) == [] and org.actions() == []


def test_dry_run_records_and_acts_on_nothing(db: sessionmaker[Session]) -> None:
    with moderated(db, settings={**RULES, "dry_run": True}) as org:
        org.join("spammer")
        org.step()
        for _ in range(4):
            org.sim.sim.post("spammer", "G1", SPAM)
            org.step()
        rows = decisions(org)
        assert len(rows) == 4 and all(d.dry_run for d in rows)
        # Dry runs count no strikes: every one is the ladder's first step.
        assert {d.action for d in rows} == {"warn"}
        assert org.actions() == [] and org.bot_messages() == []
        assert org.sim.sim.is_member("spammer", "G1")


def test_exempt_members_are_not_judged(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.join("kol", name="大V")
        org.step()
        with unit_of_work(db) as s:
            member = s.scalar(select(ModerationDecision.member_id))  # none yet
            assert member is None
            from qunyun.models import Member

            kol = s.scalars(select(Member.id).where(Member.external_id == "kol")).one()
            service.set_member_role(s, lead(org), org.groups["G1"], kol, "kol")
        for _ in range(3):
            org.sim.sim.post("kol", "G1", SPAM)
            org.step()
        assert decisions(org) == [] and org.actions() == []


def test_a_word_list_edit_takes_effect_at_the_next_message(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.join("m1")
        org.step()
        org.sim.sim.post("m1", "G1", "代购名表")
        org.step()
        assert decisions(org) == []
        with unit_of_work(db) as s:
            [policy] = service.list_policies(s, lead(org))
            service.set_word_lists(s, lead(org), policy.id, words=["代购"])
        org.sim.sim.post("m1", "G1", "代购名表")
        org.step()
        [row] = decisions(org)
        assert row.matches[0]["word"] == "代购"


def test_flood_counts_the_members_recent_messages(db: sessionmaker[Session]) -> None:
    settings = {"rules": [{"name": "刷屏", "kind": "flood", "count": 4, "seconds": 10, "action": "mute"}]}
    with moderated(db, settings=settings, words=[]) as org:
        org.join("m1")
        org.step()
        # Three messages in one batch, the fourth in the next: the window spans both.
        for n in range(3):
            org.sim.sim.post("m1", "G1", f"hello {n}")
        org.step()
        assert decisions(org) == []
        org.advance(2)
        org.sim.sim.post("m1", "G1", "hello 3")
        org.step()
        [row] = decisions(org)
        assert (row.action, row.rule, row.mute_seconds) == ("mute", "刷屏", 3600)
        assert org.sim.sim.is_muted("G1", "m1")
        # After the window, a message is fine again.
        org.advance(3600 + 30)
        org.sim.sim.post("m1", "G1", "back")
        org.step()
        assert len(decisions(org)) == 1


def test_a_blacklisted_member_is_kicked_on_join_and_refused_by_live_codes(db: sessionmaker[Session]) -> None:
    from qunyun.livecodes.blacklist import is_blacklisted

    settings = {"rules": [{"name": "广告", "kind": "words", "action": "blacklist"}], "blacklist_scope": "organisation"}
    with moderated(db, settings=settings) as org:
        org.create_group("G2", "华东2群")
        org.join("spammer", name="小广告")
        org.step()
        org.sim.sim.post("spammer", "G1", SPAM)
        org.step()
        assert not org.sim.sim.is_member("spammer", "G1")
        [entry] = decisions(org)
        assert (entry.action, entry.blacklist_scope) == ("blacklist", "organisation")
        with db() as s:
            assert is_blacklisted(s, org.org_id, [entry.member_id])
        # Joining another group of the organisation: kicked at once.
        org.sim.sim.join("spammer", "G2")
        org.step()
        assert not org.sim.sim.is_member("spammer", "G2")
        kick = decisions(org)[-1]
        assert (kick.action, kick.group_id, kick.detail["blacklist_decision"]) == ("kick", org.groups["G2"], entry.id)
        # An appeal lifts it: live codes let them in again, a join stays.
        with unit_of_work(db) as s:
            service.reverse_decision(s, lead(org), entry.id, "误判：是我们的客服")
        with db() as s:
            assert not is_blacklisted(s, org.org_id, [entry.member_id])
        org.sim.sim.join("spammer", "G2")
        org.step()
        assert org.sim.sim.is_member("spammer", "G2")


def test_an_appeal_takes_a_strike_back(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.join("m1", name="老王")
        org.step()
        org.sim.sim.post("m1", "G1", SPAM)
        org.sim.sim.post("m1", "G1", SPAM)
        org.step()
        first, second = decisions(org)
        assert (first.action, second.action) == ("warn", "warn")
        with unit_of_work(db) as s:
            service.reverse_decision(s, lead(org), second.id, "说的是自己的群")
        with unit_of_work(db) as s:
            record = service.member_record(s, lead(org), second.member_id or 0, now=org.clock.now())
            assert record.strikes == 1
            assert [v.reversed for v in record.decisions] == [True, False]
            assert record.decisions[0].reversal is not None
            assert record.decisions[0].reversal.reason == "说的是自己的群"
        # One strike in force: the next is the second warning, not a kick.
        org.sim.sim.post("m1", "G1", SPAM)
        org.step()
        assert decisions(org)[-1].action == "warn"
        assert org.sim.sim.is_member("m1", "G1")


def test_on_wecom_the_kick_is_a_task_with_the_evidence(db: sessionmaker[Session]) -> None:
    settings = {"rules": [{"name": "广告", "kind": "words", "action": "kick"}]}
    with moderated(db, settings=settings, profile=get_profile("wecom")) as org:
        org.join("spammer", name="小广告")
        org.step()
        # WeCom reports no messages to the bot: they come from the chat archive (会话存档).
        archived = {
            "id": "archive-1",
            "ts": org.clock.now().isoformat(),
            "kind": "message.posted",
            "group": "G1",
            "member": "spammer",
            "msg_type": "text",
            "text": SPAM,
            "message": "wecom-msg-1",
        }
        with unit_of_work(db) as s:
            ingest(s, org.org_id, [archived], platform="wecom", source="test", live=True)
        org.run_jobs()
        kick = org.actions("kick")[0]
        assert kick.state == "delegated"
        [task] = [t for t in org.tasks() if t.outbound_action_id == kick.id]
        evidence = task.detail["moderation"]
        assert (evidence["rule"], evidence["words"], evidence["excerpt"]) == ("广告", ["加我微信"], SPAM)
        assert task.detail["payload"]["reason"] == f"违反「广告」，命中「加我微信」：{SPAM}"


def test_messages_posted_before_the_removal_ask_for_one_kick(db: sessionmaker[Session]) -> None:
    with moderated(db) as org:
        org.join("spammer", name="小广告")
        org.step()
        for n in range(2):
            org.advance(60)
            org.sim.sim.post("spammer", "G1", f"{SPAM} {n}")
            org.step()
        # Three more before anything is performed: each is a decision, one removal between them.
        for n in range(2, 5):
            org.advance(5)
            org.sim.sim.post("spammer", "G1", f"{SPAM} {n}")
        org.step()
        assert [d.action for d in decisions(org)] == ["warn", "warn", "kick", "kick", "kick"]
        kicks = [a for a in org.actions() if a.action == "kick"]
        assert len(kicks) == 1 and kicks[0].state == "sent"
        assert not org.sim.sim.is_member("spammer", "G1")
        # Each message that earned a removal is deleted.
        assert sum(1 for a in org.actions() if a.action == "delete_message") == 3


def test_a_message_is_judged_in_a_few_statements(db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's round trips per live message, with a flood rule (recent messages) and the
    ladder: for a clean message the members with their roles, memberships, strikes, recent
    messages and what their actions would be routed by, and the message's own recent row; for
    one that queues an action then the actions, their history, their perform jobs and the
    decision — a removal as much as a warning. The group, its connection and the member are not
    read again to route them."""
    seen: list[list[str]] = []

    def counted(session: Session, org_id: int, events: list[Any]) -> None:
        sent: list[str] = []

        def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if "moderation_policies" not in statement:  # the policy rows' 1 s cache may run out
                sent.append(statement)

        bind = session.get_bind()
        sa_event.listen(bind, "before_cursor_execute", before)
        try:
            engine.moderate(session, org_id, events)
        finally:
            sa_event.remove(bind, "before_cursor_execute", before)
        seen.append(sent)

    registry = [replace(f, handler=counted) if f.handler is engine.moderate else f for f in followups._REGISTRY]
    monkeypatch.setattr(followups, "_REGISTRY", registry)
    settings = {**RULES, "rules": [*RULES["rules"], {"name": "刷屏", "kind": "flood", "count": 20, "seconds": 60}]}
    with moderated(db, settings=settings) as org:
        org.join("spammer")
        org.step()
        for text in ("你好", "大家好", SPAM, SPAM, SPAM):
            org.advance(90)
            org.sim.sim.post("spammer", "G1", text)
            org.step()
        assert [d.action for d in decisions(org)] == ["warn", "warn", "kick"]
        messages = seen[-5:]
        # PostgreSQL writes the recent row with the read, and the actions' history with their jobs
        # and the decision.
        clean, firing = (1, 3) if db.kw["bind"].dialect.name == "postgresql" else (2, 6)
        assert [len(statements) for statements in messages] == [clean] * 2 + [firing] * 3

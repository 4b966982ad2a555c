"""qunyun.ingestion.service.ingest(): the one entry point connectors hand normalized events to.

Stores each event once per id, keeps membership spans and member counts, stores message text
only within the retention window, creates groups, members and channels on first sight, and
calls follow-up hooks for live events in the caller's transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.config import get_settings
from qunyun.db.base import to_micros
from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput
from qunyun.ingestion.followups import LiveEvent, follow_up, unregister
from qunyun.ingestion.service import IngestResult, ingest
from qunyun.models import (
    Channel,
    Event,
    EventKind,
    Group,
    Job,
    Member,
    MembershipSpan,
    MessageText,
    Order,
    Organisation,
)
from qunyun.team.service import create_organisation, create_staff
from qunyun.worker.queue import enqueue
from tests.analytics.helpers import created, import_events, join, leave, message, paid, sh


def utc(ts: str) -> datetime:
    return datetime.fromisoformat(ts).astimezone(UTC)


@pytest.fixture
def org_id(session: Session) -> int:
    return create_organisation(session, name="Org", slug="org").id


def run(session: Session, org_id: int, events: list[Mapping[str, Any]], *, live: bool = False) -> IngestResult:
    return ingest(session, org_id, events, platform="test", source="test", live=live)


def spans(session: Session) -> list[tuple[str, str, datetime, datetime | None]]:
    """(group, member, joined_at, left_at) of every membership span."""
    rows = session.execute(
        select(Group.external_id, Member.external_id, MembershipSpan.joined_at, MembershipSpan.left_at)
        .join(Group, Group.id == MembershipSpan.group_id)
        .join(Member, Member.id == MembershipSpan.member_id)
    ).all()
    return sorted((g, m, j, left_at) for g, m, j, left_at in rows)


def member_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Group.external_id, Group.member_count)).all())


def rows_in(session: Session, *models: Any) -> dict[str, int]:
    return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) or 0 for m in models}


HISTORY = [
    join("m1-in", sh("03-02", "09:00:00"), "g1", "m1"),
    join("m2-in", sh("03-02", "09:10:00"), "g1", "m2"),
    join("m3-in", sh("03-02", "09:20:00"), "g1", "m3"),
    leave("m2-out", sh("03-03", "10:00:00"), "g1", "m2"),
    leave("m3-out", sh("03-03", "11:00:00"), "g1", "m3"),
    join("m3-back", sh("03-04", "11:00:00"), "g1", "m3"),
    join("m1-g2", sh("03-04", "12:00:00"), "g2", "m1"),
]
EXPECTED_SPANS = [
    ("g1", "m1", utc(sh("03-02", "09:00:00")), None),
    ("g1", "m2", utc(sh("03-02", "09:10:00")), utc(sh("03-03", "10:00:00"))),
    ("g1", "m3", utc(sh("03-02", "09:20:00")), utc(sh("03-03", "11:00:00"))),
    ("g1", "m3", utc(sh("03-04", "11:00:00")), None),
    ("g2", "m1", utc(sh("03-04", "12:00:00")), None),
]


def test_membership_spans_and_member_counts(session: Session, org_id: int) -> None:
    result = run(session, org_id, HISTORY)
    assert (result.stored, result.duplicates) == (7, 0)
    assert result.stored_ids == [e["id"] for e in HISTORY]
    assert spans(session) == EXPECTED_SPANS
    assert member_counts(session) == {"g1": 2, "g2": 1}


@pytest.mark.parametrize("order", ["reversed", "interleaved"])
def test_membership_out_of_order_one_event_per_delivery(session: Session, org_id: int, order: str) -> None:
    events = list(reversed(HISTORY)) if order == "reversed" else HISTORY[1::2] + HISTORY[0::2]
    for e in events:
        run(session, org_id, [e])
    assert spans(session) == EXPECTED_SPANS
    assert member_counts(session) == {"g1": 2, "g2": 1}


def test_latest_membership_event_wins(session: Session, org_id: int) -> None:
    run(
        session,
        org_id,
        [
            # joined twice, left once: the latest event is a leave
            join("a1", sh("03-02", "09:00:00"), "g1", "m1"),
            join("a2", sh("03-02", "10:00:00"), "g1", "m1"),
            leave("a3", sh("03-02", "11:00:00"), "g1", "m1"),
            # a leave without a join, then nothing: never a member, never a negative count
            leave("b1", sh("03-02", "09:00:00"), "g1", "m2"),
            # left twice, then joined: a member
            join("c1", sh("03-02", "08:00:00"), "g1", "m3"),
            leave("c2", sh("03-02", "09:00:00"), "g1", "m3"),
            leave("c3", sh("03-02", "10:00:00"), "g1", "m3"),
            join("c4", sh("03-02", "11:00:00"), "g1", "m3"),
        ],
    )
    assert member_counts(session) == {"g1": 1}
    assert [(m, left_at is None) for _, m, _, left_at in spans(session)] == [("m1", False), ("m3", False), ("m3", True)]


def test_a_late_leave_closes_and_a_late_join_reopens(session: Session, org_id: int) -> None:
    run(session, org_id, [join("j1", sh("03-02"), "g1", "m1")])
    assert member_counts(session) == {"g1": 1}
    run(session, org_id, [leave("l1", sh("03-05"), "g1", "m1")])
    assert member_counts(session) == {"g1": 0}
    # an earlier leave arriving late changes the span but not the current membership
    run(session, org_id, [leave("l0", sh("03-03"), "g1", "m1"), join("j2", sh("03-04"), "g1", "m1")])
    assert member_counts(session) == {"g1": 0}
    assert spans(session) == [
        ("g1", "m1", utc(sh("03-02")), utc(sh("03-03"))),
        ("g1", "m1", utc(sh("03-04")), utc(sh("03-05"))),
    ]
    run(session, org_id, [join("j3", sh("03-06"), "g1", "m1")])
    assert member_counts(session) == {"g1": 1}


def test_invalid_input_names_the_index_and_field_and_writes_nothing(session: Session, org_id: int) -> None:
    events = [
        join("ok1", sh("03-02"), "g1", "m1"),
        message("ok2", sh("03-02"), "g1", "m1", text="hi"),
        {**join("bad", sh("03-02"), "g2", "m2"), "ts": "2026-03-02T09:00:00"},
        join("ok3", sh("03-02"), "g3", "m3"),
    ]
    with pytest.raises(InvalidInput) as caught:
        run(session, org_id, events)
    assert caught.value.field == "ts"
    assert caught.value.detail["index"] == 2
    assert caught.value.message.startswith("event 2: field 'ts':")
    assert rows_in(session, Event, Group, Member, MembershipSpan, MessageText) == {
        "events": 0,
        "groups": 0,
        "members": 0,
        "membership_spans": 0,
        "message_texts": 0,
    }


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "x", "ts": sh("03-02"), "kind": "member.kicked", "group": "g1", "member": "m1"}, "kind"),
        (paid("x", sh("03-02"), "o1", "m1", "1.005"), "amount"),
        ({**message("x", sh("03-02"), "g1", "m1"), "msg_type": None}, "msg_type"),
        ({**message("x", sh("03-02"), "g1", "m1"), "text": 5}, "text"),
        ("not a dict", None),
    ],
)
def test_invalid_input_fields(session: Session, org_id: int, bad: Any, field: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        run(session, org_id, [join("ok", sh("03-02"), "g1", "m1"), bad])
    assert caught.value.field == field
    assert caught.value.detail["index"] == 1
    assert rows_in(session, Event, Group) == {"events": 0, "groups": 0}


def test_duplicates_are_stored_once_and_change_nothing(session: Session, org_id: int) -> None:
    first = run(session, org_id, HISTORY[:4] + HISTORY[:2])
    assert (first.stored, first.duplicates) == (4, 2)
    second = run(session, org_id, HISTORY)
    assert (second.stored, second.duplicates) == (3, 4)
    assert second.stored_ids == [e["id"] for e in HISTORY[4:]]
    assert spans(session) == EXPECTED_SPANS
    third = run(session, org_id, list(reversed(HISTORY)))
    assert (third.stored, third.duplicates, third.stored_ids) == (0, 7, [])
    assert spans(session) == EXPECTED_SPANS
    assert member_counts(session) == {"g1": 2, "g2": 1}


def test_a_redelivery_with_other_content_changes_nothing(session: Session, org_id: int) -> None:
    """The same id delivered twice: the second delivery changes nothing, whatever it says."""
    run(session, org_id, [join("e1", sh("03-02"), "g1", "m1")])
    before = rows_in(session, Event, Group, Member, MembershipSpan)
    result = run(session, org_id, [join("e1", sh("03-03"), "g2", "m2", channel="sms", inviter="m3")])
    assert (result.stored, result.duplicates) == (0, 1)
    assert rows_in(session, Event, Group, Member, MembershipSpan, Channel) == {**before, "channels": 0}


def test_a_redelivery_within_one_batch_changes_nothing(session: Session, org_id: int) -> None:
    result = run(session, org_id, [join("e1", sh("03-02"), "g1", "m1"), join("e1", sh("03-03"), "g2", "m2")])
    assert (result.stored, result.duplicates) == (1, 1)
    assert rows_in(session, Event, Group, Member) == {"events": 1, "groups": 1, "members": 1}


def test_message_text_is_kept_only_within_the_retention_window(session: Session, org_id: int) -> None:
    assert get_settings().message_text_retention_days == 30
    now = datetime.now(UTC)
    recent = (now - timedelta(days=29)).isoformat()
    old = (now - timedelta(days=31)).isoformat()
    run(
        session,
        org_id,
        [
            message("recent", recent, "g1", "m1", text="新人福利怎么领？"),
            message("old", old, "g1", "m1", text="很久以前的消息"),
            message("image", recent, "g1", "m1", msg_type="image"),
        ],
    )
    texts = session.execute(
        select(Event.external_id, MessageText.text).join(MessageText, MessageText.event_id == Event.id)
    ).all()
    assert [tuple(t) for t in texts] == [("recent", "新人福利怎么领？")]
    # the log keeps every message (with its length, not its text)
    lengths = dict(session.execute(select(Event.external_id, Event.length)).all())
    assert lengths == {"recent": 8, "old": 7, "image": None}


@pytest.fixture
def retention(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def set_days(days: int) -> None:
        monkeypatch.setenv("QUNYUN_MESSAGE_TEXT_RETENTION_DAYS", str(days))
        get_settings.cache_clear()

    yield set_days
    get_settings.cache_clear()  # re-read once monkeypatch has restored the environment


def test_retention_zero_keeps_no_text(session: Session, org_id: int, retention: Any) -> None:
    retention(0)
    run(session, org_id, [message("now", datetime.now(UTC).isoformat(), "g1", "m1", text="hi")])
    assert rows_in(session, Event, MessageText) == {"events": 1, "message_texts": 0}


def test_a_longer_retention_keeps_older_text(session: Session, org_id: int, retention: Any) -> None:
    retention(365)
    old = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    run(session, org_id, [message("old", old, "g1", "m1", text="still kept")])
    assert session.scalar(select(MessageText.text)) == "still kept"


def test_group_created_sets_name_capacity_region_tier_and_owner(session: Session, org_id: int) -> None:
    owner = create_staff(session, org_id, username="alice", password="correct horse", role="owner")
    # first seen through a join: named after its external id, defaults elsewhere
    run(session, org_id, [join("j1", sh("03-02"), "wx-123", "m1")])
    group = session.scalar(select(Group).where(Group.external_id == "wx-123"))
    assert group is not None
    assert (group.name, group.capacity, group.created_at) == ("wx-123", 500, utc(sh("03-02")))
    run(
        session,
        org_id,
        [created("c1", sh("03-01"), "wx-123", "福利群 1 号", capacity=200, region="上海", tier="core", owner="alice")],
    )
    session.refresh(group)
    assert (group.name, group.capacity, group.region, group.tier, group.owner_id) == (
        "福利群 1 号",
        200,
        "上海",
        "core",
        owner.id,
    )
    assert group.created_at == utc(sh("03-01"))
    assert group.member_count == 1


def test_unknown_owner_leaves_the_group_without_owner(session: Session, org_id: int) -> None:
    run(session, org_id, [created("c1", sh("03-01"), "g1", "G", owner="nobody")])
    group = session.scalar(select(Group))
    assert group is not None
    assert (group.name, group.capacity, group.owner_id) == ("G", 500, None)


def test_channels_and_inviters_are_created_on_first_sight_and_linked(session: Session, org_id: int) -> None:
    run(session, org_id, [join("j1", sh("03-02"), "g1", "m1", channel="sms-0301", inviter="m0", scene="invite")])
    run(session, org_id, [join("j2", sh("03-03"), "g2", "m2", channel="sms-0301", scene="qr")])
    [channel] = session.scalars(select(Channel)).all()
    assert (channel.org_id, channel.code, channel.name) == (org_id, "sms-0301", "sms-0301")
    members = dict(session.execute(select(Member.external_id, Member.id)).all())
    assert set(members) == {"m0", "m1", "m2"}
    joins = {
        e.external_id: (e.channel_id, e.inviter_id, e.scene)
        for e in session.scalars(select(Event).where(Event.kind == EventKind.MEMBER_JOINED))
    }
    assert joins == {"j1": (channel.id, members["m0"], "invite"), "j2": (channel.id, None, "qr")}


def test_orders_name_groups_and_members_on_first_sight(session: Session, org_id: int) -> None:
    run(session, org_id, [paid("p1", sh("03-02"), "o1", "m9", "12.30", group="g7", product="体验装")])
    assert member_counts(session) == {"g7": 0}
    assert session.scalar(select(Member.external_id)) == "m9"


def test_rollback_of_the_callers_transaction_leaves_nothing(db: sessionmaker[Session]) -> None:
    with db() as s:
        org = create_organisation(s, name="Org", slug="org")
        s.commit()
        run(s, org.id, HISTORY)
        s.rollback()
        assert rows_in(s, Event, Group, Member, MembershipSpan) == {
            "events": 0,
            "groups": 0,
            "members": 0,
            "membership_spans": 0,
        }


# -- follow-up hooks ---------------------------------------------------------------------------


@pytest.fixture
def hook_calls() -> Iterator[list[tuple[int, list[LiveEvent]]]]:
    calls: list[tuple[int, list[LiveEvent]]] = []

    def hook(session: Session, org_id: int, stored: list[LiveEvent]) -> None:
        calls.append((org_id, list(stored)))
        enqueue(session, "test.welcome", {"events": [e.external_id for e in stored]}, org_id=org_id)

    follow_up(*EventKind)(hook)
    try:
        yield calls
    finally:
        unregister(hook)


def test_follow_ups_see_only_new_live_events(
    session: Session, org_id: int, hook_calls: list[tuple[int, list[LiveEvent]]]
) -> None:
    run(session, org_id, HISTORY[:2], live=True)
    run(session, org_id, [HISTORY[1], HISTORY[2], HISTORY[2]], live=True)
    assert [(o, [e.external_id for e in s]) for o, s in hook_calls] == [
        (org_id, ["m1-in", "m2-in"]),
        (org_id, ["m3-in"]),
    ]
    [new] = hook_calls[1][1]
    stored = session.scalar(select(Event).where(Event.external_id == "m3-in"))
    group_id = session.scalar(select(Group.id).where(Group.external_id == "g1"))
    member_id = session.scalar(select(Member.id).where(Member.external_id == "m3"))
    assert stored is not None
    assert (new.event_id, new.kind, new.ts, new.group_id, new.member_id) == (
        stored.id,
        int(EventKind.MEMBER_JOINED),
        to_micros(utc(sh("03-02", "09:20:00"))),
        group_id,
        member_id,
    )
    # the jobs were enqueued in the same transaction as the events
    assert [j.payload for j in session.scalars(select(Job).order_by(Job.id))] == [
        {"events": ["m1-in", "m2-in"]},
        {"events": ["m3-in"]},
    ]


def test_follow_ups_are_not_called_for_duplicates_only(
    session: Session, org_id: int, hook_calls: list[tuple[int, list[LiveEvent]]]
) -> None:
    run(session, org_id, HISTORY[:2], live=True)
    run(session, org_id, HISTORY[:2], live=True)
    assert len(hook_calls) == 1


def test_follow_ups_are_not_called_for_historic_ingests(
    session: Session, org_id: int, hook_calls: list[tuple[int, list[LiveEvent]]], tmp_path: Path
) -> None:
    run(session, org_id, HISTORY, live=False)
    session.commit()
    import_events(tmp_path, [join("imported", sh("03-05"), "g1", "m5")])  # `qunyun events import`
    assert hook_calls == []
    assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_follow_up_jobs_roll_back_with_the_events(
    db: sessionmaker[Session], hook_calls: list[tuple[int, list[LiveEvent]]]
) -> None:
    with db() as s:
        org = create_organisation(s, name="Org", slug="org")
        s.commit()
        run(s, org.id, HISTORY[:1], live=True)
        assert rows_in(s, Event, Job) == {"events": 1, "jobs": 1}
        s.rollback()
        assert rows_in(s, Event, Job, Organisation) == {"events": 0, "jobs": 0, "organisations": 1}
    assert len(hook_calls) == 1


def test_concurrent_deliveries_of_the_same_events_store_them_once(db: sessionmaker[Session]) -> None:
    with db() as s:
        org = create_organisation(s, name="Org", slug="org").id
        s.commit()
    events = [*HISTORY, message("x1", sh("03-02", "12:00:00"), "g1", "m1"), paid("p1", sh("03-03"), "o1", "m1", "9.90")]
    barrier = threading.Barrier(3)
    results: list[IngestResult] = []
    errors: list[BaseException] = []

    def deliver(order: list[dict[str, Any]]) -> None:
        try:
            barrier.wait()
            with unit_of_work() as s:
                results.append(run(s, org, order))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=deliver, args=(order,))
        for order in (events, list(reversed(events)), events[::2] + events[1::2])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r.stored for r in results) == len(events)
    assert sum(r.duplicates for r in results) == 2 * len(events)
    with db() as s:
        assert spans(s) == EXPECTED_SPANS
        assert member_counts(s) == {"g1": 2, "g2": 1}
        assert rows_in(s, Event, Order) == {"events": len(events), "orders": 1}

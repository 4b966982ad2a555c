"""Interchange format v1 additions (issue 9, point 9): ``member_name`` on joins, leaves and
messages, ``message`` (the platform's message id) on messages, and ``message.deleted``.

All optional and backward compatible: a file written before them imports to the very figures
the code before them produced (``fixtures/v1_mixed.rollups.json``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from qunyun.connectors.simulator import events as sim_events
from qunyun.errors import InvalidInput
from qunyun.ingestion.parse import EventError, _checked, parse_event, parse_line
from qunyun.ingestion.service import ingest, parse_events
from qunyun.models import Event, EventKind, Group, Member, MessageText
from qunyun.team.service import create_organisation
from tests.analytics.helpers import cli, flat, join, leave, message, write_jsonl
from tests.ingestion.golden import ROLLUP_QUERIES

FIXTURES = Path(__file__).parent / "fixtures"


def recent(hours: float) -> str:
    """An instant ``hours`` before now (inside the 30-day text retention window)."""
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


def deleted(eid: str, ts: str, group: str, ref: str) -> dict[str, Any]:
    return {"id": eid, "ts": ts, "kind": "message.deleted", "group": group, "message": ref}


@pytest.fixture
def org_id(session: Session) -> int:
    return create_organisation(session, name="Org", slug="org").id


def run(session: Session, org_id: int, events: list[dict[str, Any]]) -> None:
    ingest(session, org_id, events, platform="test", source="test", live=False)


def name_of(session: Session, member: str) -> str:
    session.expire_all()
    return session.scalars(select(Member.display_name).where(Member.external_id == member)).one()


def texts(session: Session) -> list[str]:
    return sorted(session.scalars(select(MessageText.text)))


def counts(session: Session) -> list[tuple[Any, ...]]:
    """The daily rollups, which a deletion must not move."""
    rows = session.execute(
        text("SELECT day, joins, lefts, actives, messages, members_delta FROM org_daily ORDER BY day")
    ).all()
    return [tuple(r) for r in rows]


# -- member names ------------------------------------------------------------------------------


def test_member_name_sets_the_display_name_and_the_latest_by_event_time_wins(session: Session, org_id: int) -> None:
    run(session, org_id, [join("j1", recent(10), "g1", "m1", member_name="小王")])
    assert name_of(session, "m1") == "小王"
    # an older event arriving later does not override the newer name
    run(session, org_id, [message("x1", recent(20), "g1", "m1", member_name="旧名字")])
    assert name_of(session, "m1") == "小王"
    run(session, org_id, [message("x2", recent(5), "g1", "m1", member_name="王大骑")])
    assert name_of(session, "m1") == "王大骑"
    run(session, org_id, [leave("l1", recent(4), "g1", "m1", member_name="王骑士")])
    assert name_of(session, "m1") == "王骑士"
    # an empty name never erases one, an absent one tells nothing
    run(session, org_id, [message("x3", recent(3), "g1", "m1", member_name=""), message("x4", recent(2), "g1", "m1")])
    assert name_of(session, "m1") == "王骑士"


def test_within_one_batch_the_latest_name_by_event_time_wins_whatever_the_order(session: Session, org_id: int) -> None:
    run(
        session,
        org_id,
        [
            message("x2", recent(1), "g1", "m1", member_name="新"),
            join("j1", recent(3), "g1", "m1", member_name="旧"),
            join("j2", recent(3), "g1", "m2", member_name="乙"),
        ],
    )
    assert (name_of(session, "m1"), name_of(session, "m2")) == ("新", "乙")


def test_a_redelivered_event_does_not_bring_an_old_name_back(session: Session, org_id: int) -> None:
    first = join("j1", recent(10), "g1", "m1", member_name="甲")
    run(session, org_id, [first])
    run(session, org_id, [message("x1", recent(5), "g1", "m1", member_name="乙")])
    run(session, org_id, [first])
    assert name_of(session, "m1") == "乙"


def test_an_erased_member_gets_no_name_back(session: Session, org_id: int) -> None:
    run(session, org_id, [join("j1", recent(10), "g1", "m1", member_name="甲")])
    member = session.scalars(select(Member).where(Member.external_id == "m1")).one()
    member.display_name, member.erased_at = "", datetime.now(UTC)
    session.flush()
    run(session, org_id, [message("x1", recent(5), "g1", "m1", member_name="甲")])
    assert name_of(session, "m1") == ""


# -- message ids and message.deleted -------------------------------------------------------------


def test_a_message_is_found_by_its_group_and_its_platform_message_id(session: Session, org_id: int) -> None:
    run(
        session,
        org_id,
        [
            message("x1", recent(3), "g1", "m1", text="hello", message="mid-1"),
            message("x2", recent(3), "g2", "m1", text="hello", message="mid-1"),
            message("x3", recent(2), "g1", "m1", text="no id"),
        ],
    )
    g1 = session.scalars(select(Group.id).where(Group.external_id == "g1")).one()
    found = session.scalars(select(Event.external_id).where(Event.group_id == g1, Event.message_ref == "mid-1")).all()
    assert found == ["x1"]
    assert session.scalar(select(Event.message_ref).where(Event.external_id == "x3")) is None


def test_message_deleted_removes_the_text_of_that_message_only_and_counts_nothing(
    session: Session, org_id: int
) -> None:
    run(
        session,
        org_id,
        [
            join("j1", recent(5), "g1", "m1"),
            message("x1", recent(4), "g1", "m1", text="广告 加我", message="mid-1"),
            message("x2", recent(4), "g2", "m1", text="same id, other group", message="mid-1"),
            message("x3", recent(3), "g1", "m1", text="keep me", message="mid-3"),
        ],
    )
    before = counts(session)
    run(session, org_id, [deleted("d1", recent(2), "g1", "mid-1")])
    assert texts(session) == ["keep me", "same id, other group"]
    assert counts(session) == before
    row = session.scalars(select(Event).where(Event.external_id == "d1")).one()
    assert (row.kind, row.member_id, row.message_ref) == (EventKind.MESSAGE_DELETED, None, "mid-1")
    # the message's own event stays in the log (with its length): history is data
    assert session.scalar(select(Event.length).where(Event.external_id == "x1")) == len("广告 加我")


def test_a_deletion_that_arrives_before_its_message_keeps_the_text_from_being_stored(
    session: Session, org_id: int
) -> None:
    run(session, org_id, [deleted("d1", recent(1), "g1", "mid-1")])
    run(session, org_id, [message("x1", recent(2), "g1", "m1", text="gone", message="mid-1")])
    # and within one batch, in either order
    run(
        session,
        org_id,
        [
            deleted("d2", recent(1), "g1", "mid-2"),
            message("x2", recent(2), "g1", "m1", text="gone too", message="mid-2"),
            message("x3", recent(2), "g1", "m1", text="gone as well", message="mid-3"),
            deleted("d3", recent(1), "g1", "mid-3"),
            message("x4", recent(2), "g1", "m1", text="stays", message="mid-4"),
        ],
    )
    assert texts(session) == ["stays"]


def test_a_deletion_of_a_message_never_seen_is_stored_and_harmless(session: Session, org_id: int) -> None:
    run(session, org_id, [join("j1", recent(5), "g1", "m1"), message("x1", recent(4), "g1", "m1", text="hi")])
    before = counts(session)
    run(session, org_id, [deleted("d1", recent(2), "g1", "never-seen"), deleted("d2", recent(2), "g9", "x")])
    run(session, org_id, [deleted("d1", recent(2), "g1", "never-seen")])  # and a redelivery
    assert texts(session) == ["hi"]
    assert counts(session) == before
    assert session.scalar(select(func.count()).where(Event.kind == EventKind.MESSAGE_DELETED)) == 2


# -- validation: the line and the field ----------------------------------------------------------


GOOD = [
    join("j1", recent(5), "g1", "m1", member_name="小王", channel="sms", scene="qr"),
    leave("l1", recent(4), "g1", "m1", member_name="小王", reason="left"),
    message("x1", recent(3), "g1", "m2", text="hi", message="mid-1", member_name="阿乙"),
    deleted("d1", recent(2), "g1", "mid-1"),
]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({**GOOD[0], "member_name": 7}, "member_name"),
        ({**GOOD[1], "member_name": "名" * 201}, "member_name"),
        ({**GOOD[2], "member_name": "a\x00b"}, "member_name"),
        ({**GOOD[2], "message": ""}, "message"),
        ({**GOOD[2], "message": "m" * 201}, "message"),
        ({**GOOD[2], "message": 12}, "message"),
        ({k: v for k, v in GOOD[3].items() if k != "message"}, "message"),
        ({k: v for k, v in GOOD[3].items() if k != "group"}, "group"),
        ({**GOOD[3], "message": "   "}, "message"),
    ],
)
def test_a_bad_new_field_is_named_with_its_line(tmp_path: Path, db: object, bad: dict[str, Any], field: str) -> None:
    result = cli("events", "import", str(write_jsonl(tmp_path / "bad.jsonl", [*GOOD, bad])))
    assert result.exit_code == 2, result.output
    assert f"line 5: field '{field}'" in flat(result.stderr)
    with pytest.raises(InvalidInput) as caught:
        parse_events([*GOOD, bad])
    assert caught.value.field == field and caught.value.detail == {"index": 4}


def test_the_longest_name_and_message_id_are_accepted_by_every_path(tmp_path: Path, db: object) -> None:
    longest = message("x9", recent(3), "g1", "m2", text="hi", message="m" * 200, member_name="名" * 200)
    line = orjson.dumps(longest)
    fast, checked = parse_line(line), _checked(orjson.loads(line))
    assert fast == checked == parse_event(orjson.loads(line))
    assert (checked.message, checked.member_name) == ("m" * 200, "名" * 200)
    result = cli("events", "import", str(write_jsonl(tmp_path / "ok.jsonl", [*GOOD, longest])))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("event", GOOD)
def test_the_fast_and_the_checked_paths_read_the_new_fields_alike(event: dict[str, Any]) -> None:
    line = orjson.dumps(event)
    assert parse_line(line) == _checked(orjson.loads(line)) == parse_event(orjson.loads(line))


def test_the_simulator_validates_message_deleted_like_the_parser() -> None:
    assert sim_events.validate(GOOD[3])["message"] == "mid-1"
    with pytest.raises(InvalidInput) as caught:
        sim_events.validate({k: v for k, v in GOOD[3].items() if k != "message"})
    assert caught.value.field == "events[0].message"
    with pytest.raises(EventError):
        _checked({k: v for k, v in GOOD[3].items() if k != "message"})


# -- backward compatibility ---------------------------------------------------------------------


def test_a_file_of_the_original_format_imports_to_the_figures_it_always_did(engine: Engine, db: object) -> None:
    """``fixtures/v1_mixed.jsonl`` (bench/events_gen.py: 1,500 events, 6 groups, 200 members, 10 days)
    and the rollups and stats the code before the interchange additions (868ccfe) made of it."""
    expected = orjson.loads((FIXTURES / "v1_mixed.rollups.json").read_bytes())
    result = cli("events", "import", str(FIXTURES / "v1_mixed.jsonl"), "--org", "fixture")
    assert result.exit_code == 0, result.output
    with engine.connect() as conn:
        for name, sql in ROLLUP_QUERIES.items():
            got = sorted(([*r] for r in conn.execute(text(sql))), key=repr)
            assert got == expected[name], name
    for period in ("daily", "weekly"):
        out = cli(
            "stats", period, "--org", "fixture", "--from", "2026-01-01", "--to", "2026-01-20", "--per-group",
            "--format", "json",
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        assert orjson.loads(out.stdout) == expected[f"stats_{period}"], period


def test_a_connector_s_batch_with_every_addition_goes_through_ingest(session: Session, org_id: int) -> None:
    ingest(session, org_id, GOOD, platform="simulator", source="test", live=True)
    stored = session.execute(select(Event.external_id, Event.kind).order_by(Event.id)).all()
    assert [tuple(r) for r in stored] == [("j1", 2), ("l1", 3), ("x1", 4), ("d1", 7)]
    assert texts(session) == []  # its deletion came in the same batch
    assert (name_of(session, "m1"), name_of(session, "m2")) == ("小王", "阿乙")

"""Live counts: the rollups kept by deltas while ingesting equal a recount from the event log.

A random mix of joins, leaves and messages (some redelivered, in any order) reaches the
ingestor event by event (as ``POST /api/v1/events`` with one event does), in batches and through
the importer; afterwards ``qunyun stats rebuild --check`` finds nothing to change and a rebuild
from scratch leaves every rollup row as it was.
"""

from __future__ import annotations

import io
import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from qunyun.db.migrate import upgrade
from qunyun.db.session import unit_of_work
from qunyun.ingestion import rollups as rollups_module
from qunyun.ingestion.importer import import_stream
from qunyun.ingestion.rollups import stored_rollups
from qunyun.ingestion.service import ingest
from qunyun.ingestion.sql import SqlDialect
from qunyun.team.service import create_organisation
from tests.analytics.helpers import cli, jsonl
from tests.analytics.reference import ZONE
from tests.analytics.test_against_reference import MIDNIGHT

_orgs = itertools.count(1)

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mixes(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Joins, leaves and messages of a few members in a few groups over four days, crowding the
    day boundaries; every event at its own minute."""
    groups = [f"g{i}" for i in range(draw(st.integers(1, 3)))]
    members = [f"m{i}" for i in range(draw(st.integers(1, 6)))]
    size = draw(st.integers(1, 40))
    minutes = draw(
        st.lists(
            st.builds(lambda d, m: d * 1440 + m, st.integers(0, 3), st.sampled_from([0, 1, 700, 1438, 1439])),
            min_size=size,
            max_size=size,
            unique=True,
        )
        | st.lists(st.integers(0, 4 * 1440 - 1), min_size=size, max_size=size, unique=True)
    )
    events = []
    for i, minute in enumerate(minutes):
        kind = draw(st.sampled_from(["member.joined", "member.left", "message.posted", "message.posted"]))
        event = {
            "id": f"e{i}",
            "ts": (MIDNIGHT + timedelta(minutes=minute)).astimezone(ZONE).isoformat(),
            "kind": kind,
            "group": draw(st.sampled_from(groups)),
            "member": draw(st.sampled_from(members)),
        }
        if kind == "message.posted":
            event.update(msg_type="text", text="hi")
        events.append(event)
    return events


def new_org() -> tuple[str, int]:
    slug = f"live-{next(_orgs)}"
    with unit_of_work() as session:
        org = create_organisation(session, name=slug, slug=slug)
        return slug, org.id


def deliver(org_id: int, batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
    for via, batch in batches:
        with unit_of_work() as session:
            if via == "one by one":
                for event in batch:
                    ingest(session, org_id, [event], platform="test", source="test", live=True)
            elif via == "batch":
                ingest(session, org_id, batch, platform="test", source="test", live=True)
            else:
                import_stream(session, org_id, io.BytesIO(jsonl(batch)), platform="test", batch_size=7)


def rollups(org_id: int) -> dict[str, set[tuple[int, ...]]]:
    with unit_of_work(write=False) as session:
        return stored_rollups(SqlDialect(session.connection()), org_id)


@pytest.mark.usefixtures("db")
@SETTINGS
@given(data=st.data(), events=mixes())
def test_live_rollups_equal_a_rebuild_from_scratch(data: st.DataObject, events: list[dict[str, Any]]) -> None:
    redelivered = data.draw(st.lists(st.sampled_from(events), max_size=5), label="redelivered")
    stream = data.draw(st.permutations(events + redelivered), label="order")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=3), label="cuts"))
    bounds = [0, *cuts, len(stream)]
    ways = st.sampled_from(["one by one", "one by one", "batch", "import"])
    batches = [(data.draw(ways, label="via"), stream[a:b]) for a, b in itertools.pairwise(bounds) if b > a]
    # the paths of large flushes (probing which days have facts, COPY on PostgreSQL, a statement per
    # table) on small ones
    probe, copy, one = data.draw(st.sampled_from([(1000, 2000, 20000), (0, 0, 0), (2, 3, 10)]), label="thresholds")
    slug, org_id = new_org()
    with mock.patch.multiple(rollups_module, PROBE_DAYS_ABOVE=probe, COPY_ABOVE=copy, ONE_STATEMENT_PARAMETERS=one):
        deliver(org_id, batches)

    live = rollups(org_id)
    assert live["member_days"], "the mix left facts"
    check = cli("stats", "rebuild", "--check", "--org", slug)
    assert check.exit_code == 0, check.output
    assert "agree" in check.output
    assert cli("stats", "rebuild", "--org", slug).exit_code == 0
    assert rollups(org_id) == live


@pytest.mark.usefixtures("db")
def test_a_day_with_history_counts_each_member_once() -> None:
    """Events landing one by one on a day that has facts already: the distinct counts move only
    when a member's flag turns on."""
    _, org_id = new_org()
    ts = (MIDNIGHT + timedelta(hours=10)).isoformat()

    def post(eid: str, kind: str, group: str, member: str) -> None:
        event = {"id": eid, "ts": ts, "kind": kind, "group": group, "member": member}
        if kind == "message.posted":
            event["msg_type"] = "text"
        with unit_of_work() as session:
            ingest(session, org_id, [event], platform="test", source="test", live=True)

    def day_row() -> tuple[int, ...]:
        with unit_of_work(write=False) as session:
            row = session.execute(
                text("SELECT joins, lefts, actives, messages FROM org_daily WHERE org_id = :o"), {"o": org_id}
            ).one()
            return tuple(row)

    post("a", "message.posted", "g1", "m1")
    post("b", "message.posted", "g2", "m1")  # the same member in another group: still one active
    assert day_row() == (0, 0, 1, 2)
    post("c", "member.joined", "g1", "m2")
    post("d", "member.joined", "g2", "m2")
    post("e", "message.posted", "g1", "m2")
    assert day_row() == (1, 0, 2, 3)
    post("e", "message.posted", "g1", "m2")  # redelivered: nothing changes
    post("f", "member.left", "g2", "m1")
    assert day_row() == (1, 1, 2, 3)
    with unit_of_work(write=False) as session:
        groups = session.execute(
            text(
                "SELECT g.external_id, d.joins, d.lefts, d.actives, d.messages FROM group_daily d"
                " JOIN groups g ON g.id = d.group_id WHERE d.org_id = :o ORDER BY g.external_id"
            ),
            {"o": org_id},
        ).all()
    assert [tuple(r) for r in groups] == [("g1", 1, 0, 2, 2), ("g2", 1, 1, 1, 1)]


@pytest.mark.usefixtures("db")
def test_rebuild_finds_and_repairs_rollups_that_drifted() -> None:
    slug, org_id = new_org()
    ts = (MIDNIGHT + timedelta(hours=10)).isoformat()
    with unit_of_work() as session:
        events = [
            {"id": "j", "ts": ts, "kind": "member.joined", "group": "g1", "member": "m1"},
            {"id": "p", "ts": ts, "kind": "message.posted", "group": "g1", "member": "m1", "msg_type": "text"},
        ]
        ingest(session, org_id, events, platform="test", source="test", live=False)
    good = rollups(org_id)
    with unit_of_work() as session:
        session.execute(text("UPDATE org_daily SET actives = actives + 5 WHERE org_id = :o"), {"o": org_id})
        session.execute(text("DELETE FROM org_day_members WHERE org_id = :o"), {"o": org_id})

    check = cli("stats", "rebuild", "--check", "--org", slug)
    assert check.exit_code == 1
    assert "org_daily (2)" in check.output and "org_day_members (1)" in check.output
    assert rollups(org_id) != good  # --check changes nothing

    rebuilt = cli("stats", "rebuild", "--org", slug)
    assert rebuilt.exit_code == 0, rebuilt.output
    assert rollups(org_id) == good
    assert "agree" in cli("stats", "rebuild", "--check", "--org", slug).output


@pytest.mark.usefixtures("db")
def test_rebuild_of_an_unknown_organisation_names_it() -> None:
    result = cli("stats", "rebuild", "--org", "nowhere")
    assert result.exit_code != 0
    assert "nowhere" in result.output


def test_migration_backfills_the_day_member_sets(tmp_path: Path) -> None:
    """Upgrading a database that has facts already: org_day_members holds each member's day, so
    the next live event adds to counts that match the stored ones."""
    url = f"sqlite:///{(tmp_path / 'old.db').as_posix()}"
    engine = create_engine(url)
    upgrade(engine, "0004_tasks")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO member_days (org_id, day, group_id, member_id, joined, departed, messages) VALUES"
                " (1, 20260301, 10, 7, 1, 0, 0), (1, 20260301, 11, 7, 0, 0, 3), (1, 20260301, 11, 8, 0, 1, 0),"
                " (1, 20260302, 10, 7, 0, 0, 1), (2, 20260301, 20, 9, 0, 0, 2)"
            )
        )
    upgrade(engine, "0005_live_counts")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM org_day_members ORDER BY org_id, day, member_id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [
        (1, 20260301, 7, 1, 0, 1),
        (1, 20260301, 8, 0, 1, 0),
        (1, 20260302, 7, 0, 0, 1),
        (2, 20260301, 9, 0, 0, 1),
    ]

"""Random small event streams, ingested in random order and batches, against the naive reference.

Each example uses a fresh organisation (so no truncation between examples) and delivers its
batches one transaction each, either through qunyun.ingestion.service.ingest (as a connector
would) or through the importer behind `qunyun events import` (chunked, with derived state flushed
at the end or every few facts). Stats are read through the function behind `qunyun stats`.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, bindparam, text
from sqlalchemy.orm import Session

from qunyun.analytics import stats
from qunyun.analytics.stats import stats_for_cli
from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.ingestion.importer import import_stream
from qunyun.ingestion.service import Ingestor, ingest
from qunyun.team.service import create_organisation
from tests.analytics.helpers import SNAPSHOT_QUERIES, jsonl
from tests.analytics.reference import ZONE, Reference

FIRST_DAY = date(2026, 2, 27)  # a Friday: the streams span ISO weeks 2026-W09, W10 and W11
DAYS = 12
MIDNIGHT = datetime(2026, 2, 27, tzinfo=ZONE)
OFFSETS = [UTC, ZONE, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45))]

# No shrinking: an example costs a few database transactions, and shrinking these nested draws
# runs into Hypothesis' five-minute cap; the unshrunk example is small enough to read.
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

_orgs = itertools.count(1)


def new_org() -> str:
    slug = f"ref-{next(_orgs)}"
    with unit_of_work() as session:
        create_organisation(session, name=slug, slug=slug)
    return slug


def org_id_of(session: Session, slug: str) -> int:
    return int(session.execute(text("SELECT id FROM organisations WHERE slug = :s"), {"s": slug}).scalar_one())


# -- generation -----------------------------------------------------------------------------------

# Minutes since Shanghai midnight of FIRST_DAY, crowding the edges of Shanghai days.
minutes = st.builds(
    lambda day, minute: day * 1440 + minute,
    st.integers(0, DAYS - 1),
    st.one_of(st.sampled_from([0, 1, 479, 480, 1438, 1439]), st.integers(0, 1439)),
)


@st.composite
def timestamp(draw: st.DrawFn, minute: int, second: int = 0) -> str:
    at = MIDNIGHT + timedelta(minutes=minute, seconds=second)
    return at.astimezone(draw(st.sampled_from(OFFSETS))).isoformat()


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Unique events: joins, leaves, messages, orders (some refunded) and group announcements.

    Every event has its own minute, so no member ever joins and leaves a group at the same
    instant (where the definitions leave the order open).
    """
    groups = [f"g{i}" for i in range(1, draw(st.integers(1, 3)) + 1)]
    members = [f"m{i}" for i in range(1, draw(st.integers(1, 5)) + 1)]
    size = draw(st.integers(0, 30))
    at = draw(st.lists(minutes, min_size=size, max_size=size, unique=True))
    events: list[dict[str, Any]] = []
    for i, minute in enumerate(at):
        ts = draw(timestamp(minute))
        kind = draw(st.sampled_from(["join", "join", "leave", "message", "message", "paid"]))
        member = draw(st.sampled_from(members))
        if kind == "paid":
            amount = draw(st.integers(1, 20000))
            order = {"id": f"e{i}", "ts": ts, "kind": "order.paid", "order": f"o{i}", "member": member}
            order["amount"] = f"{amount // 100}.{amount % 100:02d}"
            if draw(st.booleans()):
                order["group"] = draw(st.sampled_from(groups))
            events.append(order)
            for r in range(draw(st.integers(0, 2))):
                # partial refunds, some in a later week; 30 s off the minute grid
                later = minute + draw(st.integers(0, 9 * 1440))
                part = draw(st.integers(1, amount))
                events.append(
                    {
                        "id": f"e{i}-r{r}",
                        "ts": draw(timestamp(later, 30)),
                        "kind": "order.refunded",
                        "order": f"o{i}",
                        "amount": f"{part // 100}.{part % 100:02d}",
                    }
                )
            continue
        event = {"id": f"e{i}", "ts": ts, "group": draw(st.sampled_from(groups)), "member": member}
        if kind == "join":
            event["kind"] = "member.joined"
        elif kind == "leave":
            event["kind"] = "member.left"
        else:
            event.update(kind="message.posted", msg_type="text")
        events.append(event)
    # Announce some groups with group.created at or before their first event; a group with no
    # other event is an empty group (and may be announced after the reported range).
    for group in groups:
        if not draw(st.booleans()):
            continue
        first = [datetime.fromisoformat(e["ts"]) for e in events if e.get("group") == group]
        if first:
            announced = min(first) - timedelta(minutes=draw(st.integers(0, 3 * 1440)))
        else:
            announced = MIDNIGHT + timedelta(minutes=draw(minutes))
        events.append({"id": f"new-{group}", "ts": announced.isoformat(), "kind": "group.created", "group": group})
        events[-1]["name"] = f"群 {group}"
    return events


@dataclass
class Delivery:
    """How a stream reaches the ingestion entry point.

    ``batches`` are delivered one transaction each: as ``ingest()`` calls (a connector), or as
    ``events import`` runs cutting them into ``batch_size`` chunks, with derived state flushed
    every ``flush_every`` facts/members (None: the default, once at the end).
    """

    batches: list[list[dict[str, Any]]]
    via: str = "ingest"
    batch_size: int = 20000
    flush_every: int | None = None


@st.composite
def deliveries(draw: st.DrawFn, events: list[dict[str, Any]]) -> Delivery:
    """``events`` with some redelivered, in random order, cut into random batches."""
    repeated = draw(st.lists(st.sampled_from(events), max_size=6)) if events else []
    stream = draw(st.permutations(events + repeated))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    bounds = [0, *cuts, len(stream)]
    batches = [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    if draw(st.booleans()):
        return Delivery(batches)
    return Delivery(batches, "import", draw(st.integers(1, 8)), draw(st.sampled_from([None, 1, 5])))


ranges = st.tuples(st.integers(-2, DAYS + 1), st.integers(0, DAYS + 1)).map(
    lambda ab: (FIRST_DAY + timedelta(days=ab[0]), FIRST_DAY + timedelta(days=ab[0] + ab[1]))
)


# -- running ----------------------------------------------------------------------------------


def deliver(slug: str, delivery: Delivery) -> tuple[int, int]:
    """Ingest each batch in its own transaction; returns (stored, duplicates)."""
    stored = duplicates = 0
    flush_every = delivery.flush_every or Ingestor.FLUSH_FACTS
    with mock.patch.multiple(Ingestor, FLUSH_FACTS=flush_every, FLUSH_MEMBERS=flush_every):
        for batch in delivery.batches:
            with unit_of_work() as session:
                org_id = org_id_of(session, slug)
                if delivery.via == "ingest":
                    result: Any = ingest(session, org_id, batch, platform="test", source="test", live=False)
                else:
                    stream = io.BytesIO(jsonl(batch))
                    result = import_stream(session, org_id, stream, platform="test", batch_size=delivery.batch_size)
            stored += result.stored
            duplicates += result.duplicates
    return stored, duplicates


def report(slug: str, groups: list[str], date_from: date, date_to: date) -> dict[str, Any]:
    """Everything `qunyun stats` answers for the range: all groups (+ --per-group) and each --group."""
    out: dict[str, Any] = {}
    for period in ("daily", "weekly"):
        out[period] = stats_for_cli(
            period, org_slug=slug, date_from=date_from, date_to=date_to, group=None, per_group=True
        )
        for group in groups:
            out[f"{period} --group {group}"] = stats_for_cli(
                period, org_slug=slug, date_from=date_from, date_to=date_to, group=group
            )
    return out


def expected(events: list[dict[str, Any]], date_from: date, date_to: date) -> dict[str, Any]:
    ref = Reference(events)
    out: dict[str, Any] = {}
    for period in ("daily", "weekly"):
        compute = ref.daily if period == "daily" else ref.weekly
        out[period] = compute(date_from, date_to, per_group=True)
        for group in ref.group_ids():
            out[f"{period} --group {group}"] = compute(date_from, date_to, group=group)
    return out


def assert_same(actual: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Equal reports, failing on the first differing row (with its report and labels)."""
    assert list(actual) == list(wanted)
    for key, rows in wanted.items():
        labels = [(r.get("date") or r.get("week"), r["group"]) for r in actual[key]]
        assert labels == [(r.get("date") or r.get("week"), r["group"]) for r in rows], key
        for got, row in zip(actual[key], rows, strict=True):
            assert got == row, key


def derived_state(engine: Engine, slug: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored and derived row of one organisation (by org_id where the table has one)."""
    with engine.connect() as conn:
        org_id = conn.execute(text("SELECT id FROM organisations WHERE slug = :s"), {"s": slug}).scalar_one()
        out = {}
        for name, sql in SNAPSHOT_QUERIES.items():
            if name in ("message_texts", "jobs"):
                continue
            rows = conn.execute(text(f"{sql} WHERE org_id = :o"), {"o": org_id})
            out[name] = sorted((tuple(r) for r in rows), key=repr)
        return out


@pytest.mark.usefixtures("db")
@SETTINGS
@given(data=st.data(), events=streams(), period=ranges)
def test_stats_equal_the_reference(
    data: st.DataObject, events: list[dict[str, Any]], period: tuple[date, date]
) -> None:
    delivery = data.draw(deliveries(events), label="delivery")
    slug = new_org()
    stored, duplicates = deliver(slug, delivery)
    assert (stored, duplicates) == (len(events), sum(map(len, delivery.batches)) - len(events))
    date_from, date_to = period
    groups = Reference(events).group_ids()
    assert_same(report(slug, groups, date_from, date_to), expected(events, date_from, date_to))


@pytest.mark.usefixtures("db")
@SETTINGS
@given(data=st.data(), events=streams(), period=ranges)
def test_arrival_order_and_batching_do_not_matter(
    data: st.DataObject, events: list[dict[str, Any]], period: tuple[date, date]
) -> None:
    in_order = new_org()
    deliver(in_order, Delivery([sorted(events, key=lambda e: datetime.fromisoformat(e["ts"]))]))
    shuffled = new_org()
    deliver(shuffled, data.draw(deliveries(events), label="delivery"))
    groups = Reference(events).group_ids()
    assert_same(report(shuffled, groups, *period), report(in_order, groups, *period))


@pytest.mark.usefixtures("db")
@SETTINGS
@given(data=st.data(), events=streams(), period=ranges)
def test_ingesting_twice_changes_nothing(
    engine: Engine, data: st.DataObject, events: list[dict[str, Any]], period: tuple[date, date]
) -> None:
    slug = new_org()
    deliver(slug, data.draw(deliveries(events), label="first delivery"))
    groups = Reference(events).group_ids()
    state, stats = derived_state(engine, slug), report(slug, groups, *period)
    again = data.draw(deliveries(events), label="second delivery")
    assert deliver(slug, again) == (0, sum(map(len, again.batches)))
    assert derived_state(engine, slug) == state
    assert_same(report(slug, groups, *period), stats)


@pytest.mark.usefixtures("db")
@SETTINGS
@given(data=st.data(), events=streams(), period=ranges)
def test_totals_over_a_subset_of_groups_equal_the_reference(
    data: st.DataObject, events: list[dict[str, Any]], period: tuple[date, date]
) -> None:
    """A staff member who sees some groups gets totals over those groups only: distinct members
    across them, and conversions of members of one of them."""
    slug = new_org()
    deliver(slug, data.draw(deliveries(events), label="delivery"))
    groups = Reference(events).group_ids()
    subset = data.draw(st.lists(st.sampled_from(groups), unique=True), label="subset") if groups else []
    # The reference over the subset: membership and messages elsewhere never happened.
    ref = Reference([e for e in events if e["kind"] not in SCOPED_KINDS or e["group"] in subset])
    with unit_of_work(write=False) as session:
        org_id = org_id_of(session, slug)
        ids = [
            int(i)
            for (i,) in session.execute(
                text("SELECT id FROM groups WHERE org_id = :o AND external_id IN :g").bindparams(
                    bindparam("g", expanding=True)
                ),
                {"o": org_id, "g": subset or [""]},
            )
        ]
        scope = Scope.organisation(org_id)
        assert stats.daily(session, scope, *period, ids, per_group=False) == ref.daily(*period)
        assert stats.weekly(session, scope, *period, ids, per_group=False) == ref.weekly(*period)


SCOPED_KINDS = ("member.joined", "member.left", "message.posted")

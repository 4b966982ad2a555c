"""A join is matched to its scan: by the invite link the platform names, else by the time window
(the latest unmatched first scan routed to the join's group within 30 minutes before it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.session import unit_of_work
from qunyun.ingestion.parse import EventError, parse_event, parse_line
from qunyun.models import LiveCodeJoin, LiveCodeScan, LiveCodeVisitor
from tests.acquisition.helpers import Community, community, joined, sh


@pytest.fixture
def town(db: sessionmaker[Session]) -> Iterator[Community]:
    for c in community(db):
        c.group("ga")
        c.group("gb")
        c.channel("sms", cost_per_touch="0.05", reward="1.5", kind="sms")
        c.channel("card", cost_per_touch="0.1", reward="1.5", kind="package_card")
        c.live_code("短信活码", "sms", ["ga", "gb"], default_limit=2)
        c.live_code("包裹卡活码", "card", ["gb"])
        yield c


def attributions(c: Community) -> list[tuple[str, str, str, str | None]]:
    """(member, live code, channel, matched by) of every attributed join, in join order."""
    with unit_of_work(c.db, write=False) as s:
        from qunyun.models import Channel, LiveCode, Member

        rows = s.execute(
            select(Member.external_id, LiveCode.name, Channel.code, LiveCodeJoin.matched_by)
            .join(Member, Member.id == LiveCodeJoin.member_id)
            .join(LiveCode, LiveCode.id == LiveCodeJoin.live_code_id)
            .outerjoin(Channel, Channel.id == LiveCodeJoin.channel_id)
            .order_by(LiveCodeJoin.joined_at, LiveCodeJoin.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def scan_visitor(s: Session, scan_id: int | None) -> str | None:
    """The visitor of a scan (the scan path does not hand out scan ids: it writes in batches)."""
    return s.scalar(select(LiveCodeScan.visitor).where(LiveCodeScan.id == scan_id))


def test_the_link_a_member_joined_through_names_the_live_code_and_its_scan(town: Community) -> None:
    result = town.scan("短信活码", sh("03-03", "10:00:00"))
    assert result.outcome == "routed" and result.invite_link is not None
    town.ingest(joined(sh("03-03", "10:05:00"), "ga", "u1", scene="link", channel="sms", link=result.invite_link))
    assert attributions(town) == [("u1", "短信活码", "sms", "link")]
    with unit_of_work(town.db, write=False) as s:
        join = s.scalars(select(LiveCodeJoin)).one()
        assert join.scan_id is not None and scan_visitor(s, join.scan_id) == result.visitor
        # The visitor of that scan is now known to be the member.
        visitor = s.scalars(select(LiveCodeVisitor).where(LiveCodeVisitor.visitor == result.visitor)).one()
        assert visitor.member_id == join.member_id


def test_without_a_link_the_latest_unmatched_scan_to_the_group_within_30_minutes(town: Community) -> None:
    early = town.scan("短信活码", sh("03-03", "09:00:00"))
    first = town.scan("短信活码", sh("03-03", "10:00:00"))
    second = town.scan("短信活码", sh("03-03", "10:10:00"))  # ga's second place (limit 2)
    ga = [r for r in (early, first, second) if r.entry is not None and r.entry.group_id == town.groups["ga"]]
    assert ga == [early, first]
    town.ingest(
        joined(sh("03-03", "10:20:00"), "ga", "u1"),  # first's scan (10:00) is the latest within 30 min
        joined(sh("03-03", "10:25:00"), "ga", "u2"),  # early's scan (09:00) is too old
    )
    assert attributions(town) == [("u1", "短信活码", "sms", "window")]
    with unit_of_work(town.db, write=False) as s:
        assert [scan_visitor(s, i) for i in s.scalars(select(LiveCodeJoin.scan_id))] == [first.visitor]


def test_a_scan_is_matched_once_and_the_channel_a_join_names_must_agree(town: Community) -> None:
    card = town.scan("包裹卡活码", sh("03-04", "10:00:00"))
    assert card.entry is not None and card.entry.group_id == town.groups["gb"]
    town.ingest(
        joined(sh("03-04", "10:01:00"), "gb", "u1", channel="sms"),  # says sms: the card scan is not its
        joined(sh("03-04", "10:02:00"), "gb", "u2"),
        joined(sh("03-04", "10:03:00"), "gb", "u3"),  # the only scan is taken
        joined(sh("03-04", "10:04:00"), "gb", "u4", scene="invite", inviter="u2"),  # pulled in: no scan
    )
    assert attributions(town) == [("u2", "包裹卡活码", "card", "window")]


def test_a_join_seen_twice_is_attributed_once(town: Community) -> None:
    result = town.scan("短信活码", sh("03-03", "10:00:00"))
    event = joined(sh("03-03", "10:05:00"), "ga", "u1", link=result.invite_link)
    with unit_of_work(town.db) as s:
        from qunyun.ingestion.service import ingest

        for _ in range(2):
            ingest(
                s,
                town.org_id,
                [{"id": "same", **event}],
                platform="simulator",
                source="simulator",
                live=True,
                connection_id=town.connection_id,
            )
    assert attributions(town) == [("u1", "短信活码", "sms", "link")]


def test_a_link_of_another_organisation_or_none_of_ours_is_not_attributed(town: Community) -> None:
    town.ingest(joined(sh("03-03", "10:05:00"), "ga", "u1", link="sim://elsewhere/join/nope"))
    assert attributions(town) == []


def test_the_simulated_platform_reports_the_link_and_the_pipeline_attributes_it(town: Community) -> None:
    """The platform itself: a member joining through the link the scan page sent them to."""
    result = town.scan("短信活码", sh("03-03", "10:00:00"))
    assert result.invite_link is not None
    town.platform.clock.advance_to(sh("03-03", "10:03:00"))
    town.platform.join("u9", via_link=result.invite_link)
    events = town.platform.drain_events()
    joins = [e for e in events if e["kind"] == "member.joined"]
    assert joins[0]["link"] == result.invite_link and joins[0]["channel"] == "sms"
    with unit_of_work(town.db) as s:
        from qunyun.ingestion.service import ingest

        ingest(
            s,
            town.org_id,
            events,
            platform="simulator",
            source="simulator",
            live=True,
            connection_id=town.connection_id,
        )
    assert attributions(town) == [("u9", "短信活码", "sms", "link")]


def test_link_is_an_optional_interchange_field_on_both_parse_paths() -> None:
    event = {
        "id": "j1",
        "ts": sh("03-03", "10:05:00").isoformat(),
        "kind": "member.joined",
        "group": "ga",
        "member": "u1",
        "link": "sim://sim/join/abc",
    }
    assert parse_event(event).link == parse_line(orjson.dumps(event)).link == "sim://sim/join/abc"
    assert parse_event({**event, "link": None}).link is None
    for bad in ("", "x" * 201, 7):
        with pytest.raises(EventError) as refused:
            parse_line(orjson.dumps({**event, "link": bad}))
        assert refused.value.field == "link"


def test_window_is_thirty_minutes() -> None:
    from qunyun.acquisition.attribution import WINDOW

    assert timedelta(minutes=30) == WINDOW

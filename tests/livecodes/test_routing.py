"""Routing scans of a live code: fill order, limits, the fallback, repeat visitors, expiry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.session import unit_of_work
from qunyun.livecodes import service
from qunyun.models import Job, LiveCodeScan
from tests.livecodes.helpers import add_group, later, make_code, make_org, scan


def test_scans_fill_the_groups_in_order_then_get_the_fallback(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    for key in ("a", "b"):
        add_group(org, key)
    code_id, code = make_code(org, ["a", "b"], default_limit=2, fallback_url="https://example.com/staff")
    outcomes = [scan(org, code) for _ in range(5)]
    assert [r.outcome for r in outcomes] == ["routed", "routed", "routed", "routed", "fallback"]
    assert [r.entry.group_name if r.entry else None for r in outcomes] == ["群a", "群a", "群b", "群b", None]
    with unit_of_work(db, write=False) as s:
        shown = service.summary(s, org.lead_scope, code_id)
        assert shown == {
            "code": code,
            "scans": 5,
            "visitors": 5,
            "fallback": 1,
            "groups": [
                {"group": "ext-a", "routed": 2, "limit": 2, "joined": 0},
                {"group": "ext-b", "routed": 2, "limit": 2, "joined": 0},
            ],
        }
        # The first scan that found every group full asked for the next group, once.
        assert s.scalars(select(Job.kind).where(Job.kind == "livecodes.pool_full")).all() == ["livecodes.pool_full"]


def test_a_visitor_who_scans_again_gets_the_same_group_and_is_not_counted_twice(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    add_group(org, "a")
    add_group(org, "b")
    code_id, code = make_code(org, ["a", "b"], default_limit=1)
    first = scan(org, code)
    again = scan(org, code, first.visitor)
    other = scan(org, code)
    assert first.entry is not None and again.entry is not None and other.entry is not None
    assert again.entry.group_id == first.entry.group_id == org.groups["a"]
    assert other.entry.group_id == org.groups["b"]
    with unit_of_work(db, write=False) as s:
        shown = service.summary(s, org.lead_scope, code_id)
        assert (shown["scans"], shown["visitors"]) == (3, 2)
        assert [g["routed"] for g in shown["groups"]] == [1, 1]
        firsts = s.scalars(select(LiveCodeScan.first).order_by(LiveCodeScan.id)).all()
        assert firsts == [True, False, True]


def test_an_image_about_to_expire_is_never_shown(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    add_group(org, "a")  # its image expires in 7 days
    add_group(org, "b")
    _, code = make_code(org, ["a", "b"])
    assert scan(org, code).entry.group_name == "群a"  # type: ignore[union-attr]
    # Six days and 23.5 hours later the image of a (and b) is within the margin: nothing to show.
    result = scan(org, code, now=later(days=7) - timedelta(minutes=30))
    assert result.outcome == "fallback"


def test_region_policy_sends_visitors_to_their_regions_group_first(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    add_group(org, "sh", region="上海")
    add_group(org, "bj", region="北京")
    add_group(org, "any")
    _, code = make_code(org, ["sh", "bj", "any"], policy="region")
    assert scan(org, code, region="北京").entry.group_name == "群bj"  # type: ignore[union-attr]
    assert scan(org, code, region="上海").entry.group_name == "群sh"  # type: ignore[union-attr]
    assert scan(org, code, region="广州").entry.group_name == "群any"  # type: ignore[union-attr]
    assert scan(org, code).entry.group_name == "群sh"  # type: ignore[union-attr]  # no region: in order


def test_round_robin_takes_the_groups_in_turn(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    for key in ("a", "b", "c"):
        add_group(org, key)
    _, code = make_code(org, ["a", "b", "c"], policy="round_robin")
    names = [scan(org, code).entry.group_name for _ in range(6)]  # type: ignore[union-attr]
    assert set(names[:3]) == {"群a", "群b", "群c"} and names[3:] == names[:3]


def test_a_visitor_known_to_be_a_blacklisted_member_is_refused(db: sessionmaker[Session]) -> None:
    from qunyun.livecodes.attribution import first_scans, record_join
    from qunyun.models import Member, Tag, Tagging
    from qunyun.timeutil import utcnow

    org = make_org(db)
    add_group(org, "a")
    code_id, code = make_code(org, ["a"])
    first = scan(org, code)
    with unit_of_work(db) as s:
        member = Member(org_id=org.id, platform="api", external_id="m1", first_seen_at=utcnow())
        tag = Tag(org_id=org.id, name="黑名单", created_at=utcnow())
        s.add_all([member, tag])
        s.flush()
        s.add(Tagging(member_id=member.id, tag_id=tag.id, created_at=utcnow()))
        found = first_scans(s, org.id, org.groups["a"], until=utcnow())
        assert [f.visitor for f in found] == [first.visitor]
        assert record_join(
            s,
            org_id=org.id,
            live_code_id=code_id,
            group_id=org.groups["a"],
            member_id=member.id,
            event_id=1,
            joined_at=utcnow(),
            matched_by="window",
            scan_id=found[0].scan_id,
        )
    assert scan(org, code, first.visitor).outcome == "blocked"
    # Another code of the organisation refuses them too; a stranger is served.
    add_group(org, "b")
    _, other = make_code(org, ["b"])
    assert scan(org, other, first.visitor).outcome == "blocked"
    assert scan(org, other).outcome == "routed"

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

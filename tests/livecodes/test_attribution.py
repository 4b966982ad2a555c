"""The lookups the funnel matches joins with: the entry of an invite link, the first scans of a
group in a window (latest first, matched ones left out), and the join recorded once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.session import unit_of_work
from qunyun.livecodes import routing
from qunyun.livecodes.attribution import entry_for_link, first_scans, join_of_event, record_join
from qunyun.livecodes.service import summary
from qunyun.models import LiveCodeGroup
from qunyun.timeutil import utcnow
from tests.livecodes.helpers import add_group, make_code, make_org, scan


def test_lookups_by_link_and_by_time(db: sessionmaker[Session]) -> None:
    org = make_org(db)
    add_group(org, "a")
    add_group(org, "b")
    code_id, code = make_code(org, ["a", "b"], default_limit=2)
    with unit_of_work(db) as s:
        s.execute(
            update(LiveCodeGroup)
            .where(LiveCodeGroup.group_id == org.groups["a"])
            .values(invite_link="https://t.me/+aaa")
        )
    routing.forget()
    t0 = utcnow()
    first = scan(org, code, now=t0)
    second = scan(org, code, now=t0 + timedelta(minutes=1))
    scan(org, code, now=t0 + timedelta(minutes=2))  # group b
    with unit_of_work(db) as s:
        entry = entry_for_link(s, org.id, "https://t.me/+aaa")
        assert entry is not None and (entry.live_code_id, entry.group_id) == (code_id, org.groups["a"])
        assert entry_for_link(s, org.id, "https://t.me/+zzz") is None
        found = first_scans(s, org.id, org.groups["a"], until=t0 + timedelta(minutes=5), link="https://t.me/+aaa")
        assert [f.visitor for f in found] == [second.visitor, first.visitor]
        window = first_scans(
            s, org.id, org.groups["a"], since=t0 + timedelta(seconds=30), until=t0 + timedelta(minutes=5)
        )
        assert [f.visitor for f in window] == [second.visitor]
        args = {
            "org_id": org.id,
            "live_code_id": code_id,
            "group_id": org.groups["a"],
            "member_id": 7,
            "event_id": 42,
            "joined_at": t0 + timedelta(minutes=3),
            "matched_by": "link",
            "scan_id": found[0].scan_id,
        }
        assert record_join(s, **args) is True
        assert record_join(s, **args) is False  # once per join event
        again = first_scans(s, org.id, org.groups["a"], until=t0 + timedelta(minutes=5))
        assert [f.visitor for f in again] == [first.visitor]  # the matched scan is left out
        joined = join_of_event(s, org.id, 42)
        assert joined is not None and joined.member_id == 7
        groups = summary(s, org.lead_scope, code_id)["groups"]
        assert [(g["group"], g["joined"]) for g in groups] == [("ext-a", 1), ("ext-b", 0)]

"""The acquisition tests reuse the API tests' world (two organisations, staff of every role,
groups g1-g3 with their owners) for the endpoints and their denials, and build a week of a
community on the simulated platform (``week``) for the report's hand-computed figures."""

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.acquisition.helpers import Community, community, joined, paid, posted, refunded, sh
from tests.api.conftest import api_app, client, password_hash, world

__all__ = ["api_app", "client", "password_hash", "week", "world"]


@pytest.fixture
def week(db: sessionmaker[Session]) -> Iterator[Community]:
    """The week of test_report.py's docstring, on the simulated platform."""
    for c in community(db):
        c.group("ga")
        c.group("gb")
        c.group("gc", owned=False)
        c.channel("sms", cost_per_touch="0.05", reward="1.5", kind="sms")
        c.channel("race", kind="offline")
        c.channel("card", cost_per_touch="0.1", reward="1.5", kind="package_card")
        c.spend("sms", "03-01", touches=500)
        c.spend("sms", "03-03", touches=1000)
        c.spend("sms", "03-09", touches=700)
        c.spend("race", "03-04", fixed="10000")
        c.live_code("短信活码", "sms", ["ga", "gb"], default_limit=3)
        c.live_code("包裹卡活码", "card", ["gb"])

        c.ingest(joined(sh("02-28"), "ga", "u4", channel="sms"))
        assert c.scan("短信活码", sh("03-01", "20:00:00")).outcome == "routed"
        s1 = c.scan("短信活码", sh("03-03", "10:00:00"))
        c.scan("短信活码", sh("03-03", "10:02:00"), s1.visitor)
        c.ingest(
            joined(sh("03-03", "10:05:00"), "ga", "u1", scene="link", channel="sms", link=s1.invite_link),
            posted(sh("03-03", "10:10:00"), "ga", "u1"),
        )
        s2 = c.scan("短信活码", sh("03-03", "11:00:00"))
        assert s2.entry is not None and s2.entry.group_id == c.groups["ga"]
        c.ingest(
            joined(sh("03-03", "11:20:00"), "ga", "u2"),
            joined(sh("03-03", "12:00:00"), "ga", "u4", channel="sms"),
        )
        s3 = c.scan("短信活码", sh("03-04", "09:00:00"))
        assert s3.entry is not None and s3.entry.group_id == c.groups["gb"]
        c.ingest(
            joined(sh("03-04", "15:00:00"), "gc", "u3", channel="race"),
            paid(sh("03-04", "16:00:00"), "o3", "u3", "200.00"),
            paid(sh("03-05", "09:00:00"), "o1", "u1", "100.00"),
            joined(sh("03-05", "12:00:00"), "gb", "u7"),
            posted(sh("03-05", "12:30:00"), "gb", "u7"),
            refunded(sh("03-06", "09:00:00"), "o1", "30.00"),
        )
        s5 = c.scan("包裹卡活码", sh("03-08", "23:20:00"))
        c.ingest(joined(sh("03-08", "23:30:00"), "gb", "u5", scene="link", channel="card", link=s5.invite_link))
        s6 = c.scan("包裹卡活码", sh("03-09", "00:05:00"))
        c.ingest(
            joined(sh("03-09", "00:10:00"), "gb", "u6", scene="link", channel="card", link=s6.invite_link),
            posted(sh("03-10", "11:19:59"), "ga", "u2"),
            posted(sh("03-11", "15:00:00"), "gc", "u3"),
            paid(sh("04-02", "11:21:00"), "o2", "u2", "50.00"),
            refunded(sh("04-05", "09:00:00"), "o3", "200.00"),
        )
        yield c

"""The channel report against figures computed by hand (PRODUCT.md, channel report).

The week 2026-03-02 (Mon) .. 03-08 (Sun), Shanghai time. Three channels:

- sms (0.05 元 a touch, 1.50 元 a member), live code 短信活码 over groups ga, gb (3 scans each)
- race (an offline event: a fixed 10,000 元 on 03-04), no live code: joins name it
- card (0.10 元 + 1.50 元), live code 包裹卡活码 over gb

Who did what:

- u1 scans 短信活码 on 03-03 10:00 (and again at 10:02), joins ga through its link at 10:05,
  posts at 10:10, pays 100.00 on 03-05 and gets 30.00 back on 03-06.
- u2 scans at 11:00, joins ga at 11:20 (no link: matched in the window), posts 167 h 59 min
  59 s later, pays 50.00 thirty days and one minute after joining (too late).
- u3 joins gc on 03-04 15:00 naming race, posts exactly 168 h later (too late), pays 200.00 an
  hour after joining and has it refunded 32 days later (too late to count against it).
- u4 first joined on 02-28 (sms), joins again on 03-03: acquired before the range.
- u5 scans 包裹卡活码 on 03-08 23:20 and joins gb through its link at 23:30 (still the 8th).
- u6 scans and joins on 03-09 00:05 / 00:10: after the range.
- u7 joins gb on 03-05 with no channel and no scan in the window: unattributed.
- v8 scans 短信活码 on 03-04 and never joins; someone scanned it on 03-01 (before the range).

Spend: sms 500 touches on 03-01, 1,000 on 03-03, 700 on 03-09; race 10,000 元 on 03-04.

sms:  scans 4 (u1 twice, u2, v8), visitors 3, joins 2, actives 2, paying 1, gmv 70.00,
      touches 1,000, cost 1000 × 0.05 + 2 × 1.50 = 53.00, CAC 26.50, per active 26.50,
      per paying 53.00, ROI 70 / 53 = 1.3208.
race: joins 1, actives 0, paying 1, gmv 200.00, cost 10,000.00, CAC 10,000.00, per paying
      10,000.00, ROI 0.02.
card: scans 1, visitors 1, joins 1, cost 1.50, CAC 1.50, ROI 0.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import orjson
import pytest

from qunyun.acquisition.report import channel_report, contract_rows, funnel
from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput, NotFound
from qunyun.models import Role
from qunyun.team.service import create_staff
from tests.acquisition.helpers import Community
from tests.analytics.helpers import cli

WEEK = (date(2026, 3, 2), date(2026, 3, 8))


SMS = {
    "channel": "sms",
    "touches": 1000,
    "scans": 4,
    "visitors": 3,
    "joins": 2,
    "actives_7d": 2,
    "paying": 1,
    "gmv": "70.00",
    "cost": "53.00",
    "cac": "26.50",
    "cost_per_active": "26.50",
    "cost_per_paying": "53.00",
    "roi": 1.3208,
}
RACE = {
    "channel": "race",
    "touches": 0,
    "scans": 0,
    "visitors": 0,
    "joins": 1,
    "actives_7d": 0,
    "paying": 1,
    "gmv": "200.00",
    "cost": "10000.00",
    "cac": "10000.00",
    "cost_per_active": None,
    "cost_per_paying": "10000.00",
    "roi": 0.02,
}
CARD = {
    "channel": "card",
    "touches": 0,
    "scans": 1,
    "visitors": 1,
    "joins": 1,
    "actives_7d": 0,
    "paying": 0,
    "gmv": "0.00",
    "cost": "1.50",
    "cac": "1.50",
    "cost_per_active": None,
    "cost_per_paying": None,
    "roi": 0.0,
}


def report(c: Community, scope: Scope, **kwargs: Any) -> Any:
    with unit_of_work(c.db, write=False) as s:
        return channel_report(s, scope, *WEEK, **kwargs)


def test_channel_rows_match_the_hand_computed_figures(week: Community) -> None:
    result = report(week, week.lead_scope)
    assert contract_rows(result) == [SMS, RACE, CARD]
    assert result.unattributed_joins == 1  # u7
    assert result.whole_org


def test_live_code_rows(week: Community) -> None:
    codes = {r.name: r for r in report(week, week.lead_scope).live_codes}
    sms, card = codes["短信活码"], codes["包裹卡活码"]
    assert (sms.channel, sms.scans, sms.visitors, sms.fallback, sms.joins, sms.actives_7d, sms.paying, sms.gmv) == (
        "sms",
        4,
        3,
        0,
        2,
        2,
        1,
        "70.00",
    )
    assert (card.scans, card.visitors, card.joins, card.actives_7d, card.paying, card.gmv) == (1, 1, 1, 0, 0, "0.00")


def test_the_funnel_reached_scanned_joined_active_converted(week: Community) -> None:
    sms = report(week, week.lead_scope).channels[0]
    assert [(s.stage, s.count) for s in funnel(sms)] == [
        ("reached", 1000),
        ("scanned", 3),
        ("joined", 2),
        ("active", 2),
        ("converted", 1),
    ]


def test_days_of_the_range_by_day(week: Community) -> None:
    result = report(week, week.lead_scope, channel_id=week.channels["sms"], by_day=True)
    (sms,) = result.channels
    assert sms.scans_by_day == {"2026-03-03": 3, "2026-03-04": 1}
    assert sms.joins_by_day == {"2026-03-03": 2}
    assert [c.name for c in result.live_codes] == ["短信活码"]


def test_a_single_day_and_the_next_week(week: Community) -> None:
    with unit_of_work(week.db, write=False) as s:
        day = contract_rows(channel_report(s, week.lead_scope, date(2026, 3, 9), date(2026, 3, 9)))
    card = next(r for r in day if r["channel"] == "card")
    sms = next(r for r in day if r["channel"] == "sms")
    assert (card["scans"], card["joins"], card["cost"]) == (1, 1, "1.50")  # u6
    assert (sms["touches"], sms["joins"], sms["cost"], sms["cac"], sms["roi"]) == (700, 0, "35.00", None, 0.0)


def test_an_owner_sees_the_figures_of_their_groups_without_cost(week: Community) -> None:
    result = report(week, week.owner_scope)
    assert not result.whole_org
    rows = {r["channel"]: r for r in contract_rows(result)}
    # u3 joined gc, which the owner does not see; cost and touches are organisation-wide.
    assert (rows["race"]["joins"], rows["race"]["paying"], rows["race"]["gmv"]) == (0, 0, "0.00")
    assert (rows["sms"]["joins"], rows["sms"]["scans"], rows["sms"]["gmv"]) == (2, 4, "70.00")
    for row in rows.values():
        assert row["touches"] is None and row["cost"] is None and row["cac"] is None and row["roi"] is None


def test_staff_without_groups_see_nothing_of_the_members(week: Community) -> None:
    with unit_of_work(week.db) as s:
        operator = create_staff(s, week.org_id, username="op", password="password-1", role="operator")
        scope = Scope(staff_id=operator.id, org_id=week.org_id, role=Role.OPERATOR)
    result = report(week, scope)
    assert all((r.scans, r.joins, r.paying) == (0, 0, 0) for r in result.channels)
    assert result.live_codes == []


def test_bad_ranges_and_another_organisations_channel(week: Community) -> None:
    with unit_of_work(week.db, write=False) as s:
        with pytest.raises(InvalidInput) as before:
            channel_report(s, week.lead_scope, date(2026, 3, 8), date(2026, 3, 2))
        assert before.value.field == "to"
        with pytest.raises(NotFound):
            channel_report(s, Scope.organisation(week.org_id + 1000), *WEEK, channel_id=week.channels["sms"])


def test_the_command_prints_the_contract(week: Community) -> None:
    args = ("channels", "report", "--org", "qiji", "--from", "2026-03-02", "--to", "2026-03-08")
    out = cli(*args, "--format", "json")
    assert out.exit_code == 0, out.output
    assert orjson.loads(out.stdout) == [SMS, RACE, CARD]
    out = cli(*args, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == list(SMS) and rows[0]["cac"] == "26.50" and rows[1]["cost_per_active"] == ""
    out = cli(*args, "--format", "table")
    assert out.exit_code == 0 and "sms" in out.stdout and "10000.00" in out.stdout
    out = cli(*args, "--format", "json", "--live-codes")
    assert [r["joins"] for r in orjson.loads(out.stdout)] == [2, 1]


def test_the_command_names_what_is_wrong(week: Community) -> None:
    out = cli("channels", "report", "--org", "qiji", "--from", "2026-03-08", "--to", "2026-03-02")
    assert out.exit_code == 2 and "--to" in out.output
    out = cli("channels", "report", "--org", "qiji", "--from", "2026-02-30", "--to", "2026-03-02")
    assert out.exit_code == 2 and "--from" in out.output
    out = cli("channels", "report", "--org", "nobody", "--from", "2026-03-02", "--to", "2026-03-08")
    assert out.exit_code == 2 and "nobody" in out.output

"""Hand-built edge cases of PRODUCT.md "Metric definitions", through `qunyun events import` and
`qunyun stats ... --format json`. Every expected number below was worked out by hand from the
definitions (see the comments), not from the reference implementation.

Calendar: 2026-03-01 is a Sunday; 2026-W09 = 02-23..03-01, W10 = 03-02..03-08,
W11 = 03-09..03-15, W12 = 03-16..03-22. Days are Asia/Shanghai (UTC+8) days.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from tests.analytics.helpers import (
    cli,
    created,
    flat,
    import_events,
    join,
    leave,
    message,
    metrics,
    paid,
    pick,
    refunded,
    sh,
    stats,
)

pytestmark = pytest.mark.usefixtures("db")


def daily(joins: int, left: int, actives: int, members: int, active_ratio: float) -> dict[str, Any]:
    return {"joins": joins, "left": left, "actives": actives, "members": members, "active_ratio": active_ratio}


def weekly(
    joins: int,
    left: int,
    actives: int,
    members: int,
    active_ratio: float,
    converted: int,
    conversion_ratio: float,
    gmv: str,
    converted_wow: float | None,
) -> dict[str, Any]:
    return {
        **daily(joins, left, actives, members, active_ratio),
        "converted": converted,
        "conversion_ratio": conversion_ratio,
        "gmv": gmv,
        "converted_wow": converted_wow,
    }


def test_rejoin_on_the_same_day(tmp_path: Path) -> None:
    import_events(
        tmp_path,
        [
            created("c1", sh("03-01", "08:00:00"), "g1"),
            # m1: in, out, in again on 03-02 -> one join, one leave, a member at the end of the day
            join("a1", sh("03-02", "09:00:00"), "g1", "m1"),
            leave("a2", sh("03-02", "12:00:00"), "g1", "m1"),
            join("a3", sh("03-02", "18:00:00"), "g1", "m1"),
            message("a4", sh("03-02", "19:00:00"), "g1", "m1"),
            # m2: in and out on the same day
            join("b1", sh("03-02", "10:00:00"), "g1", "m2"),
            leave("b2", sh("03-02", "20:00:00"), "g1", "m2"),
            # m3: in, out, in, out on the same day
            join("c2", sh("03-02", "11:00:00"), "g1", "m3"),
            leave("c3", sh("03-02", "13:00:00"), "g1", "m3"),
            join("c4", sh("03-02", "15:00:00"), "g1", "m3"),
            leave("c5", sh("03-02", "22:00:00"), "g1", "m3"),
        ],
    )
    rows = stats("daily", "2026-03-01", "2026-03-03", "--group", "g1")
    assert [(r["date"], r["group"]) for r in rows] == [("2026-03-01", "g1"), ("2026-03-02", "g1"), ("2026-03-03", "g1")]
    assert [metrics(r) for r in rows] == [
        daily(0, 0, 0, 0, 0.0),
        daily(3, 3, 1, 1, 1.0),  # joins and left count distinct members, not events
        daily(0, 0, 0, 1, 0.0),
    ]
    # one group: the all-groups rows say the same
    total = stats("daily", "2026-03-01", "2026-03-03")
    assert [r["group"] for r in total] == [None, None, None]
    assert [metrics(r) for r in total] == [metrics(r) for r in rows]
    [week] = stats("weekly", "2026-03-02", "2026-03-08", "--group", "g1")
    assert week["week"] == "2026-W10"
    assert metrics(week) == weekly(3, 3, 1, 1, 1.0, 0, 0.0, "0.00", None)


def test_leave_and_rejoin_on_later_days_delivered_out_of_order(tmp_path: Path) -> None:
    events = [
        # m1: joins 03-02, leaves 03-03, rejoins 03-05 — delivered newest first
        join("m1-rejoin", sh("03-05", "10:00:00"), "g1", "m1"),
        leave("m1-leave", sh("03-03", "10:00:00"), "g1", "m1"),
        join("m1-join", sh("03-02", "09:00:00"), "g1", "m1"),
        join("m2-join", sh("03-02", "10:00:00"), "g1", "m2"),
        # paid while out of the group: not converted; paid after rejoining: converted
        paid("o1", sh("03-04", "12:00:00"), "o1", "m1", "10.00", group="g1"),
        paid("o2", sh("03-06", "12:00:00"), "o2", "m1", "20.00"),
    ]
    import_events(tmp_path, events[:3])
    import_events(tmp_path, events[3:])
    rows = stats("daily", "2026-03-02", "2026-03-06", "--group", "g1")
    assert [metrics(r) for r in rows] == [
        daily(2, 0, 0, 2, 0.0),  # 03-02
        daily(0, 1, 0, 1, 0.0),  # 03-03 m1 left
        daily(0, 0, 0, 1, 0.0),  # 03-04
        daily(1, 0, 0, 2, 0.0),  # 03-05 m1 back
        daily(0, 0, 0, 2, 0.0),  # 03-06
    ]
    [week] = stats("weekly", "2026-03-02", "2026-03-08")
    assert week["group"] is None
    # joins: m1 and m2 (m1 twice, counted once); only o2 was paid by a member
    assert metrics(week) == weekly(2, 1, 0, 2, 0.0, 1, 0.5, "20.00", None)


def test_duplicate_event_ids_count_once(tmp_path: Path) -> None:
    events = [
        created("c1", sh("03-01", "08:00:00"), "g1"),
        join("j1", sh("03-02", "09:00:00"), "g1", "m1"),
        message("x1", sh("03-02", "10:00:00"), "g1", "m1"),
        paid("p1", sh("03-03", "10:00:00"), "o1", "m1", "100.00"),
        refunded("r1", sh("03-04", "10:00:00"), "o1", "30.00"),
    ]
    first = import_events(tmp_path, [e for e in events for _ in (1, 2)])  # every line twice
    assert "imported 5 events (5 duplicates" in flat(first.stderr)
    again = import_events(tmp_path, [events[3], events[4], events[1]])  # a redelivery
    assert "imported 0 events (3 duplicates" in flat(again.stderr)

    [day] = stats("daily", "2026-03-02", "2026-03-02")
    assert metrics(day) == daily(1, 0, 1, 1, 1.0)
    [week] = stats("weekly", "2026-03-02", "2026-03-08")
    # the order is counted once and its refund subtracted once: 100.00 - 30.00
    assert metrics(week) == weekly(1, 0, 1, 1, 1.0, 1, 1.0, "70.00", None)


def test_utc_timestamps_fall_on_shanghai_days_and_weeks(tmp_path: Path) -> None:
    import_events(
        tmp_path,
        [
            created("c1", "2026-02-28T00:00:00Z", "g1"),
            # 2026-03-01T02:00Z = 03-01 10:00 in Shanghai
            join("m2-join", "2026-03-01T02:00:00Z", "g1", "m2"),
            # 15:59:59Z = 03-01 23:59:59 Shanghai, still 03-01
            message("m2-msg", "2026-03-01T15:59:59Z", "g1", "m2"),
            # 16:00:00Z = 03-02 00:00:00 Shanghai, already 03-02
            message("m2-msg2", "2026-03-01T16:00:00Z", "g1", "m2"),
            # 16:30Z on 03-01 = 03-02 00:30 Shanghai: m1 joins on 03-02, not 03-01
            join("m1-join", "2026-03-01T16:30:00Z", "g1", "m1"),
            # 16:00Z on 03-02 = 03-03 00:00 Shanghai: m2 leaves on 03-03
            leave("m2-leave", "2026-03-02T16:00:00Z", "g1", "m2"),
            # 11:30-05:00 on 03-02 = 16:30Z = 03-03 00:30 Shanghai
            join("m3-join", "2026-03-02T11:30:00-05:00", "g1", "m3"),
            # Sunday 03-08 23:30 Shanghai (W10) and Monday 03-09 00:30 Shanghai (W11)
            paid("o-sun", "2026-03-08T15:30:00Z", "o-sun", "m1", "5.00"),
            paid("o-mon", "2026-03-08T16:30:00Z", "o-mon", "m1", "9.90"),
        ],
    )
    rows = stats("daily", "2026-03-01", "2026-03-03")
    assert [r["date"] for r in rows] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert [metrics(r) for r in rows] == [
        daily(1, 0, 1, 1, 1.0),  # m2 joined and posted at 23:59:59
        daily(1, 0, 1, 2, 0.5),  # m2 posted at 00:00:00, m1 joined at 00:30
        daily(1, 1, 0, 2, 0.0),  # m3 joined at 00:30, m2 left at 00:00
    ]
    w10, w11 = stats("weekly", "2026-03-02", "2026-03-09")
    assert (w10["week"], w11["week"]) == ("2026-W10", "2026-W11")
    # W10: joins m1, m3 (m2 joined in W09); left m2; active m2 (at 00:00:00); members m1, m3
    assert metrics(w10) == weekly(2, 1, 1, 2, 0.5, 1, 0.5, "5.00", None)
    assert metrics(w11) == weekly(0, 0, 0, 2, 0.0, 1, 0.5, "9.90", 0.0)


def _commerce_events() -> list[dict[str, Any]]:
    return [
        created("g1-created", sh("02-20"), "g1"),
        join("j1", sh("02-25", "10:00:00"), "g1", "m1"),
        join("j2", sh("02-26", "10:00:00"), "g1", "m2"),
        join("j3", sh("03-03", "10:00:00"), "g1", "m3"),
        # W09: m1 buys 50.00; refunded in W10 -> W09 keeps 50.00, W10 does not subtract it
        paid("a1", sh("02-27"), "a1", "m1", "50.00"),
        refunded("a1-r", sh("03-02"), "a1", "50.00"),
        # W10
        paid("b1", sh("03-03", "09:00:00"), "b1", "m1", "100.00"),
        refunded("b1-r", sh("03-05"), "b1", "30.00"),  # partial refund in the same week
        paid("b2", sh("03-04"), "b2", "m2", "80.00"),
        refunded("b2-r", sh("03-10"), "b2", "80.00"),  # refunded the week after: not subtracted
        paid("b3", sh("03-03", "09:59:59"), "b3", "m3", "20.00"),  # a second before m3 joined
        paid("b4", sh("03-04"), "b4", "m4", "999.00"),  # m4 never joined any group
        # W11
        paid("c1", sh("03-10"), "c1", "m1", "10.00"),
        paid("c2", sh("03-11"), "c2", "m2", "10.00"),
        paid("c3", sh("03-12"), "c3", "m3", "10.05"),
        paid("c4", sh("03-13"), "c4", "m1", "0.50"),
        leave("l2", sh("03-14"), "g1", "m2"),
        paid("d1", sh("03-15"), "d1", "m2", "40.00"),  # m2 has left by now
        # W12: nothing
    ]


def test_weekly_conversion_gmv_refunds_and_converted_wow(tmp_path: Path) -> None:
    # the refunds arrive before the payments they refund
    events = _commerce_events()
    import_events(tmp_path, sorted(events, key=lambda e: e["kind"] != "order.refunded"))

    w10, w11, w12 = stats("weekly", "2026-03-02", "2026-03-16")
    assert [w["week"] for w in (w10, w11, w12)] == ["2026-W10", "2026-W11", "2026-W12"]
    # W10: converted m1 (b1) and m2 (b2), not m3 (paid before joining) nor m4 (never a member);
    # gmv = (100.00 - 30.00) + 80.00; W09 converted 1 (m1) -> wow (2 - 1) / 1
    assert metrics(w10) == weekly(1, 0, 0, 3, 0.0, 2, 0.6667, "150.00", 1.0)
    # W11: converted m1, m2, m3 (d1 was paid after m2 left); gmv 10 + 10 + 10.05 + 0.50;
    # members at the end of Sunday: m1, m3; wow (3 - 2) / 2
    assert metrics(w11) == weekly(0, 1, 0, 2, 0.0, 3, 1.5, "30.55", 0.5)
    assert metrics(w12) == weekly(0, 0, 0, 2, 0.0, 0, 0.0, "0.00", -1.0)

    [w09] = stats("weekly", "2026-02-23", "2026-02-23", "--group", "g1")
    assert (w09["week"], w09["group"]) == ("2026-W09", "g1")
    assert metrics(w09) == weekly(2, 0, 0, 2, 0.0, 1, 0.5, "50.00", None)
    # one group: its rows equal the all-groups rows
    per_group = stats("weekly", "2026-03-02", "2026-03-16", "--group", "g1")
    assert [metrics(r) for r in per_group] == [metrics(r) for r in (w10, w11, w12)]


def test_weekly_rows_cover_whole_iso_weeks_touching_the_range(tmp_path: Path) -> None:
    import_events(tmp_path, _commerce_events())
    # Sunday 03-01 (W09) to Tuesday 03-03 (W10): two whole weeks
    rows = stats("weekly", "2026-03-01", "2026-03-03")
    assert [r["week"] for r in rows] == ["2026-W09", "2026-W10"]
    assert rows[1]["converted_wow"] == 1.0  # W10 against W09


def test_member_of_two_groups_counts_once_in_the_total(tmp_path: Path) -> None:
    import_events(
        tmp_path,
        [
            created("c1", sh("03-01"), "g1"),
            created("c2", sh("03-01"), "g2"),
            join("j1", sh("03-02", "09:00:00"), "g1", "m1"),
            join("j2", sh("03-02", "10:00:00"), "g2", "m1"),
            message("x1", sh("03-02", "11:00:00"), "g1", "m1"),
            message("x2", sh("03-02", "11:30:00"), "g2", "m1"),
            join("j3", sh("03-02", "11:00:00"), "g2", "m2"),
            paid("o1", sh("03-02", "12:00:00"), "o1", "m1", "60.00", group="g1"),
            leave("l1", sh("03-03"), "g1", "m1"),  # still in g2
            leave("l2", sh("03-04"), "g2", "m2"),
        ],
    )
    rows = stats("daily", "2026-03-02", "2026-03-04", "--per-group")
    assert [(r["date"], r["group"]) for r in rows] == [
        (d, g) for d in ("2026-03-02", "2026-03-03", "2026-03-04") for g in (None, "g1", "g2")
    ]
    assert [metrics(r) for r in rows] == [
        daily(2, 0, 1, 2, 0.5),  # 03-02 all groups: m1 joined twice but is one member
        daily(1, 0, 1, 1, 1.0),  # g1
        daily(2, 0, 1, 2, 0.5),  # g2
        daily(0, 1, 0, 2, 0.0),  # 03-03 all: m1 left g1, still in g2
        daily(0, 1, 0, 0, 0.0),  # g1
        daily(0, 0, 0, 2, 0.0),  # g2
        daily(0, 1, 0, 1, 0.0),  # 03-04 all: m2 left g2
        daily(0, 0, 0, 0, 0.0),  # g1
        daily(0, 1, 0, 1, 0.0),  # g2
    ]
    total, g1, g2 = stats("weekly", "2026-03-02", "2026-03-08", "--per-group")
    assert [r["group"] for r in (total, g1, g2)] == [None, "g1", "g2"]
    # m1 was in both groups when paying: converted in each, and once (60.00 once) in the total
    assert metrics(total) == weekly(2, 2, 1, 1, 1.0, 1, 1.0, "60.00", None)
    assert metrics(g1) == weekly(1, 1, 1, 0, 0.0, 1, 0.0, "60.00", None)
    assert metrics(g2) == weekly(2, 1, 1, 1, 1.0, 1, 1.0, "60.00", None)
    assert stats("weekly", "2026-03-02", "2026-03-08", "--group", "g2") == [g2]


def test_empty_groups_report_zeros(tmp_path: Path) -> None:
    import_events(
        tmp_path,
        [
            created("c0", sh("03-01"), "g0"),
            created("c1", sh("03-01"), "g1"),
            join("j1", sh("03-02"), "g2", "m1"),  # g2 first seen here
            created("c3", sh("03-10"), "g3"),  # after the range: not reported
        ],
    )
    rows = stats("daily", "2026-03-02", "2026-03-03", "--per-group")
    assert [(r["date"], r["group"]) for r in rows] == [
        (d, g) for d in ("2026-03-02", "2026-03-03") for g in (None, "g0", "g1", "g2")
    ]
    for row in rows:
        if row["group"] in ("g0", "g1"):
            assert metrics(row) == daily(0, 0, 0, 0, 0.0)
    assert metrics(pick(rows, "date", "2026-03-03", "g2")) == daily(0, 0, 0, 1, 0.0)
    [week] = stats("weekly", "2026-03-02", "2026-03-08", "--group", "g1")
    assert metrics(week) == weekly(0, 0, 0, 0, 0.0, 0, 0.0, "0.00", None)
    assert stats("daily", "2026-03-02", "2026-03-03", "--group", "g3") == []


def test_no_events_in_range_gives_zero_rows(tmp_path: Path) -> None:
    import_events(tmp_path, [join("j1", sh("03-02"), "g1", "m1")])
    rows = stats("daily", "2026-02-27", "2026-02-28", "--per-group")
    # g1 did not exist yet: only the all-groups rows, all zero
    assert rows == [
        {"date": "2026-02-27", "group": None, **daily(0, 0, 0, 0, 0.0)},
        {"date": "2026-02-28", "group": None, **daily(0, 0, 0, 0, 0.0)},
    ]


def test_stats_are_answered_from_rollups_not_the_event_log(tmp_path: Path, engine: Engine) -> None:
    import_events(tmp_path, _commerce_events())
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        stats("daily", "2026-02-23", "2026-03-22", "--per-group")
        stats("weekly", "2026-02-23", "2026-03-22", "--per-group")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements
    assert not [s for s in statements if re.search(r"\bevents\b", s, re.IGNORECASE)]


def test_stats_cli_errors(tmp_path: Path) -> None:
    import_events(tmp_path, [join("j1", sh("03-02"), "g1", "m1")])
    backwards = cli("stats", "daily", "--from", "2026-03-02", "--to", "2026-03-01", "--format", "json")
    assert backwards.exit_code == 2
    assert "--to" in flat(backwards.stderr)
    unknown = cli("stats", "weekly", "--from", "2026-03-02", "--to", "2026-03-02", "--group", "nope")
    assert unknown.exit_code == 2
    assert "nope" in flat(unknown.stderr)
    bad_date = cli("stats", "daily", "--from", "03/02/2026", "--to", "2026-03-02")
    assert bad_date.exit_code == 2
    assert "--from" in flat(bad_date.stderr)


@pytest.mark.parametrize("deliveries", ["one import", "latest first, in two imports"])
def test_a_group_is_reported_from_its_earliest_event_whatever_the_arrival_order(
    tmp_path: Path, deliveries: str
) -> None:
    events = [join("j1", sh("03-02"), "g1", "m1"), message("x1", sh("03-05"), "g1", "m1")]
    if deliveries == "one import":
        import_events(tmp_path, events)
    else:  # the group is first seen through its 03-05 message; its 03-02 join arrives later
        import_events(tmp_path, [events[1]])
        import_events(tmp_path, [events[0]])
    rows = stats("daily", "2026-03-02", "2026-03-03", "--group", "g1")
    assert [(r["date"], metrics(r)) for r in rows] == [
        ("2026-03-02", daily(1, 0, 0, 1, 0.0)),
        ("2026-03-03", daily(0, 0, 0, 1, 0.0)),
    ]
    assert [r["group"] for r in stats("daily", "2026-03-02", "2026-03-02", "--per-group")] == [None, "g1"]


def test_days_follow_the_organisations_time_zone(tmp_path: Path) -> None:
    assert cli("org", "create", "london", "--time-zone", "Europe/London").exit_code == 0
    events = [join("j1", "2026-03-01T16:30:00Z", "g1", "m1")]  # 03-02 00:30 in Shanghai
    import_events(tmp_path, events, "--org", "default")  # with two organisations, --org is needed
    import_events(tmp_path, events, "--org", "london")
    [shanghai] = stats("daily", "2026-03-01", "2026-03-01", "--org", "default")
    [london] = stats("daily", "2026-03-01", "2026-03-01", "--org", "london")
    assert metrics(shanghai) == daily(0, 0, 0, 0, 0.0)
    assert metrics(london) == daily(1, 0, 0, 1, 0.0)


def test_csv_and_table_formats(tmp_path: Path) -> None:
    import_events(tmp_path, [join("j1", sh("03-02"), "g1", "m1"), paid("o1", sh("03-03"), "o1", "m1", "8.00")])
    csv = cli("stats", "weekly", "--from", "2026-03-02", "--to", "2026-03-02", "--format", "csv")
    assert csv.exit_code == 0, csv.output
    assert csv.stdout.splitlines() == [
        "week,group,joins,left,actives,members,active_ratio,converted,conversion_ratio,gmv,converted_wow",
        "2026-W10,,1,0,0,1,0.0,1,1.0,8.00,",
    ]
    table = cli("stats", "daily", "--from", "2026-03-02", "--to", "2026-03-02", "--format", "table")
    assert table.exit_code == 0, table.output
    assert "2026-03-02" in table.stdout
    assert "active_ratio" in table.stdout

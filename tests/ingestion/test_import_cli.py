"""`qunyun events import PATH|-` (PRODUCT.md "Command-line contract" and "Event interchange format v1"):
all or nothing, errors name the line and the field, --skip-invalid reports each skipped line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.analytics.helpers import (
    cli,
    count,
    created,
    flat,
    import_events,
    jsonl,
    message,
    paid,
    refunded,
    sh,
    snapshot,
    stats,
    write_jsonl,
)
from tests.analytics.helpers import join as joined
from tests.analytics.helpers import leave as left

pytestmark = pytest.mark.usefixtures("db")

GOOD = [
    created("e1", sh("03-01", "08:00:00"), "g1", capacity=200, region="上海"),
    joined("e2", sh("03-02", "09:00:00"), "g1", "m1", channel="sms", scene="qr"),
    message("e3", sh("03-02", "10:00:00"), "g1", "m1", text="大家好"),
    paid("e4", sh("03-03", "10:00:00"), "o1", "m1", "59.90", product="体验装"),
    refunded("e5", sh("03-04", "10:00:00"), "o1", "9.90"),
    left("e6", sh("03-05", "10:00:00"), "g1", "m1", reason="left"),
]

DERIVED_TABLES = (
    "events",
    "organisations",
    "groups",
    "members",
    "channels",
    "membership_spans",
    "member_days",
    "group_daily",
    "org_daily",
    "orders",
    "refunds",
    "message_texts",
)


def assert_nothing_stored(engine: Engine) -> None:
    assert {t: count(engine, t) for t in DERIVED_TABLES} == dict.fromkeys(DERIVED_TABLES, 0)


def run_import(tmp_path: Path, lines: list[Any], *args: str) -> Any:
    return cli("events", "import", str(write_jsonl(tmp_path / "events.jsonl", lines)), *args)


def test_a_good_file_is_imported(tmp_path: Path, engine: Engine) -> None:
    result = import_events(tmp_path, GOOD)
    assert "imported 6 events (0 duplicates, 0 skipped)" in flat(result.stderr)
    assert count(engine, "events") == 6
    assert count(engine, "orders") == 1
    assert count(engine, "refunds") == 1
    [week] = stats("weekly", "2026-03-02", "2026-03-08")
    assert (week["joins"], week["left"], week["members"], week["converted"], week["gmv"]) == (1, 1, 0, 1, "50.00")


def test_a_bad_line_in_the_middle_aborts_the_whole_import(tmp_path: Path, engine: Engine) -> None:
    lines: list[Any] = [*GOOD[:4], {**GOOD[4], "ts": "2026-03-04T10:00:00"}, GOOD[5]]
    # --batch-size 1: earlier lines were already ingested when the bad one is read
    result = run_import(tmp_path, lines, "--batch-size", "1")
    assert result.exit_code == 2
    err = flat(result.stderr)
    assert "line 5" in err
    assert "'ts'" in err
    assert "no UTC offset" in err
    assert "nothing was written" in err
    assert_nothing_stored(engine)


def test_several_errors_are_reported_at_once(tmp_path: Path, engine: Engine) -> None:
    lines: list[Any] = [
        GOOD[0],
        '{"id": "x", "ts": ',  # line 2: malformed JSON
        GOOD[1],
        {**GOOD[2], "kind": "message.edited"},  # line 4: unknown kind
        {k: v for k, v in GOOD[3].items() if k != "member"},  # line 5: missing field
        {**GOOD[4], "amount": "9.999"},  # line 6: bad amount
    ]
    result = run_import(tmp_path, lines)
    assert result.exit_code == 2
    err = flat(result.stderr)
    for expected in (
        "line 2: not valid JSON",
        "line 4: field 'kind'",
        "line 5: field 'member'",
        "line 6: field 'amount'",
    ):
        assert expected in err
    assert "line 1" not in err and "line 3" not in err
    assert_nothing_stored(engine)


def test_at_most_twenty_errors_are_reported(tmp_path: Path, engine: Engine) -> None:
    result = run_import(tmp_path, ["not json"] * 25)
    assert result.exit_code == 2
    err = flat(result.stderr)
    assert "line 20: not valid JSON" in err
    assert "line 21" not in err
    assert "stopped after 20 errors" in err
    assert_nothing_stored(engine)


BAD_LINES = [
    pytest.param(
        '{"id": "e1", "ts": "2026-03-02T09:00:00+08:00", "kind": ', None, "not valid JSON", id="malformed-json"
    ),
    pytest.param("[1, 2]", None, "must be a JSON object", id="not-an-object"),
    pytest.param({**GOOD[1], "kind": "member.kicked"}, "kind", "unknown kind 'member.kicked'", id="unknown-kind"),
    pytest.param({k: v for k, v in GOOD[1].items() if k != "kind"}, "kind", "unknown kind None", id="missing-kind"),
    pytest.param({k: v for k, v in GOOD[1].items() if k != "id"}, "id", "is required", id="missing-id"),
    pytest.param({k: v for k, v in GOOD[1].items() if k != "group"}, "group", "is required", id="missing-group"),
    pytest.param({k: v for k, v in GOOD[1].items() if k != "ts"}, "ts", "ISO 8601", id="missing-ts"),
    pytest.param({**GOOD[1], "ts": "2026-03-02T09:00:00"}, "ts", "has no UTC offset", id="ts-without-offset"),
    pytest.param({**GOOD[1], "ts": "yesterday"}, "ts", "is not ISO 8601", id="ts-not-iso"),
    pytest.param({**GOOD[1], "ts": 1772413200}, "ts", "must be an ISO 8601 string", id="ts-number"),
    pytest.param({**GOOD[1], "member": ""}, "member", "non-empty string", id="empty-member"),
    pytest.param({**GOOD[1], "scene": "poster"}, "scene", "must be one of", id="bad-scene"),
    pytest.param({**GOOD[5], "reason": "banned"}, "reason", "must be one of", id="bad-reason"),
    pytest.param({**GOOD[1], "scene": ["qr"]}, "scene", "must be one of", id="scene-a-list"),
    pytest.param({**GOOD[5], "reason": {"left": 1}}, "reason", "must be one of", id="reason-an-object"),
    pytest.param({**GOOD[2], "msg_type": "sticker"}, "msg_type", "must be one of", id="bad-msg-type"),
    pytest.param({**GOOD[0], "capacity": 0}, "capacity", "positive integer", id="bad-capacity"),
    pytest.param({**GOOD[0], "name": ""}, "name", "is required", id="empty-name"),
    pytest.param({**GOOD[3], "amount": 59.9}, "amount", "decimal string", id="amount-number"),
    pytest.param({**GOOD[3], "amount": "59.999"}, "amount", "at most 2 decimals", id="amount-3-decimals"),
    pytest.param({**GOOD[3], "amount": "-1.00"}, "amount", "non-negative", id="amount-negative"),
    pytest.param({**GOOD[3], "amount": "1e3"}, "amount", "non-negative", id="amount-exponent"),
    pytest.param({**GOOD[3], "amount": "059.90"}, "amount", "non-negative", id="amount-leading-zero"),
    pytest.param({**GOOD[3], "amount": ""}, "amount", "non-negative", id="amount-empty"),
    pytest.param({**GOOD[3], "amount": "59.90\n"}, "amount", "non-negative", id="amount-trailing-newline"),
    pytest.param({k: v for k, v in GOOD[4].items() if k != "order"}, "order", "is required", id="refund-no-order"),
]


@pytest.mark.parametrize(("line", "field", "reason"), BAD_LINES)
def test_each_kind_of_bad_line_is_named_with_its_line_and_field(
    tmp_path: Path, engine: Engine, line: Any, field: str | None, reason: str
) -> None:
    result = run_import(tmp_path, [GOOD[0], GOOD[1], line])
    assert result.exit_code == 2, result.output
    err = flat(result.stderr)
    prefix = f"line 3: field '{field}':" if field else "line 3:"
    assert prefix in err
    assert reason in err
    assert_nothing_stored(engine)


def test_skip_invalid_reports_each_skipped_line_and_imports_the_rest(tmp_path: Path, engine: Engine) -> None:
    lines: list[Any] = [
        GOOD[0],
        "{oops",
        GOOD[1],
        {**GOOD[2], "kind": "message.recalled"},
        GOOD[2],
        {**GOOD[3], "ts": "2026-03-03 10:00"},
    ]
    result = run_import(tmp_path, lines, "--skip-invalid")
    assert result.exit_code == 0, result.output
    err_lines = [line.strip() for line in result.stderr.splitlines()]
    skipped = [line for line in err_lines if line.startswith("skipped line")]
    assert [s.split(":")[0] for s in skipped] == ["skipped line 2", "skipped line 4", "skipped line 6"]
    err = flat(result.stderr)
    assert "skipped line 4: field 'kind'" in err
    assert "skipped line 6: field 'ts'" in err
    assert "imported 3 events (0 duplicates, 3 skipped)" in err
    assert count(engine, "events") == 3
    assert count(engine, "orders") == 0


def test_stdin_is_read_with_dash(engine: Engine) -> None:
    result = cli("events", "import", "-", stdin=jsonl(GOOD))
    assert result.exit_code == 0, result.output
    assert "imported 6 events" in flat(result.stderr)
    assert count(engine, "events") == 6


def test_bad_stdin_is_all_or_nothing_too(engine: Engine) -> None:
    result = cli("events", "import", "-", stdin=jsonl([GOOD[0], GOOD[1], "{}"]))
    assert result.exit_code == 2
    assert "line 3: field 'id'" in flat(result.stderr)
    assert_nothing_stored(engine)


def test_blank_lines_are_ignored_but_still_numbered(tmp_path: Path, engine: Engine) -> None:
    result = run_import(tmp_path, ["", GOOD[0], "   ", "\t", GOOD[1], "", {**GOOD[2], "group": 7}])
    assert result.exit_code == 2
    assert "line 7: field 'group'" in flat(result.stderr)
    ok = run_import(tmp_path, ["", GOOD[0], "   ", GOOD[1], ""])
    assert ok.exit_code == 0, ok.output
    assert "imported 2 events (0 duplicates, 0 skipped)" in flat(ok.stderr)


def test_duplicates_in_a_file_are_counted(tmp_path: Path, engine: Engine) -> None:
    result = import_events(tmp_path, [GOOD[0], GOOD[1], GOOD[1], GOOD[2], GOOD[1], GOOD[2]])
    assert "imported 3 events (3 duplicates, 0 skipped)" in flat(result.stderr)
    assert count(engine, "events") == 3
    assert count(engine, "member_days") == 1


def test_duplicates_across_batches_are_counted(tmp_path: Path, engine: Engine) -> None:
    result = import_events(tmp_path, [*GOOD, *GOOD], "--batch-size", "4")
    assert "imported 6 events (6 duplicates, 0 skipped)" in flat(result.stderr)
    assert count(engine, "events") == 6


def test_reimport_stores_nothing_and_changes_nothing(tmp_path: Path, engine: Engine) -> None:
    import_events(tmp_path, GOOD)
    before = snapshot(engine)
    daily_before = stats("daily", "2026-03-01", "2026-03-07", "--per-group")
    weekly_before = stats("weekly", "2026-03-01", "2026-03-07", "--per-group")
    again = import_events(tmp_path, list(reversed(GOOD)), "--batch-size", "2")
    assert "imported 0 events (6 duplicates, 0 skipped)" in flat(again.stderr)
    assert snapshot(engine) == before
    assert stats("daily", "2026-03-01", "2026-03-07", "--per-group") == daily_before
    assert stats("weekly", "2026-03-01", "2026-03-07", "--per-group") == weekly_before


def test_out_of_order_file_gives_the_same_result(tmp_path: Path) -> None:
    import_events(tmp_path, list(reversed(GOOD)))
    [week] = stats("weekly", "2026-03-02", "2026-03-08")
    assert (week["joins"], week["left"], week["members"], week["converted"], week["gmv"]) == (1, 1, 0, 1, "50.00")


def test_missing_file(tmp_path: Path) -> None:
    result = cli("events", "import", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2
    assert "no such file" in flat(result.stderr)


# User input is echoed in error messages; it must reach the terminal as text, not as markup.


def test_error_text_that_looks_like_markup_is_reported_not_crashing(tmp_path: Path, engine: Engine) -> None:
    result = run_import(tmp_path, [GOOD[0], {**GOOD[1], "ts": "[/red]"}])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2
    assert "line 2: field 'ts': '[/red]' is not ISO 8601" in flat(result.stderr)
    assert_nothing_stored(engine)


def test_skipped_line_text_that_looks_like_markup_is_reported_verbatim(tmp_path: Path, engine: Engine) -> None:
    result = run_import(tmp_path, [GOOD[0], {**GOOD[1], "kind": "[bold]promo"}], "--skip-invalid")
    assert result.exit_code == 0, repr(result.exception)
    assert "skipped line 2: field 'kind': unknown kind '[bold]promo'" in flat(result.stderr)
    assert count(engine, "events") == 1


# Values the parser accepts must be stored, or rejected with their line and field: never a crash
# (a traceback and exit code 1), on SQLite and on PostgreSQL alike.

RECENT = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # within the text retention window
UNUSUAL = [
    pytest.param({**GOOD[1], "ts": "0001-01-01T00:00:00+08:00"}, "ts", id="ts-in-year-0-utc"),
    pytest.param({**GOOD[1], "ts": "9999-12-31T23:00:00+00:00"}, "ts", id="ts-in-year-10000-shanghai"),
    pytest.param({**GOOD[1], "channel": "c" * 100}, "channel", id="channel-of-100-chars"),
    pytest.param({**GOOD[1], "id": "e\u0000"}, "id", id="nul-in-id"),
    pytest.param({**GOOD[1], "member": "m\u0000"}, "member", id="nul-in-member"),
    pytest.param({**GOOD[2], "ts": RECENT, "text": "a\u0000b"}, "text", id="nul-in-recent-text"),
    pytest.param({**GOOD[0], "name": "群\u0000"}, "name", id="nul-in-group-name"),
    pytest.param({**GOOD[0], "capacity": 2**31}, "capacity", id="capacity-over-int32"),
]


@pytest.mark.parametrize(("line", "field"), UNUSUAL)
def test_unusual_values_are_imported_or_rejected_never_crash(
    tmp_path: Path, engine: Engine, line: dict[str, Any], field: str
) -> None:
    result = run_import(tmp_path, [line])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 2:
        assert f"line 1: field '{field}'" in flat(result.stderr)
        assert_nothing_stored(engine)
    else:
        assert result.exit_code == 0
        assert count(engine, "events") == 1


def test_a_long_platform_name_is_imported_or_rejected_never_crash(tmp_path: Path, engine: Engine) -> None:
    result = run_import(tmp_path, GOOD, "--platform", "wecom-enterprise-edition")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 2:
        assert "platform" in flat(result.stderr)
        assert_nothing_stored(engine)
    else:
        assert result.exit_code == 0
        assert count(engine, "events") == 6


def test_crlf_line_endings(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(jsonl(GOOD).replace(b"\n", b"\r\n"))
    result = cli("events", "import", str(path))
    assert result.exit_code == 0, result.output
    assert count(engine, "events") == 6

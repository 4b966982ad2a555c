"""Shared helpers for the ingestion and analytics tests: event builders, the CLI, table snapshots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from click.testing import Result
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from qunyun.cli import app

# 2026-03-01 is a Sunday: ISO week 2026-W09 ends on it, 2026-W10 is 03-02 .. 03-08.


def sh(day: str, clock: str = "12:00:00") -> str:
    """An instant written in Shanghai time, e.g. sh("03-02", "09:30:00")."""
    return f"2026-{day}T{clock}+08:00"


def created(eid: str, ts: str, group: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "ts": ts, "kind": "group.created", "group": group, "name": name or group, **extra}


def join(eid: str, ts: str, group: str, member: str, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "ts": ts, "kind": "member.joined", "group": group, "member": member, **extra}


def leave(eid: str, ts: str, group: str, member: str, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "ts": ts, "kind": "member.left", "group": group, "member": member, **extra}


def message(eid: str, ts: str, group: str, member: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": eid,
        "ts": ts,
        "kind": "message.posted",
        "group": group,
        "member": member,
        "msg_type": "text",
        **extra,
    }


def paid(eid: str, ts: str, order: str, member: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {"id": eid, "ts": ts, "kind": "order.paid", "order": order, "member": member, "amount": amount, **extra}


def refunded(eid: str, ts: str, order: str, amount: str) -> dict[str, Any]:
    return {"id": eid, "ts": ts, "kind": "order.refunded", "order": order, "amount": amount}


def jsonl(events: Iterable[Mapping[str, Any] | str]) -> bytes:
    """JSON Lines; a ``str`` item is written verbatim (for malformed or blank lines)."""
    return b"".join((e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n" for e in events)


def write_jsonl(path: Path, events: Iterable[Mapping[str, Any] | str]) -> Path:
    path.write_bytes(jsonl(events))
    return path


_runner = CliRunner()


def cli(*args: str, stdin: bytes | None = None) -> Result:
    return _runner.invoke(app, list(args), input=stdin)


def flat(output: str) -> str:
    """Terminal output with rich's soft wrapping undone, for substring assertions."""
    return " ".join(output.split())


def import_events(tmp_path: Path, events: Iterable[Mapping[str, Any] | str], *args: str) -> Result:
    """``qunyun events import FILE`` that must succeed."""
    path = write_jsonl(tmp_path / f"events-{len(list(tmp_path.iterdir()))}.jsonl", events)
    result = cli("events", "import", str(path), *args)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def stats(period: str, date_from: str, date_to: str, *args: str) -> list[dict[str, Any]]:
    """``qunyun stats PERIOD --from --to ... --format json`` parsed."""
    result = cli("stats", period, "--from", date_from, "--to", date_to, "--format", "json", *args)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    rows: list[dict[str, Any]] = orjson.loads(result.stdout)
    return rows


def pick(rows: list[dict[str, Any]], key: str, value: str, group: str | None = None) -> dict[str, Any]:
    """The single row with ``row[key] == value`` and ``row["group"] == group``."""
    found = [r for r in rows if r[key] == value and r["group"] == group]
    assert len(found) == 1, (key, value, group, rows)
    return found[0]


def metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row without its label columns, for compact expected-value comparisons."""
    return {k: v for k, v in row.items() if k not in ("date", "week", "group")}


# Derived state, as rows without surrogate ids, to check that a repeat delivery changes nothing.
SNAPSHOT_QUERIES = {
    "events": "SELECT org_id, external_id, kind, ts, day, group_id, member_id, msg_type, length, scene, channel_id,"
    " inviter_id, reason FROM events",
    "groups": "SELECT org_id, platform, external_id, name, tier, region, capacity, member_count, created_at"
    " FROM groups",
    "members": "SELECT org_id, platform, external_id, first_seen_at FROM members",
    "channels": "SELECT org_id, code FROM channels",
    "membership_spans": "SELECT org_id, group_id, member_id, joined_at, left_at, join_event_id, leave_event_id"
    " FROM membership_spans",
    "member_days": "SELECT group_id, day, member_id, org_id, joined, departed, messages FROM member_days",
    "group_daily": "SELECT group_id, day, org_id, joins, lefts, actives, messages, members_delta FROM group_daily",
    "org_daily": "SELECT org_id, day, joins, lefts, actives, messages, members_delta FROM org_daily",
    "orders": "SELECT org_id, external_id, member_id, group_id, product, amount_fen, paid_at FROM orders",
    "refunds": "SELECT org_id, order_ref, amount_fen, refunded_at FROM refunds",
    "message_texts": "SELECT event_id, ts, text FROM message_texts",
    "jobs": "SELECT kind, payload FROM jobs",
}


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            name: sorted((tuple(row) for row in conn.execute(text(sql))), key=repr)
            for name, sql in SNAPSHOT_QUERIES.items()
        }


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())

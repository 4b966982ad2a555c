"""Per group-day and per organisation-day rollups, kept by deltas as facts arrive.

``member_days`` holds one row per (day, group, member): whether the member joined, whether they
left, and how many messages they posted. ``group_daily`` counts over a group's rows of a day;
``org_daily`` counts distinct members over all groups, through ``org_day_members`` (one row per
(day, member), each flag the OR of the member's flags in every group).

An ingest reads the rows its facts touch, works out which flags turn on, and adds exactly those
to the counters: what a fact costs does not depend on how much the day, or the organisation,
already holds. Flags only ever turn on and message counts only grow, so events in any order
give the same rollups as a count from scratch (:func:`rebuild_rollups`, ``qunyun stats
rebuild``). Reading before writing is safe because nothing else writes these rows meanwhile:
the ingestor holds the organisation's advisory lock on PostgreSQL, the write lock on SQLite.

(The end-of-day member counts, ``members_delta``, come from the membership spans;
``Ingestor._rebuild_spans`` adds them.)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.orm import Session

from qunyun.errors import NotFound
from qunyun.ingestion.spans import group_day_deltas, org_day_deltas, replay
from qunyun.ingestion.sql import SqlDialect
from qunyun.locale import Msg
from qunyun.models import Organisation
from qunyun.models.event import MEMBERSHIP_KINDS, EventKind, kind_in
from qunyun.timeutil import DayCalculator

JOIN = int(EventKind.MEMBER_JOINED)
LEAVE = int(EventKind.MEMBER_LEFT)
MESSAGE = int(EventKind.MESSAGE_POSTED)

# (day, group_id, member_id) → [org, day, group, member, joins, leaves, messages], as the
# ingestor collects them (joins and leaves are counts; the stored fact is whether there was one)
Facts = dict[tuple[int, int, int], list[int]]

# Up to this many rows go by executemany (one round trip, no temporary table: the live path);
# more go by COPY on PostgreSQL.
COPY_ABOVE = 2000
# Up to this many facts, their stored rows are looked up straight away: a live event lands on a
# day that has facts already. Larger flushes (imports) first ask which of their days have any,
# and look up only the facts of those days.
PROBE_DAYS_ABOVE = 1000

_MEMBER_DAY_COLUMNS = "org_id, day, group_id, member_id, joined, departed, messages"
_ORG_DAY_MEMBER_COLUMNS = "org_id, day, member_id, joined, departed, active"


def update_rollups(db: SqlDialect, org: int, facts: Facts) -> None:
    """Add ``facts`` to ``member_days``, ``org_day_members``, ``group_daily`` and ``org_daily``.

    The caller holds the organisation's ingest lock; each fact's event is new to the log.
    """
    if not facts:
        return
    keys: Iterable[tuple[int, int, int]] = facts.keys()
    if len(facts) > PROBE_DAYS_ABOVE:
        known = _days_with_facts(db, org, sorted({d for d, _, _ in facts}))
        keys = [k for k in facts if k[0] in known]
    else:
        keys = list(keys)
    pairs = sorted({(d, m) for d, _, m in keys})
    if db.pg and 0 < len(keys) <= PROBE_DAYS_ABOVE:
        old_member_days, old_members = _stored_pg(db, org, keys, pairs)
    else:
        old_member_days = _stored_member_days(db, org, keys)
        old_members = _stored_org_day_members(db, org, pairs)

    member_days: list[list[int]] = []
    group_rows: dict[tuple[int, int], list[int]] = {}
    member_flags: dict[tuple[int, int], list[int]] = {}
    messages_per_day: Counter[int] = Counter()
    for key, fact in facts.items():
        d, g, m = key
        joined, departed, messages = min(fact[4], 1), min(fact[5], 1), fact[6]
        member_days.append([org, d, g, m, joined, departed, messages])
        was = old_member_days.get(key)
        old_joined, old_departed, old_active = (was[0], was[1], was[2] > 0) if was else (0, 0, False)
        row = group_rows.get((g, d))
        if row is None:
            row = group_rows[(g, d)] = [g, d, org, 0, 0, 0, 0]
        row[3] += joined > old_joined
        row[4] += departed > old_departed
        row[5] += messages > 0 and not old_active
        row[6] += messages
        flags = member_flags.get((d, m))
        if flags is None:
            flags = member_flags[(d, m)] = [0, 0, 0]
        flags[0] |= joined
        flags[1] |= departed
        flags[2] |= messages > 0
        messages_per_day[d] += messages

    org_rows: dict[int, list[int]] = {}
    member_rows: list[tuple[int, ...]] = []
    for (d, m), (joined, departed, active) in member_flags.items():
        was_joined, was_departed, was_active = old_members.get((d, m), (0, 0, 0))
        turned_on = (joined > was_joined, departed > was_departed, active > was_active)
        if not any(turned_on):
            continue
        member_rows.append((org, d, m, joined | was_joined, departed | was_departed, active | was_active))
        row = org_rows.get(d)
        if row is None:
            row = org_rows[d] = [org, d, 0, 0, 0, 0]
        row[2] += turned_on[0]
        row[3] += turned_on[1]
        row[4] += turned_on[2]
    for d, messages in messages_per_day.items():
        if messages:
            row = org_rows.get(d)
            if row is None:
                row = org_rows[d] = [org, d, 0, 0, 0, 0]
            row[5] = messages

    add_counts = (
        "ON CONFLICT ({key}) DO UPDATE SET joins = {table}.joins + excluded.joins,"
        " lefts = {table}.lefts + excluded.lefts, actives = {table}.actives + excluded.actives,"
        " messages = {table}.messages + excluded.messages"
    )
    _write(
        db,
        [
            Upsert(
                "member_days",
                _MEMBER_DAY_COLUMNS,
                "org_id int, day int, group_id int, member_id int, joined smallint, departed smallint, messages int",
                member_days,
                "ON CONFLICT (org_id, day, group_id, member_id) DO UPDATE SET"
                f" joined = {db.greatest}(member_days.joined, excluded.joined),"
                f" departed = {db.greatest}(member_days.departed, excluded.departed),"
                " messages = member_days.messages + excluded.messages",
            ),
            Upsert(
                "org_day_members",
                _ORG_DAY_MEMBER_COLUMNS,
                "org_id int, day int, member_id int, joined smallint, departed smallint, active smallint",
                member_rows,
                # the rows hold the new flags already (old OR new)
                "ON CONFLICT (org_id, day, member_id) DO UPDATE SET joined = excluded.joined,"
                " departed = excluded.departed, active = excluded.active",
            ),
            Upsert(
                "group_daily",
                "group_id, day, org_id, joins, lefts, actives, messages, members_delta",
                "group_id int, day int, org_id int, joins int, lefts int, actives int, messages int, members_delta int",
                [[*row, 0] for row in group_rows.values() if row[3] or row[4] or row[5] or row[6]],
                add_counts.format(key="group_id, day", table="group_daily"),
            ),
            Upsert(
                "org_daily",
                "org_id, day, joins, lefts, actives, messages, members_delta",
                "org_id int, day int, joins int, lefts int, actives int, messages int, members_delta int",
                [[*row, 0] for row in org_rows.values()],
                add_counts.format(key="org_id, day", table="org_daily"),
            ),
        ],
    )


@dataclass(slots=True)
class Upsert:
    table: str
    columns: str
    create: str  # the columns' types, for a staging table
    rows: Sequence[Sequence[Any]]
    conflict: str


# PostgreSQL takes at most 65,535 parameters in one statement
ONE_STATEMENT_PARAMETERS = 20_000


def _write(db: SqlDialect, upserts: list[Upsert]) -> None:
    """Run ``upserts``; on PostgreSQL, small ones in one statement (one round trip for the
    live path instead of one per table: the round trips are most of its cost)."""
    upserts = [u for u in upserts if u.rows]
    if not upserts:
        return
    parameters = sum(len(u.rows) * len(u.rows[0]) for u in upserts)
    if db.pg and parameters <= ONE_STATEMENT_PARAMETERS:
        # Data-modifying CTEs all run, once each; they touch different tables, and no row twice.
        # Each table's rows go as one array per column: the statement's text depends only on
        # which tables have rows, so the driver prepares it once per connection instead of
        # PostgreSQL parsing and planning a VALUES list of every batch's own length.
        parts: list[str] = []
        params: list[Any] = []
        for k, u in enumerate(upserts):
            arrays = ", ".join(f"?::{column.split()[1]}[]" for column in u.create.split(", "))
            parts.append(f"w{k} AS (INSERT INTO {u.table} ({u.columns}) SELECT * FROM unnest({arrays}) {u.conflict})")
            params.extend(map(list, zip(*u.rows, strict=True)))
        db.run("WITH " + ", ".join(parts) + " SELECT 1", tuple(params))
        return
    for u in upserts:
        if db.pg and len(u.rows) > COPY_ABOVE:
            staging = f"ingest_{u.table}"
            db.copy_in(staging, u.columns, u.create, u.rows)
            db.run(f"INSERT INTO {u.table} ({u.columns}) SELECT {u.columns} FROM {staging} {u.conflict}")
        else:
            db.many(
                f"INSERT INTO {u.table} ({u.columns}) VALUES ({','.join('?' * len(u.rows[0]))}) {u.conflict}", u.rows
            )


def _days_with_facts(db: SqlDialect, org: int, days: list[int]) -> set[int]:
    """Which of ``days`` have stored facts: an index probe per day, however full the day."""
    if db.pg:
        sql = "SELECT d FROM unnest(?::int[]) AS k(d) WHERE EXISTS"
        param: Any = days
    else:
        sql = "SELECT k.value FROM json_each(?) AS k WHERE EXISTS"
        param = orjson.dumps(days).decode()
    sql += " (SELECT 1 FROM org_day_members WHERE org_id = ? AND day = {d})".format(d="k.d" if db.pg else "k.value")
    return {row[0] for row in db.run(sql, (param, org)).fetchall()}


def _stored_pg(
    db: SqlDialect, org: int, keys: Sequence[tuple[int, int, int]], pairs: Sequence[tuple[int, int]]
) -> tuple[dict[tuple[int, int, int], tuple[int, int, int]], dict[tuple[int, int], tuple[int, int, int]]]:
    """Both lookups in one round trip (the live path)."""
    rows = db.rows(
        "SELECT 0, t.day, t.group_id, t.member_id, t.joined, t.departed, t.messages"
        " FROM unnest(?::int[], ?::int[], ?::int[]) AS k(d, g, m) JOIN member_days AS t"
        " ON t.org_id = ? AND t.day = k.d AND t.group_id = k.g AND t.member_id = k.m"
        " UNION ALL SELECT 1, t.day, 0, t.member_id, t.joined, t.departed, t.active"
        " FROM unnest(?::int[], ?::int[]) AS k(d, m) JOIN org_day_members AS t"
        " ON t.org_id = ? AND t.day = k.d AND t.member_id = k.m",
        (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            org,
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            org,
        ),
    )
    member_days = {(r[1], r[2], r[3]): (r[4], r[5], r[6]) for r in rows if r[0] == 0}
    members = {(r[1], r[3]): (r[4], r[5], r[6]) for r in rows if r[0] == 1}
    return member_days, members


def _stored_member_days(
    db: SqlDialect, org: int, keys: Sequence[tuple[int, int, int]]
) -> dict[tuple[int, int, int], tuple[int, int, int]]:
    if not keys:
        return {}
    select_ = "SELECT t.day, t.group_id, t.member_id, t.joined, t.departed, t.messages FROM "
    if len(keys) == 1:
        d, g, m = keys[0]
        rows = db.run(
            select_ + "member_days AS t WHERE t.org_id = ? AND t.day = ? AND t.group_id = ? AND t.member_id = ?",
            (org, d, g, m),
        ).fetchall()
    elif db.pg:
        rows = db.rows(
            select_ + "unnest(?::int[], ?::int[], ?::int[]) AS k(d, g, m) JOIN member_days AS t"
            " ON t.org_id = ? AND t.day = k.d AND t.group_id = k.g AND t.member_id = k.m",
            ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], org),
        )
    else:
        # CROSS JOIN keeps the keys driving the join (one index lookup each), see SqlDialect.pair_join
        rows = db.rows(
            select_ + "json_each(?) AS k CROSS JOIN member_days AS t WHERE t.org_id = ?"
            " AND t.day = k.value ->> 0 AND t.group_id = k.value ->> 1 AND t.member_id = k.value ->> 2",
            (orjson.dumps(keys).decode(), org),
        )
    return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}


def _stored_org_day_members(
    db: SqlDialect, org: int, pairs: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], tuple[int, int, int]]:
    if not pairs:
        return {}
    select_ = "SELECT t.day, t.member_id, t.joined, t.departed, t.active FROM "
    if len(pairs) == 1:
        d, m = pairs[0]
        rows = db.run(
            select_ + "org_day_members AS t WHERE t.org_id = ? AND t.day = ? AND t.member_id = ?", (org, d, m)
        ).fetchall()
    else:
        source, params = db.pair_join(
            pairs, "org_day_members AS t", "t.org_id = ? AND t.day = {a} AND t.member_id = {b}"
        )
        rows = db.rows(select_ + source, (*params, org))
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


# -- from scratch ------------------------------------------------------------------------------

# The rollup tables and their columns, key first; a row is a tuple in this order.
ROLLUP_TABLES = {
    "member_days": "org_id, day, group_id, member_id, joined, departed, messages",
    "org_day_members": "org_id, day, member_id, joined, departed, active",
    "group_daily": "group_id, day, org_id, joins, lefts, actives, messages, members_delta",
    "org_daily": "org_id, day, joins, lefts, actives, messages, members_delta",
}
# where each table's figures start (the columns before are the key): a row whose figures are
# all zero says nothing an absent row doesn't
_FIGURES_FROM = {"member_days": 4, "org_day_members": 3, "group_daily": 3, "org_daily": 2}

Rows = dict[str, set[tuple[int, ...]]]


@dataclass
class RollupCheck:
    """What a recount from the log found: days with figures, and per table the rows that
    differed from the stored rollups (missing, extra or with other figures)."""

    days: int
    differing: dict[str, int] = field(default_factory=dict)


def rebuild_rollups(session: Session, org_id: int, *, write: bool = True) -> RollupCheck:
    """Recount every rollup of ``org_id`` from the event log and compare with the stored ones;
    with ``write``, replace the stored ones by the recount.

    Covers ``member_days``, ``org_day_members``, the counts of ``group_daily`` and
    ``org_daily`` and their ``members_delta`` (from membership replayed from the log).
    """
    db = SqlDialect(session.connection())
    if db.pg:
        # the same lock as ingestion: nothing changes the log or the rollups meanwhile
        db.run("SELECT pg_advisory_xact_lock(?)", (7_000_000 + org_id,))
    org = session.get(Organisation, org_id)
    if org is None:
        raise NotFound(Msg("err.event.no_organisation", id=org_id), field="org_id")
    wanted = recount_rollups(db, org_id, DayCalculator(ZoneInfo(org.time_zone)))
    stored = stored_rollups(db, org_id)
    check = RollupCheck(days=sum(1 for _ in wanted["org_daily"]))
    for table, rows in wanted.items():
        differing = len(rows ^ stored[table])
        if differing:
            check.differing[table] = differing
    if write and check.differing:
        for table, rows in wanted.items():
            if table not in check.differing:
                continue
            columns = ROLLUP_TABLES[table]
            db.run(f"DELETE FROM {table} WHERE org_id = ?", (org_id,))
            db.many(f"INSERT INTO {table} ({columns}) VALUES ({','.join('?' * len(columns.split(',')))})", list(rows))
    return check


def stored_rollups(db: SqlDialect, org_id: int) -> Rows:
    """The stored rollup rows of ``org_id`` per table (rows of zero figures left out)."""
    out: Rows = {}
    for table, columns in ROLLUP_TABLES.items():
        figures = _FIGURES_FROM[table]
        out[table] = {
            tuple(row)
            for row in db.rows(f"SELECT {columns} FROM {table} WHERE org_id = ?", (org_id,))
            if any(row[figures:])
        }
    return out


def recount_rollups(db: SqlDialect, org_id: int, days: DayCalculator) -> Rows:
    """The rollup rows of ``org_id`` counted from scratch from its event log."""
    joined, left, posted = EventKind.MEMBER_JOINED, EventKind.MEMBER_LEFT, EventKind.MESSAGE_POSTED
    member_days = [
        tuple(int(v) for v in row)
        for row in db.rows(
            f"SELECT org_id, day, group_id, member_id, max(CASE WHEN {kind_in(joined)} THEN 1 ELSE 0 END),"
            f" max(CASE WHEN {kind_in(left)} THEN 1 ELSE 0 END), sum(CASE WHEN {kind_in(posted)} THEN 1 ELSE 0 END)"
            f" FROM events WHERE org_id = ? AND {kind_in(joined, left, posted)}"
            " GROUP BY org_id, day, group_id, member_id",
            (org_id,),
        )
    ]
    members: dict[tuple[int, int], list[int]] = {}
    groups: dict[tuple[int, int], list[int]] = {}
    per_day: dict[int, list[int]] = {}
    for _, d, g, m, was_joined, was_departed, messages in member_days:
        flags = members.setdefault((d, m), [0, 0, 0])
        flags[0] |= was_joined
        flags[1] |= was_departed
        flags[2] |= messages > 0
        group = groups.setdefault((g, d), [0, 0, 0, 0, 0])
        group[0] += was_joined
        group[1] += was_departed
        group[2] += messages > 0
        group[3] += messages
        per_day.setdefault(d, [0, 0, 0, 0, 0])[3] += messages
    for (d, _), flags in members.items():
        day = per_day[d]
        day[0] += flags[0]
        day[1] += flags[1]
        day[2] += flags[2]

    # end-of-day members: membership replayed from the log, as Ingestor._rebuild_spans does per member
    history: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    for member_id, event_id, group_id, kind, ts in db.rows(
        f"SELECT member_id, id, group_id, kind, ts FROM events WHERE org_id = ? AND {MEMBERSHIP_KINDS}", (org_id,)
    ):
        history[member_id].append((event_id, group_id, kind, ts))
    group_deltas: Counter[tuple[int, int]] = Counter()
    org_deltas: Counter[int] = Counter()
    for events in history.values():
        spans = replay(events)
        group_day_deltas(spans, days.day, +1, group_deltas)
        org_day_deltas(spans, days.day, +1, org_deltas)
    for key, delta in group_deltas.items():
        groups.setdefault(key, [0, 0, 0, 0, 0])[4] += delta
    for d, delta in org_deltas.items():
        per_day.setdefault(d, [0, 0, 0, 0, 0])[4] += delta

    return {
        "member_days": set(member_days),
        "org_day_members": {(org_id, d, m, *flags) for (d, m), flags in members.items()},
        "group_daily": {(g, d, org_id, *figures) for (g, d), figures in groups.items() if any(figures)},
        "org_daily": {(org_id, d, *figures) for d, figures in per_day.items() if any(figures)},
    }

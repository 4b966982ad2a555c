"""Store normalized events idempotently and maintain derived state in the caller's transaction.

Every platform event enters here, from a connector, the REST API or ``qunyun events import``.
One call of :meth:`Ingestor.ingest_batch`:

1. drops events whose id was seen before (in the batch or in the log) — a second delivery
   changes nothing;
2. resolves (and creates on first sight) groups, members and channels;
3. appends the new events to the log (``events``; message text to ``message_texts`` per the
   retention setting; orders and refunds to their tables);
4. updates derived state: per member-day facts, per group-day and per organisation-day
   rollups, membership spans and member counts — all recomputed from facts, so events may
   arrive in any order; members' display names (the latest by event time wins); the text of
   deleted messages is removed;
5. when ``live``, hands the new events to the follow-ups (``ingestion/followups.py``) in the
   same transaction: inline ones run, the others are enqueued as jobs.

The hot path issues a fixed number of set-based statements per batch (executemany), never a
statement per event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from qunyun.config import get_settings
from qunyun.db.base import now_micros
from qunyun.errors import InvalidInput, NotFound
from qunyun.ingestion.followups import LiveEvent, run_follow_ups, wanted_kinds
from qunyun.ingestion.parse import EventError, ParsedEvent, parse_event
from qunyun.ingestion.rollups import update_rollups
from qunyun.ingestion.spans import Span, group_day_deltas, org_day_deltas, replay
from qunyun.ingestion.sql import SqlDialect
from qunyun.locale import Msg
from qunyun.models import Connection, Organisation, Staff
from qunyun.models.event import MEMBERSHIP_KINDS, EventKind, MsgType, kind_in
from qunyun.timeutil import DayCalculator

# Plain ints for the hot loop (comparing with an enum member costs an attribute lookup).
JOIN = int(EventKind.MEMBER_JOINED)
LEAVE = int(EventKind.MEMBER_LEFT)
MESSAGE = int(EventKind.MESSAGE_POSTED)
DELETED = int(EventKind.MESSAGE_DELETED)
PAID = int(EventKind.ORDER_PAID)
REFUND = int(EventKind.ORDER_REFUNDED)
GROUP_CREATED = int(EventKind.GROUP_CREATED)
# Every kind is ingested by one branch of Ingestor._build; a kind added to EventKind without
# one stops the import of this module instead of being taken for another kind.
_INGESTED = {JOIN, LEAVE, MESSAGE, DELETED, PAID, REFUND, GROUP_CREATED}
_KINDS = {int(k) for k in EventKind}
if _KINDS != _INGESTED:
    raise RuntimeError(f"event kinds without ingestion: {sorted(_KINDS - _INGESTED)}")


@dataclass(slots=True)
class _Details:
    """What a batch carries besides its event rows."""

    texts: list[tuple[Any, ...]] = field(default_factory=list)
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    refunds: list[tuple[Any, ...]] = field(default_factory=list)
    created: list[tuple[ParsedEvent, int | None]] = field(default_factory=list)
    # (event_id, group_id, message id) of messages whose text is kept, and of message.deleted
    posted: list[tuple[int, int, str]] = field(default_factory=list)
    deleted: list[tuple[int, int, str]] = field(default_factory=list)
    # (event_id, member_id, ts, name) of events telling a member's name
    names: list[tuple[int, int, int, str]] = field(default_factory=list)


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    # interchange ids of the events stored by this call (not the duplicates)
    stored_ids: list[str] = field(default_factory=list)


class Ingestor:
    """Ingests batches of parsed events for one organisation on one connection.

    Call :meth:`ingest_batch` any number of times, then :meth:`flush` before the transaction
    commits.
    """

    FLUSH_FACTS = 500_000
    FLUSH_MEMBERS = 100_000

    def __init__(
        self,
        session: Session,
        org_id: int,
        *,
        platform: str,
        source: str,
        live: bool,
        connection_id: int | None = None,
    ) -> None:
        self.db = SqlDialect(session.connection())
        default_connection: int | None = None
        if self.db.pg:
            # One ingesting transaction per organisation at a time: the duplicate check, the
            # span replay and the rollup recomputation then see a stable log. (The lock, the
            # organisation's time zone and, for live events, the id of the default connection
            # their follow-ups are told of, in one round trip.)
            _, zone, default_connection = self.db.run(
                _LOCK_ZONE_CONNECTION,
                (7_000_000 + org_id, org_id, live and connection_id is None, org_id, platform, platform),
            ).fetchone()
        else:
            zone = session.scalar(select(Organisation.time_zone).where(Organisation.id == org_id))
        if zone is None:
            raise NotFound(Msg("err.event.no_organisation", id=org_id), field="org_id")
        self.session = session
        self.org_id = org_id
        self.platform = platform
        self.source = source
        self.live = live
        if connection_id is not None:
            from qunyun.connections.service import get_connection

            get_connection(session, org_id, connection_id)  # NotFound for another organisation's
        self._connection_id = connection_id if connection_id is not None else default_connection
        # Kinds that become LiveEvents for the follow-ups (none for history).
        self._wanted: frozenset[int] = frozenset()
        if live:
            from qunyun.modules import load_domain_modules

            load_domain_modules()
            self._wanted = wanted_kinds()
        self.days = DayCalculator(ZoneInfo(zone))
        # Derived state is brought up to date by flush(): once per API call, once per import
        # (or whenever this much has piled up), so an import touches each rollup key once.
        # (day, group_id, member_id) → [org, day, group, member, joined, departed, messages]
        self._facts: dict[tuple[int, Any, Any], list[Any]] = {}
        self._dirty_members: set[int] = set()
        self._pending: list[LiveEvent] = []
        self.group_ids: dict[str, int] = {}
        self.member_ids: dict[str, int] = {}
        self.channel_ids: dict[str, int] = {}
        # Earliest instant known per group / member id: created_at and first_seen_at follow the
        # earliest event, whatever the arrival order.
        self.group_first: dict[int, int] = {}
        self.member_first: dict[int, int] = {}
        self._growth: dict[str, int] = {}
        if not 1 <= len(platform) <= 16:
            raise InvalidInput(Msg("err.event.platform_length", limit=16), field="platform")
        retention = get_settings().message_text_retention_days
        self.text_cutoff = None if retention == 0 else now_micros() - retention * 86_400_000_000

    # -- resolution of external ids -------------------------------------------------------

    def _resolve(
        self,
        cache: dict[str, int],
        table: str,
        key_column: str,
        wanted: dict[str, tuple[Any, ...]],
        insert_sql: str,
        scope_sql: str,
        scope: tuple[Any, ...],
        time_column: str | None = None,
        first: dict[int, int] | None = None,
        finish: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None,
    ) -> None:
        """Fill ``cache`` with the ids of ``wanted``'s keys, inserting the rows of those not
        stored yet (each passed through ``finish`` first, when given)."""
        missing = [k for k in wanted if k not in cache]
        if not missing:
            return
        lookup = (
            f"SELECT {key_column}, id, {time_column or 'NULL'} FROM {table} WHERE {scope_sql} AND {key_column} {{in_}}"
        )
        for key, row_id, ts in self.db.select_in(lookup, scope, missing):
            cache[key] = row_id
            if first is not None:
                first[row_id] = ts
        new = [k for k in missing if k not in cache]
        if new:
            rows = [wanted[k] for k in new]
            self.db.many(insert_sql, rows if finish is None else [finish(row) for row in rows])
            self._note_growth(table, len(new))
            for key, row_id, ts in self.db.select_in(lookup, scope, new):
                cache[key] = row_id
                if first is not None:
                    first[row_id] = ts

    def _note_growth(self, table: str, added: int) -> None:
        """Refresh PostgreSQL's statistics of a table this transaction grew a lot.

        Without them the planner takes a freshly filled table for empty and answers the
        external-id lookups with a scan per batch (seconds each, on a large import).
        """
        if not self.db.pg:
            return
        grown = self._growth.get(table, 0) + added
        if grown >= 2000:
            self.db.run(f"ANALYZE {table}")
            grown = 0
        self._growth[table] = grown

    def _lower_first_seen(
        self, table: str, column: str, earliest: dict[str, int], cache: dict[str, int], first: dict[int, int]
    ) -> None:
        updates = []
        for key, ts in earliest.items():
            row_id = cache[key]
            if ts < first[row_id]:
                first[row_id] = ts
                updates.append((ts, row_id, ts))
        self.db.many(f"UPDATE {table} SET {column} = ? WHERE id = ? AND {column} > ?", updates)

    def _screen(
        self, batch: list[ParsedEvent], result: IngestResult
    ) -> tuple[list[ParsedEvent], list[ParsedEvent], dict[str, int], dict[str, int]]:
        """One pass over the batch: drop repeated ids, note each group's and member's earliest
        instant, and pick out the events naming a group, member or channel not seen yet."""
        groups, members, channels = self.group_ids, self.member_ids, self.channel_ids
        seen: set[str] = set()
        events: list[ParsedEvent] = []
        newcomers: list[ParsedEvent] = []
        earliest_group: dict[str, int] = {}
        earliest_member: dict[str, int] = {}
        for e in batch:
            external_id = e.external_id
            if external_id in seen:
                result.duplicates += 1
                continue
            seen.add(external_id)
            events.append(e)
            g, m, ts, x = e.group, e.member, e.ts, e.extra
            new = False
            if g is not None:
                if earliest_group.get(g, ts + 1) > ts:
                    earliest_group[g] = ts
                new = g not in groups
            if m is not None:
                if earliest_member.get(m, ts + 1) > ts:
                    earliest_member[m] = ts
                new = new or m not in members
            if x is not None:
                inviter, channel = x.get("inviter"), x.get("channel")
                if inviter is not None:
                    if earliest_member.get(inviter, ts + 1) > ts:
                        earliest_member[inviter] = ts
                    new = new or inviter not in members
                new = new or (channel is not None and channel not in channels)
            if new:
                newcomers.append(e)
        if newcomers:
            # A redelivery must not create anything either: storage alone would ignore it
            # (ON CONFLICT DO NOTHING), but the group or member would already exist by then.
            stored = self._stored_newcomers(newcomers)
            if stored:
                result.duplicates += len(stored)
                kept = [e for e in events if e.external_id not in stored]
                return self._screen(kept, IngestResult())
        return events, newcomers, earliest_group, earliest_member

    def _stored_newcomers(self, newcomers: list[ParsedEvent]) -> set[str]:
        """The external ids among ``newcomers`` that the log has already.

        On PostgreSQL the same round trip also looks up the stored groups and members they name
        (into the caches, as :meth:`_resolve` would): a live batch, whose ingestor starts with
        empty caches, then makes one lookup instead of three."""
        ids = [e.external_id for e in newcomers]
        if not self.db.pg:
            return {row[0] for row in self.db.select_in(_STORED_EVENTS, (self.org_id,), ids)}
        groups, members = self.group_ids, self.member_ids
        group_keys: set[str] = set()
        member_keys: set[str] = set()
        for e in newcomers:
            if e.group is not None and e.group not in groups:
                group_keys.add(e.group)
            if e.member is not None and e.member not in members:
                member_keys.add(e.member)
            inviter = e.inviter if e.extra is not None else None
            if inviter is not None and inviter not in members:
                member_keys.add(inviter)
        org, platform = self.org_id, self.platform
        stored: set[str] = set()
        for source, key, row_id, ts in self.db.run(
            _STORED_EVENTS_GROUPS_MEMBERS, (ids, org, list(group_keys), org, platform, list(member_keys), org, platform)
        ).fetchall():
            if source == 0:
                stored.add(key)
            elif source == 1:
                groups[key] = row_id
                self.group_first[row_id] = ts
            else:
                members[key] = row_id
                self.member_first[row_id] = ts
        return stored

    def _resolve_all(
        self, newcomers: list[ParsedEvent], earliest_group: dict[str, int], earliest_member: dict[str, int]
    ) -> None:
        groups: dict[str, tuple[Any, ...]] = {}
        members: dict[str, tuple[Any, ...]] = {}
        channels: dict[str, tuple[Any, ...]] = {}
        org, platform = self.org_id, self.platform
        known_groups, known_members, known_channels = self.group_ids, self.member_ids, self.channel_ids
        for e in newcomers:
            g, m = e.group, e.member
            if g is not None and g not in known_groups:
                row = groups.get(g)
                if row is None or e.kind == GROUP_CREATED:
                    name = e.name if e.kind == GROUP_CREATED and e.name else (row[3] if row else g)
                    groups[g] = (org, platform, g, name, "normal", "", 500, "active", 0, earliest_group[g], None)
            if m is not None and m not in known_members:
                members[m] = (org, platform, m, "", "", "", "", "[]", earliest_member[m])
            if e.extra is None:
                continue
            inviter, channel = e.inviter, e.channel
            if inviter is not None and inviter not in known_members:
                members[inviter] = (org, platform, inviter, "", "", "", "", "[]", earliest_member[inviter])
            if channel is not None and channel not in known_channels and channel not in channels:
                channels[channel] = (org, channel, channel, "other", 0, 0, 0, 0, 0, now_micros())
        self._resolve(
            self.group_ids,
            "groups",
            "external_id",
            groups,
            "INSERT INTO groups (org_id, platform, external_id, name, tier, region, capacity, status,"
            " member_count, created_at, connection_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            "org_id = ? AND platform = ?",
            (org, platform),
            "created_at",
            self.group_first,
            # New groups belong to the connection their events came through (looked up only
            # when a group is new: a live message into a known group costs no query for it).
            lambda row: (*row[:-1], self.connection_id),
        )
        self._resolve(
            self.member_ids,
            "members",
            "external_id",
            members,
            "INSERT INTO members (org_id, platform, external_id, display_name, gender, occupation, region,"
            " interests, first_seen_at) VALUES (?,?,?,?,?,?,?,?,?)",
            "org_id = ? AND platform = ?",
            (org, platform),
            "first_seen_at",
            self.member_first,
        )
        self._resolve(
            self.channel_ids,
            "channels",
            "code",
            channels,
            "INSERT INTO channels (org_id, code, name, kind, cost_per_touch_fen, reward_per_member_fen,"
            " fixed_cost_fen, touches, expected_rate_bp, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            "org_id = ?",
            (org,),
        )
        self._lower_first_seen("groups", "created_at", earliest_group, known_groups, self.group_first)
        self._lower_first_seen("members", "first_seen_at", earliest_member, known_members, self.member_first)

    # -- the batch ---------------------------------------------------------------------------

    def ingest_batch(self, batch: list[ParsedEvent]) -> IngestResult:
        """Store ``batch`` and update derived state; returns counts of stored and duplicates."""
        result = IngestResult()
        events, newcomers, earliest_group, earliest_member = self._screen(batch, result)
        if not events:
            return result
        self._resolve_all(newcomers, earliest_group, earliest_member)
        if self.db.pg:
            # PostgreSQL numbers the rows itself; RETURNING tells which were new.
            rows, _ = self._build(events, [None] * len(events), details=False)
            kept_ids, events, texts_stored = self._insert_events_pg(rows, events)
            result.duplicates += len(rows) - len(events)
            rows, details = self._build(events, kept_ids, details=True)
            if texts_stored:
                details.texts = [t for t in details.texts if t[0] not in texts_stored]
        else:
            # Under SQLite's write lock the ids are reserved up front, so the rows and their
            # derived facts are built in one pass; a redelivery found by the insert is undone.
            ids = self.db.allocate_ids("events", len(events))
            rows, details = self._build(events, ids, details=True)
            rows, events = self._insert_events_sqlite(rows, events, details, result)
        result.stored = len(rows)
        result.stored_ids = [e.external_id for e in events]
        if rows:
            self._store_details(rows, details, events)
            if len(self._facts) >= self.FLUSH_FACTS or len(self._dirty_members) >= self.FLUSH_MEMBERS:
                self.flush()
        return result

    # Batches up to this size are inserted with one INSERT … SELECT FROM unnest(arrays) statement
    # (PostgreSQL).
    ARRAY_ROWS = 100
    EVENT_COLUMNS = (
        "org_id, external_id, kind, ts, day, group_id, member_id, msg_type, length, scene, channel_id,"
        " inviter_id, reason, message_ref, source"
    )
    # The columns' types, in EVENT_COLUMNS' order: the COPY staging table's, and the arrays'.
    EVENT_TYPES = (
        "int", "varchar(128)", "smallint", "bigint", "int", "int", "int", "smallint", "int", "varchar(16)",
        "int", "int", "varchar(16)", "varchar(200)", "varchar(32)",
    )  # fmt: skip

    def _insert_events_sqlite(
        self, rows: list[tuple[Any, ...]], events: list[ParsedEvent], details: _Details, result: IngestResult
    ) -> tuple[list[tuple[Any, ...]], list[ParsedEvent]]:
        inserted = self.db.many(
            f"INSERT INTO events (id, {self.EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (org_id, external_id) DO NOTHING",
            rows,
        )
        if inserted == len(rows):
            return rows, events
        stored_ids = {
            r[0]
            for r in self.db.run(
                "SELECT id FROM events WHERE org_id = ? AND id >= ? AND id <= ?", (self.org_id, rows[0][0], rows[-1][0])
            ).fetchall()
        }
        keep = [i for i, row in enumerate(rows) if row[0] in stored_ids]
        dropped = [(row, e) for row, e in zip(rows, events, strict=True) if row[0] not in stored_ids]
        result.duplicates += len(dropped)
        self._undo(dropped, details)
        return [rows[i] for i in keep], [events[i] for i in keep]

    def _insert_events_pg(
        self, rows: list[tuple[Any, ...]], events: list[ParsedEvent]
    ) -> tuple[list[int], list[ParsedEvent], set[int]]:
        """Insert the event rows that are new; returns their ids and events, and the ids of the
        events whose message text went in with them."""
        conflict = " ON CONFLICT (org_id, external_id) DO NOTHING RETURNING external_id, id"
        texts_stored: set[int] = set()
        if len(rows) <= self.ARRAY_ROWS:
            # A live batch carries one event or a few dozen: one statement, where COPY would cost
            # a temporary table's creation, emptying and loading in every transaction. Its rows
            # go as one array per column, so its text is the same whatever the number of rows:
            # the driver prepares it once per connection, and neither psycopg nor PostgreSQL
            # parses and plans a statement per batch (a VALUES list of the batch's length did).
            # The texts to keep go in the same round trip, except those of messages with a
            # platform id (a deletion stored before may have to withhold them: _store_details).
            cutoff = self.text_cutoff
            texts = (
                [(e.external_id, e.text) for e in events
                 if e.kind == MESSAGE and e.text is not None and e.ts >= cutoff and e.message is None]
                if cutoff is not None else []
            )  # fmt: skip
            arrays = tuple(map(list, zip(*rows, strict=True)))[1:]
            if texts:
                inserted = self.db.run(
                    _EVENTS_AND_TEXTS_FROM_ARRAYS, (*arrays, [t[0] for t in texts], [t[1] for t in texts])
                )
                found = inserted.fetchall()
                with_text = {t[0] for t in texts}
                texts_stored = {event_id for external_id, event_id in found if external_id in with_text}
                return (*self._kept(dict(found), events), texts_stored)
            inserted = self.db.run(_EVENTS_FROM_ARRAYS + conflict, arrays)
        else:
            self.db.copy_in(
                "ingest_events",
                self.EVENT_COLUMNS,
                ", ".join(f"{c} {t}" for c, t in zip(self.EVENT_COLUMNS.split(", "), self.EVENT_TYPES, strict=True)),
                (row[1:] for row in rows),
            )
            inserted = self.db.run(
                f"INSERT INTO events ({self.EVENT_COLUMNS}) SELECT {self.EVENT_COLUMNS} FROM ingest_events" + conflict
            )
        return (*self._kept(dict(inserted.fetchall()), events), texts_stored)

    @staticmethod
    def _kept(assigned: dict[str, int], events: list[ParsedEvent]) -> tuple[list[int], list[ParsedEvent]]:
        """The ids the insert ``assigned`` (by external id) and the events that got one."""
        kept_ids, kept_events = [], []
        for e in events:
            event_id = assigned.get(e.external_id)
            if event_id is not None:
                kept_ids.append(event_id)
                kept_events.append(e)
        return kept_ids, kept_events

    def _build(
        self, events: list[ParsedEvent], ids: list[Any], *, details: bool
    ) -> tuple[list[tuple[Any, ...]], _Details]:
        """The event rows; with ``details``, also the facts (added to ``self._facts``), message
        texts, orders, refunds, group creations, deletions and member names they carry."""
        day = self.days.day
        gids, mids, cids = self.group_ids, self.member_ids, self.channel_ids
        org, source = self.org_id, self.source
        facts, dirty, cutoff = self._facts, self._dirty_members, self.text_cutoff
        out = _Details()
        rows: list[tuple[Any, ...]] = []
        append = rows.append
        for event_id, e in zip(ids, events, strict=True):
            g, m, x, kind, ts = e.group, e.member, e.extra, e.kind, e.ts
            d = day(ts)
            group_id = gids[g] if g is not None else None
            member_id = mids[m] if m is not None else None
            message = e.message
            if x is None:
                append(
                    (event_id, org, e.external_id, kind, ts, d, group_id, member_id,
                     e.msg_type, e.length, None, None, None, None, message, source)
                )  # fmt: skip
            else:
                channel, inviter = x.get("channel"), x.get("inviter")
                append(
                    (event_id, org, e.external_id, kind, ts, d, group_id, member_id,
                     e.msg_type, e.length, x.get("scene"), cids[channel] if channel is not None else None,
                     mids[inviter] if inviter is not None else None, x.get("reason"), message, source)
                )  # fmt: skip
            if not details:
                continue
            if kind in (MESSAGE, JOIN, LEAVE):
                key = (d, group_id, member_id)
                fact = facts.get(key)
                if fact is None:
                    fact = facts[key] = [org, d, group_id, member_id, 0, 0, 0]
                if kind == MESSAGE:
                    fact[6] += 1
                    if cutoff is not None and e.text is not None and ts >= cutoff:
                        out.texts.append((event_id, ts, e.text))
                        if message is not None:
                            out.posted.append((event_id, group_id, message))  # type: ignore[arg-type]
                else:
                    fact[4 if kind == JOIN else 5] += 1
                    dirty.add(member_id)  # type: ignore[arg-type]
                if e.member_name:
                    out.names.append((event_id, member_id, ts, e.member_name))  # type: ignore[arg-type]
            elif kind == PAID:
                out.orders.append((org, e.order, member_id, group_id, e.product or "", e.amount_fen, ts, event_id))
            elif kind == REFUND:
                out.refunds.append((org, e.order, e.amount_fen, ts, event_id))
            elif kind == GROUP_CREATED:
                out.created.append((e, group_id))
            elif kind == DELETED:
                out.deleted.append((event_id, group_id, message))  # type: ignore[arg-type]
            else:
                raise ValueError(f"no ingestion for event kind {kind!r}")  # parse_event admits no other
        return rows, out

    def _undo(self, dropped: list[tuple[tuple[Any, ...], ParsedEvent]], details: _Details) -> None:
        """Take back what ``_build`` derived from events the log already had."""
        facts = self._facts
        gone = set()
        for row, e in dropped:
            gone.add(row[0])
            if e.kind in (MESSAGE, JOIN, LEAVE):
                key = (row[5], row[6], row[7])
                fact = facts[key]
                fact[6 if e.kind == MESSAGE else 4 if e.kind == JOIN else 5] -= 1
                if not (fact[4] or fact[5] or fact[6]):
                    del facts[key]
        details.texts = [t for t in details.texts if t[0] not in gone]
        details.orders = [o for o in details.orders if o[7] not in gone]
        details.refunds = [r for r in details.refunds if r[4] not in gone]
        gone_events = {id(e) for _, e in dropped}
        details.created = [c for c in details.created if id(c[0]) not in gone_events]
        details.posted = [p for p in details.posted if p[0] not in gone]
        details.deleted = [p for p in details.deleted if p[0] not in gone]
        details.names = [n for n in details.names if n[0] not in gone]

    def flush(self) -> None:
        """Bring rollups, spans and member counts up to date; run the follow-ups (live only)."""
        if self._facts:
            self._update_rollups(self._facts)
            self._facts = {}
        if self._dirty_members:
            self._rebuild_spans(sorted(self._dirty_members))
            self._dirty_members = set()
        if self._pending:
            pending, self._pending = self._pending, []
            run_follow_ups(self.session, self.org_id, pending)

    def _store_details(self, rows: list[tuple[Any, ...]], details: _Details, events: list[ParsedEvent]) -> None:
        db = self.db
        texts = details.texts
        if details.posted:
            # A message whose deletion the log already has (events may arrive in any order)
            # keeps no text.
            gone = self._deleted_before(details.posted)
            if gone:
                texts = [t for t in texts if t[0] not in gone]
        db.many("INSERT INTO message_texts (event_id, ts, text) VALUES (?,?,?)", texts)
        if details.deleted:
            # After the texts above: a message and its deletion may come in one batch.
            db.many(
                "DELETE FROM message_texts WHERE event_id IN (SELECT id FROM events"
                f" WHERE group_id = ? AND message_ref = ? AND {kind_in(EventKind.MESSAGE_POSTED)})",
                [(group_id, ref) for _, group_id, ref in details.deleted],
            )
        if details.names:
            self._apply_names(details.names)
        db.many(
            "INSERT INTO orders (org_id, external_id, member_id, group_id, product, amount_fen, paid_at, event_id)"
            " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (org_id, external_id) DO NOTHING",
            details.orders,
        )
        db.many(
            "INSERT INTO refunds (org_id, order_ref, amount_fen, refunded_at, event_id) VALUES (?,?,?,?,?)",
            details.refunds,
        )
        for e, group_id in details.created:
            assert group_id is not None  # group.created names its group
            self._apply_group_created(e, group_id)
        wanted = self._wanted
        if wanted:
            live = [(r, e) for r, e in zip(rows, events, strict=True) if r[3] in wanted]
            if live:
                connection_id = self.connection_id
                self._pending.extend(_live_event(r, e, connection_id) for r, e in live)

    def _deleted_before(self, posted: list[tuple[int, int, str]]) -> set[int]:
        """The event ids among ``posted`` whose message the log records as deleted."""
        db = self.db
        deleted = kind_in(EventKind.MESSAGE_DELETED)
        pairs = sorted({(group_id, ref) for _, group_id, ref in posted})
        found: set[tuple[int, str]] = set()
        if db.pg:
            sql = (
                "SELECT e.group_id, e.message_ref FROM unnest(?::int[], ?::varchar[]) AS k(g, r)"
                f" JOIN events e ON e.group_id = k.g AND e.message_ref = k.r WHERE e.{deleted}"
            )
            found.update(db.run(sql, ([p[0] for p in pairs], [p[1] for p in pairs])).fetchall())
        else:
            import orjson

            sql = (
                "SELECT e.group_id, e.message_ref FROM json_each(?) AS k CROSS JOIN events e"
                f" WHERE e.group_id = (k.value ->> 0) AND e.message_ref = (k.value ->> 1) AND e.{deleted}"
            )
            for start in range(0, len(pairs), 5000):
                found.update(db.run(sql, (orjson.dumps(pairs[start : start + 5000]).decode(),)).fetchall())
        if not found:
            return set()
        return {event_id for event_id, group_id, ref in posted if (group_id, ref) in found}

    def _apply_names(self, names: list[tuple[int, int, int, str]]) -> None:
        """Members take the name of their latest event by event time (never an empty one, and
        never after their erasure)."""
        latest: dict[int, tuple[int, str]] = {}
        for _, member_id, ts, name in names:
            held = latest.get(member_id)
            if held is None or ts >= held[0]:
                latest[member_id] = (ts, name)
        self.db.many(
            "UPDATE members SET display_name = ?, display_name_at = ? WHERE id = ? AND erased_at IS NULL"
            " AND (display_name_at IS NULL OR display_name_at <= ?)",
            [(name, ts, member_id, ts) for member_id, (ts, name) in latest.items()],
        )

    @property
    def connection_id(self) -> int:
        """The connection the events come through: the one given, else the organisation's
        default connection for the platform (created on first use)."""
        if self._connection_id is None:
            self._connection_id = default_connection_id(self.session, self.org_id, self.platform)
        return self._connection_id

    def _apply_group_created(self, e: ParsedEvent, group_id: int) -> None:
        owner_id = None
        if e.owner:
            owner_id = self.session.scalar(
                select(Staff.id).where(Staff.org_id == self.org_id, Staff.username == e.owner)
            )
        self.db.run(
            "UPDATE groups SET name = ?, capacity = coalesce(?, capacity), region = coalesce(?, region),"
            " tier = coalesce(?, tier), owner_id = coalesce(?, owner_id) WHERE id = ?",
            (e.name, e.capacity, e.region, e.tier, owner_id, group_id),
        )

    def _update_rollups(self, facts: dict[tuple[int, int, int], list[int]]) -> None:
        update_rollups(self.db, self.org_id, facts)

    def _rebuild_spans(self, member_ids: list[int]) -> None:
        """Replay the membership history of ``member_ids`` and apply the difference."""
        db, org = self.db, self.org_id
        old: dict[int, list[Span]] = defaultdict(list)
        for row in db.select_in(
            "SELECT member_id, group_id, joined_at, left_at, join_event_id, leave_event_id"
            " FROM membership_spans WHERE member_id {in_}",
            (),
            member_ids,
        ):
            old[row[0]].append(Span(row[1], row[2], row[3], row[4], row[5]))
        history: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
        for row in db.select_in(
            f"SELECT member_id, id, group_id, kind, ts FROM events WHERE member_id {{in_}} AND {MEMBERSHIP_KINDS}",
            (),
            member_ids,
        ):
            history[row[0]].append((row[1], row[2], row[3], row[4]))
        group_deltas: Counter[tuple[int, int]] = Counter()
        org_deltas: Counter[int] = Counter()
        count_deltas: Counter[int] = Counter()
        changed: list[int] = []
        new_rows: list[tuple[Any, ...]] = []
        day = self.days.day
        for member_id in member_ids:
            before = old.get(member_id, [])
            after = replay(history.get(member_id, ()))
            if len(before) == len(after) and set(before) == set(after):
                continue
            changed.append(member_id)
            group_day_deltas(before, day, -1, group_deltas)
            group_day_deltas(after, day, +1, group_deltas)
            org_day_deltas(before, day, -1, org_deltas)
            org_day_deltas(after, day, +1, org_deltas)
            for s in before:
                if s.left_at is None:
                    count_deltas[s.group_id] -= 1
            for s in after:
                if s.left_at is None:
                    count_deltas[s.group_id] += 1
                new_rows.append((org, s.group_id, member_id, s.joined_at, s.left_at, s.join_event_id, s.leave_event_id))
        if not changed:
            return
        for start in range(0, len(changed), 5000):
            chunk = changed[start : start + 5000]
            if db.pg:
                db.run("DELETE FROM membership_spans WHERE member_id = ANY(?)", (chunk,))
            else:
                db.run(f"DELETE FROM membership_spans WHERE member_id IN ({','.join('?' * len(chunk))})", tuple(chunk))
        db.many(
            "INSERT INTO membership_spans (org_id, group_id, member_id, joined_at, left_at, join_event_id,"
            " leave_event_id) VALUES (?,?,?,?,?,?,?)",
            new_rows,
        )
        db.many(
            "INSERT INTO group_daily (group_id, day, org_id, joins, lefts, actives, messages, members_delta)"
            " VALUES (?,?,?,0,0,0,0,?) ON CONFLICT (group_id, day) DO UPDATE SET"
            " members_delta = group_daily.members_delta + excluded.members_delta",
            [(g, d, org, delta) for (g, d), delta in group_deltas.items() if delta],
        )
        db.many(
            "INSERT INTO org_daily (org_id, day, joins, lefts, actives, messages, members_delta)"
            " VALUES (?,?,0,0,0,0,?) ON CONFLICT (org_id, day) DO UPDATE SET"
            " members_delta = org_daily.members_delta + excluded.members_delta",
            [(org, d, delta) for d, delta in org_deltas.items() if delta],
        )
        db.many(
            "UPDATE groups SET member_count = member_count + ? WHERE id = ?",
            [(delta, g) for g, delta in count_deltas.items() if delta],
        )


_LOCK_ZONE_CONNECTION = (
    "SELECT pg_advisory_xact_lock(?), (SELECT time_zone FROM organisations WHERE id = ?),"
    " (SELECT id FROM connections WHERE ? AND org_id = ? AND name = ? AND platform = ?)"
)
_STORED_EVENTS = "SELECT external_id FROM events WHERE org_id = ? AND external_id {in_}"
# (PostgreSQL) the events of a batch stored already, and the stored groups and members it names.
# The keys drive each join (one probe of the unique index per key): with `external_id = ANY(…)`
# the generic plan of the prepared statement read all the organisation's groups instead.
_STORED_EVENTS_GROUPS_MEMBERS = (
    "SELECT 0, t.external_id, NULL::int, NULL::bigint FROM unnest(?::varchar[]) AS k(x)"
    " JOIN events AS t ON t.org_id = ? AND t.external_id = k.x"
    " UNION ALL SELECT 1, t.external_id, t.id, t.created_at FROM unnest(?::varchar[]) AS k(x)"
    " JOIN groups AS t ON t.org_id = ? AND t.platform = ? AND t.external_id = k.x"
    " UNION ALL SELECT 2, t.external_id, t.id, t.first_seen_at FROM unnest(?::varchar[]) AS k(x)"
    " JOIN members AS t ON t.org_id = ? AND t.platform = ? AND t.external_id = k.x"
)
_EVENTS_FROM_ARRAYS = (
    f"INSERT INTO events ({Ingestor.EVENT_COLUMNS}) SELECT * FROM unnest("
    + ", ".join(f"?::{t.partition('(')[0]}[]" for t in Ingestor.EVENT_TYPES)
    + ")"
)
# (PostgreSQL) the same, and the message texts of the new events among them, in one statement
_EVENTS_AND_TEXTS_FROM_ARRAYS = (
    f"WITH e AS ({_EVENTS_FROM_ARRAYS} ON CONFLICT (org_id, external_id) DO NOTHING RETURNING external_id, id, ts),"
    " t AS (INSERT INTO message_texts (event_id, ts, text) SELECT e.id, e.ts, k.text FROM e"
    " JOIN unnest(?::varchar[], ?::text[]) AS k(x, text) ON k.x = e.external_id)"
    " SELECT external_id, id FROM e"
)


def _live_event(row: tuple[Any, ...], e: ParsedEvent, connection_id: int) -> LiveEvent:
    """The follow-ups' view of a stored event: its row (internal ids) and what it said."""
    msg_type = row[8]
    return LiveEvent(
        event_id=row[0],
        external_id=row[2],
        kind=EventKind(row[3]),
        ts=row[4],
        connection_id=connection_id,
        group_id=row[6],
        group=e.group,
        member_id=row[7],
        member=e.member,
        member_name=e.member_name,
        msg_type=MsgType(msg_type) if msg_type is not None else None,
        text=e.text,
        message=e.message,
        channel=e.channel,
        channel_id=row[11],
        link=e.link,
        inviter=e.inviter,
        inviter_id=row[12],
        scene=row[10],
        reason=row[13],
        order=e.order,
        amount_fen=e.amount_fen,
        product=e.product,
    )


def default_connection_id(session: Session, org_id: int, platform: str) -> int:
    """The connection events of ``platform`` belong to when the caller names none: the
    organisation's default connection for that platform (created on first use)."""
    from qunyun.connections.service import default_connection

    # Its id alone when it exists (every live batch asks): no Connection object to load.
    found = session.connection().execute(_DEFAULT_CONNECTION, {"org": org_id, "platform": platform}).scalar()
    if found is not None:
        return int(found)
    return default_connection(session, org_id, platform).id


_connections = Connection.__table__
_DEFAULT_CONNECTION = select(_connections.c.id).where(
    _connections.c.org_id == bindparam("org"),
    _connections.c.name == bindparam("platform"),
    _connections.c.platform == bindparam("platform"),
)


def parse_events(events: Iterable[Mapping[str, Any]]) -> list[ParsedEvent]:
    """Validate dicts; the first bad one raises InvalidInput naming its index and field."""
    parsed = []
    for index, obj in enumerate(events):
        try:
            parsed.append(parse_event(obj))
        except EventError as exc:
            raise InvalidInput(
                Msg("err.event.at_index", index=index, reason=exc.reason()), field=exc.field, index=index
            ) from None
    return parsed


def at_line(error: InvalidInput, line: int) -> InvalidInput:
    """The error of event ``index`` of a batch (from :func:`parse_events`) told by its line in the
    request body instead."""
    reason = error.msg.values.get("reason") if error.msg is not None else None
    message = Msg("err.event.at_line", line=line, reason=reason if reason is not None else error.message)
    return InvalidInput(message, field=error.field, **{**error.detail, "line": line})


def ingest(
    session: Session,
    org_id: int,
    events: Iterable[Mapping[str, Any]],
    *,
    platform: str,
    source: str,
    live: bool = True,
    connection_id: int | None = None,
) -> IngestResult:
    """Ingest interchange-format v1 events (dicts) for ``org_id``; see PRODUCT.md.

    Stores each event once per id, updates memberships, member counts and rollups, and (when
    ``live``) runs the follow-ups, all in the caller's transaction. Groups it creates belong to
    ``connection_id`` (None: the organisation's default connection for ``platform``). Raises
    ``qunyun.errors.InvalidInput`` naming the event index and field on bad input; then
    nothing is written.
    """
    parsed = parse_events(events)
    session.flush()
    ingestor = Ingestor(session, org_id, platform=platform, source=source, live=live, connection_id=connection_id)
    result = ingestor.ingest_batch(parsed)
    ingestor.flush()
    return result

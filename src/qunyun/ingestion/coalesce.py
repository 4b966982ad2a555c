"""Group commit for live posts: concurrent ``POST /api/v1/events`` of one organisation share a
transaction.

Each ingesting transaction holds its organisation's ingest lock (an advisory lock on
PostgreSQL, the write lock on SQLite) from its first statement to its commit, so posts of one
organisation are ingested one transaction at a time however many threads and processes serve
them. Alone, every post would pay the lock, the lookups, the rollup statements and a commit of
its own, and a busy organisation would queue behind its commits.

Here the posts that arrive while a transaction is running wait in their organisation's lane.
When it commits, the first waiting post leads the next transaction: it takes every post waiting
behind it (up to :data:`MAX_EVENTS` events), ingests their events as one batch, writes one audit
entry per post, commits once, and tells each post what became of its own events. A lone post is a
batch of one, so a quiet organisation sees no delay.

A post authenticated by an API token this process has verified before is routed to its
organisation's lane at once, and its transaction verifies the token (every token of the batch in
one query): revoked, expired or disabled since, the post is refused and the others go on.

The batch is all or nothing, a post's events too: if the shared transaction fails for any reason
(a follow-up's error, a constraint, the database), each of its posts is retried alone in a
transaction of its own, so one post's failure is that post's answer only and never another's.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import anyio
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.auth.tokens import live_api_tokens, touch_token
from qunyun.config import get_settings
from qunyun.db.session import make_engine, unit_of_work
from qunyun.errors import Forbidden, Unauthenticated
from qunyun.ingestion.event import ParsedEvent
from qunyun.ingestion.service import Ingestor
from qunyun.locale import Msg
from qunyun.models import AuditLog, Role
from qunyun.timeutil import utcnow

# A transaction takes posts up to this many events in all (at least one post, however large).
MAX_EVENTS = 2_000

# Ingesting platform events creates members, groups and memberships: it is an integration's job
# (or a lead's), never a scoped role's, which could otherwise pull anyone into its own scope.
INGEST_ROLES = frozenset({Role.LEAD, Role.INTEGRATION})

# The audit entry of a post (``audit.service.entry``'s values), made once its events are in from
# the poster's scope and the post's (stored, duplicates); the batch's entries go in one INSERT.
AuditEntry = Callable[[Scope, int, int], dict[str, Any]]


_AUDIT_INSERT = insert(AuditLog)


def check_ingest_scope(scope: Scope) -> None:
    """Leads and integration tokens post events for their organisation; every other role is
    Forbidden. A scoped role (owner, admin, operator) must not ingest: a ``member.joined`` of any
    member's external id into one of its groups would put that member in its scope."""
    if scope.role not in INGEST_ROLES:
        raise Forbidden(Msg("edge.ingest_forbidden"))


@dataclass
class Counts:
    stored: int
    duplicates: int


@dataclass
class _Post:
    org_id: int
    platform: str
    events: list[ParsedEvent]
    audit: AuditEntry
    # Who posts: a scope already authenticated, or the hash of an API token that the post's
    # transaction verifies (with every other token of the batch, in one query).
    scope: Scope | None
    token_hash: str | None
    wake: threading.Event = field(default_factory=threading.Event)
    counts: Counts | None = None
    error: BaseException | None = None


@dataclass
class _Lane:
    waiting: deque[_Post] = field(default_factory=deque)
    busy: bool = False


class Coalescer:
    """The lanes of one process: one per (organisation, platform)."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._lock = threading.Lock()
        self._lanes: dict[tuple[int, str], _Lane] = {}
        # Transactions run and posts they carried (for the tests and the benchmark).
        self.transactions = 0
        self.posts = 0

    def ingest(
        self,
        org_id: int,
        platform: str,
        events: list[ParsedEvent],
        audit: AuditEntry,
        *,
        scope: Scope | None = None,
        token_hash: str | None = None,
    ) -> Counts:
        """Ingest ``events`` (already parsed) for ``org_id`` live, from the API, with the audit
        entry ``audit`` makes.

        The poster is ``scope`` (authenticated already, and allowed to ingest) or the holder of
        the API token with ``token_hash``, which must still be live and belong to a lead or an
        integration of ``org_id`` when the transaction runs (else Unauthenticated or Forbidden).
        Blocks until the transaction that carried the events has committed; returns what became
        of them, or raises what their own transaction raised."""
        if (scope is None) == (token_hash is None):
            raise ValueError("a post needs either a scope or a token hash")
        post = _Post(org_id, platform, events, audit, scope, token_hash)
        key = (org_id, platform)
        with self._lock:
            lane = self._lanes.setdefault(key, _Lane())
            lane.waiting.append(post)
            lead = not lane.busy
            lane.busy = True
        if not lead:
            post.wake.wait()
        if post.counts is None and post.error is None:
            self._lead(key, lane)
        if post.error is not None:
            raise post.error
        assert post.counts is not None
        return post.counts

    def _lead(self, key: tuple[int, str], lane: _Lane) -> None:
        """Run one transaction for the posts at the head of ``lane`` (the leader's own first),
        then hand the lane to the next waiting post, or free it."""
        with self._lock:
            batch = [lane.waiting.popleft()]
            events = len(batch[0].events)
            while lane.waiting and events + len(lane.waiting[0].events) <= self.max_events:
                events += len(lane.waiting[0].events)
                batch.append(lane.waiting.popleft())
        try:
            self._run(batch)
        finally:
            with self._lock:
                if lane.waiting:
                    lane.waiting[0].wake.set()  # it leads the next transaction
                else:
                    lane.busy = False
                    self._lanes.pop(key, None)
            for post in batch:
                post.wake.set()

    def _run(self, batch: list[_Post]) -> None:
        self._count(len(batch), run_batch(batch))

    def _count(self, posts: int, transactions: int) -> None:
        with self._lock:
            self.posts += posts
            self.transactions += transactions


def run_batch(batch: list[_Post], factory: sessionmaker[Session] | None = None) -> int:
    """Ingest ``batch`` in one transaction, or, if that fails, each post alone; sets every
    post's counts or error. Returns the number of transactions run."""
    if len(batch) > 1:
        try:
            _ingest_together(batch, factory)
        except Exception:
            for post in batch:  # each post then gets its own answer, below
                post.counts = post.error = None
        else:
            return 1
    for post in batch:
        try:
            _ingest_together([post], factory)
        except BaseException as exc:  # re-raised where the post waits
            post.error = exc
    return len(batch)


def _admit(session: Session, batch: list[_Post]) -> list[tuple[_Post, Scope]]:
    """The posts of ``batch`` whose poster may ingest now, with their scopes; the others get
    their refusal (Unauthenticated, Forbidden) as their answer."""
    now = utcnow()
    live = live_api_tokens(session, [p.token_hash for p in batch if p.token_hash is not None], now=now)
    admitted: list[tuple[_Post, Scope]] = []
    touched: set[int] = set()
    for post in batch:
        scope = post.scope
        if post.token_hash is not None:
            token = live.get(post.token_hash)
            if token is None or token.org_id != post.org_id:
                post.error = Unauthenticated("invalid or expired credentials")
                continue
            scope = Scope(staff_id=token.staff_id, org_id=token.org_id, role=Role(token.role))
            try:
                check_ingest_scope(scope)
            except Forbidden as exc:
                post.error = exc
                continue
            if token.needs_touch and token.token_id not in touched:
                touched.add(token.token_id)
                touch_token(session, token.token_id, now)
        assert scope is not None
        admitted.append((post, scope))
    return admitted


def _ingest_together(batch: list[_Post], factory: sessionmaker[Session] | None = None) -> None:
    """One transaction: the events of every admitted post in ``batch`` (one organisation and
    platform); sets each post's counts or refusal."""
    first = batch[0]
    with unit_of_work(factory) as session:
        admitted = _admit(session, batch)
        if not admitted:
            return
        ingestor = Ingestor(session, first.org_id, platform=first.platform, source="api", live=True)
        result = ingestor.ingest_batch([e for post, _ in admitted for e in post.events])
        ingestor.flush()
        stored = Counter(result.stored_ids)
        entries: list[dict[str, Any]] = []
        for post, scope in admitted:
            mine = 0
            for e in post.events:
                if stored[e.external_id] > 0:
                    stored[e.external_id] -= 1
                    mine += 1
            post.counts = Counts(stored=mine, duplicates=len(post.events) - mine)
            entries.append(post.audit(scope, mine, len(post.events) - mine))
        # audit.service.record_all's rows, as a Core statement (the ORM's bulk insert costs more
        # than the rest of a small batch's audit).
        session.connection().execute(_AUDIT_INSERT, entries)


@lru_cache(maxsize=4)
def _sessions(url: str) -> sessionmaker[Session]:
    """The live lanes' own connections: a lane runs one transaction at a time, so a few are
    enough, posts never wait on the requests' pool, and no ping precedes each batch (a broken
    connection fails its batch and is dropped; the batch's posts are then tried again alone, on
    new connections)."""
    engine = make_engine(url, pool_size=2, max_overflow=4, pool_pre_ping=False)
    return sessionmaker(bind=engine, expire_on_commit=False)


def lane_sessions() -> sessionmaker[Session]:
    return _sessions(get_settings().resolved_database_url)


@dataclass
class _Waiting:
    post: _Post
    future: asyncio.Future[Counts]


@dataclass
class _LoopLane:
    waiting: deque[_Waiting] = field(default_factory=deque)
    drain: asyncio.Task[None] | None = None


class LiveLanes:
    """The lanes of one event loop, for posts that wait as coroutines (``POST /api/v1/events``).

    A post joins its (organisation, platform) lane and awaits a future. The first post of an idle
    lane starts the lane's drain: one worker thread at a time takes every post waiting (up to
    ``max_events`` events), runs their transaction (:func:`run_batch`), and the drain resolves
    each post's future, then takes the next batch, until the lane is empty. A batch costs one
    hop to a worker thread, whatever the number of its posts. Used from its loop only: no lock.
    """

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self._lanes: dict[tuple[int, str], _LoopLane] = {}
        # Posts waiting in every lane (the edge hands a small post's admission slot over to the
        # lanes while this is under its limit), transactions run and posts they carried.
        self.waiting = 0
        self.transactions = 0
        self.posts = 0

    async def ingest(
        self,
        org_id: int,
        platform: str,
        events: list[ParsedEvent],
        audit: AuditEntry,
        *,
        scope: Scope | None = None,
        token_hash: str | None = None,
    ) -> Counts:
        """:meth:`Coalescer.ingest`, awaited: the counts once the transaction that carried the
        events has committed, or what their own transaction raised."""
        if (scope is None) == (token_hash is None):
            raise ValueError("a post needs either a scope or a token hash")
        loop = asyncio.get_running_loop()
        waiting = _Waiting(_Post(org_id, platform, events, audit, scope, token_hash), loop.create_future())
        key = (org_id, platform)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _LoopLane()
            lane.drain = loop.create_task(self._drain(key, lane))
        lane.waiting.append(waiting)
        self.waiting += 1
        try:
            return await waiting.future
        finally:
            self.waiting -= 1

    async def _drain(self, key: tuple[int, str], lane: _LoopLane) -> None:
        try:
            while lane.waiting:
                batch = [lane.waiting.popleft()]
                events = len(batch[0].post.events)
                while lane.waiting and events + len(lane.waiting[0].post.events) <= self.max_events:
                    events += len(lane.waiting[0].post.events)
                    batch.append(lane.waiting.popleft())
                # A post whose request was cancelled (the client went away) is not ingested.
                batch = [w for w in batch if not w.future.cancelled()]
                if not batch:
                    continue
                posts = [w.post for w in batch]
                try:
                    transactions = await anyio.to_thread.run_sync(run_batch, posts, lane_sessions())
                except BaseException as exc:  # cancelled while the batch ran: its posts get the error
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
                    raise
                self.transactions += transactions
                self.posts += len(batch)
                for w in batch:
                    if w.future.done():
                        continue
                    if w.post.error is not None:
                        w.future.set_exception(w.post.error)
                    else:
                        assert w.post.counts is not None
                        w.future.set_result(w.post.counts)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            for w in lane.waiting:  # only when the drain itself was cancelled
                if not w.future.done():
                    w.future.set_exception(RuntimeError("live lane stopped"))


# How long the event loop may hold the GIL while a lane's thread waits for it (seconds).
#
# A batch makes about ten round trips to the database, and after each the lane's thread must get
# the GIL back from the event loop, which is busy reading, parsing and answering posts. With
# Python's default switch interval (5 ms) the thread waits up to that long after every round
# trip: tens of milliseconds per batch in which the organisation's lane, and with it every post
# waiting there, stands still although neither the database nor the CPU is busy. A shorter
# interval costs the loop a few more switches a second.
LANE_SWITCH_INTERVAL = 0.0005


class _PerLoop:
    """One :class:`LiveLanes` per event loop (a test client runs a loop of its own)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lanes: LiveLanes | None = None

    def get(self) -> LiveLanes:
        loop = asyncio.get_running_loop()
        if self._lanes is None or self._loop is not loop:
            self._loop, self._lanes = loop, LiveLanes()
            if sys.getswitchinterval() > LANE_SWITCH_INTERVAL:
                sys.setswitchinterval(LANE_SWITCH_INTERVAL)
        return self._lanes


live_lanes = _PerLoop()

_coalescer = Coalescer()


def coalescer() -> Coalescer:
    """This process's coalescer."""
    return _coalescer


def post_events(
    org_id: int,
    platform: str,
    events: list[ParsedEvent],
    audit: AuditEntry,
    *,
    scope: Scope | None = None,
    token_hash: str | None = None,
) -> Counts:
    """:meth:`Coalescer.ingest` of this process's coalescer."""
    return _coalescer.ingest(org_id, platform, events, audit, scope=scope, token_hash=token_hash)

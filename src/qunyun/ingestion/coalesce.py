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

The batch is all or nothing, a post's events too: if the shared transaction fails for any reason
(a follow-up's error, a constraint, the database), each of its posts is retried alone in a
transaction of its own, so one post's failure is that post's answer only and never another's.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from qunyun.db.session import unit_of_work
from qunyun.ingestion.event import ParsedEvent
from qunyun.ingestion.service import Ingestor

# A transaction takes posts up to this many events in all (at least one post, however large).
MAX_EVENTS = 2_000

# What a post records in its own transaction once its events are in (the audit entry):
# called with the session and the post's (stored, duplicates).
AfterIngest = Callable[[Session, int, int], None]


@dataclass
class Counts:
    stored: int
    duplicates: int


@dataclass
class _Post:
    org_id: int
    platform: str
    events: list[ParsedEvent]
    after: AfterIngest
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
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

    def ingest(self, org_id: int, platform: str, events: list[ParsedEvent], after: AfterIngest) -> Counts:
        """Ingest ``events`` (already parsed) for ``org_id`` live, from the API; then ``after``.

        Blocks until the transaction that carried them has committed; returns what became of
        them, or raises what their own transaction raised."""
        post = _Post(org_id, platform, events, after)
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
        if len(batch) > 1:
            try:
                counts = _ingest_together(batch)
            except Exception:
                pass
            else:
                for post, c in zip(batch, counts, strict=True):
                    post.counts = c
                self._count(len(batch), 1)
                return
        for post in batch:
            try:
                post.counts = _ingest_together([post])[0]
            except BaseException as exc:
                post.error = exc
        self._count(len(batch), len(batch))

    def _count(self, posts: int, transactions: int) -> None:
        with self._lock:
            self.posts += posts
            self.transactions += transactions


def _ingest_together(batch: list[_Post]) -> list[Counts]:
    """One transaction: the events of every post in ``batch`` (one organisation and platform)."""
    first = batch[0]
    with unit_of_work() as session:
        ingestor = Ingestor(session, first.org_id, platform=first.platform, source="api", live=True)
        result = ingestor.ingest_batch([e for post in batch for e in post.events])
        ingestor.flush()
        stored = Counter(result.stored_ids)
        counts: list[Counts] = []
        for post in batch:
            mine = 0
            for e in post.events:
                if stored[e.external_id] > 0:
                    stored[e.external_id] -= 1
                    mine += 1
            counts.append(Counts(stored=mine, duplicates=len(post.events) - mine))
            post.after(session, mine, len(post.events) - mine)
        session.flush()
    return counts


_coalescer = Coalescer()


def coalescer() -> Coalescer:
    """This process's coalescer."""
    return _coalescer


def post_events(org_id: int, platform: str, events: list[ParsedEvent], after: AfterIngest) -> Counts:
    """:meth:`Coalescer.ingest` of this process's coalescer."""
    return _coalescer.ingest(org_id, platform, events, after)

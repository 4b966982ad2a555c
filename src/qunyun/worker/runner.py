"""The job runner: claim due jobs in batches under leases, finish each batch in as few transactions
as exactly-once allows.

Ordinary handlers of a batch run in ONE transaction. The completions (``status='done'`` and one
``JobRun`` per job) commit together with the handlers' writes, and change only rows still running
under this worker's leases, so an attempt whose lease passed to another worker never commits
anything. The transaction runs optimistically first (no savepoint, no row locked up front); a
handler that raises, or a lease found lost, rolls it back, and the batch runs again carefully:
the rows still held locked first, each handler inside a savepoint, the failed job recorded as
failed. The loop claims the next batch in the transaction that finishes the last one.

Two-phase jobs (``TwoPhaseJob``: prepare, call, record) prepare in that same transaction, which
commits before any call; the calls run outside any transaction; then one transaction runs every
``record`` with the completions. docs/jobs.md tells the whole story.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, event, insert, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from qunyun.config import get_settings
from qunyun.db.base import from_micros, now_micros
from qunyun.db.session import get_sessionmaker, make_engine, unit_of_work
from qunyun.models import JobStatus
from qunyun.worker.leases import (
    JOB_RUNS,
    JOBS,
    MICROS,
    RECOVER_BATCH,
    ClaimedJob,
    Clock,
    LeaseKeeper,
    claim_jobs,
    complete,
    extend,
    held_by,
    recover_expired,
    release_unstarted,
    run_row,
    still_held,
)
from qunyun.worker.queue import Registered, handler_for, invalid_payload_reason
from qunyun.worker.scheduler import schedule_due

__all__ = [
    "MICROS",
    "RECOVER_BATCH",
    "ClaimedJob",
    "Clock",
    "HandlerCommitted",
    "InProcessWorker",
    "LeaseKeeper",
    "Worker",
    "backoff_seconds",
    "claim_jobs",
    "current_job",
    "describe_error",
    "load_handler_modules",
    "recover_expired",
    "run_workers",
]

log = logging.getLogger(__name__)

IMPORTS_ENV = "QUNYUN_WORKER_IMPORTS"
BUILTIN_HANDLERS = "qunyun.worker.builtin"
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 6 * 3600.0
IDLE_SLEEP_SECONDS = (0.2, 1.0)
SCHEDULE_EVERY_SECONDS = 30.0
RECOVER_EVERY_SECONDS = 5  # a lost lease is found this much later at most; it saves a query per job
ERROR_MAX_CHARS = 2000
NAME_MAX_CHARS = 100  # jobs.locked_by and job_runs.worker
BURST_MAX_ERRORS = 3
DEFAULT_BATCH = 32  # jobs claimed at once
# A batch whose jobs have run this long gives its unstarted jobs back to the queue, so that one
# slow job does not keep its siblings from idle workers.
BATCH_SECONDS = 1.0
CALL_THREADS = 4  # two-phase calls of one batch run this many at a time (they wait on the network)

DONE = JobStatus.DONE.value
LOST = "lost"
RELEASED = "released"


class LeaseLost(Exception):
    """The job's lease passed to another worker: this attempt must not commit anything."""


class HandlerCommitted(Exception):
    """A handler called ``commit()``: the worker refuses it, since the job's transaction holds
    other jobs' writes and the completions."""


class TransactionEnded(Exception):
    """A handler rolled back the job's transaction: the batch's other writes went with it."""


_current_job: ContextVar[ClaimedJob | None] = ContextVar("qunyun_current_job", default=None)


def current_job() -> ClaimedJob:
    """The job the calling handler runs for (its id and attempt serve logging and idempotency keys)."""
    job = _current_job.get()
    if job is None:
        raise RuntimeError("current_job() is only available inside a job handler")
    return job


def backoff_seconds(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Delay before retrying after failed ``attempt`` (1-based): base·2^(attempt-1), capped, jittered.

    Half the delay is fixed and half random, so jobs that failed together (an outage) come back
    spread out, yet never sooner than half the nominal delay.
    """
    nominal = min(cap, base * 2.0 ** min(attempt - 1, 60))
    return nominal / 2 + (rng or random).uniform(0, nominal / 2)


_URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:/@\s]+:)[^@\s]+@")


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for the job record: no traceback, no SQL parameters, no URL passwords."""
    name = type(exc).__name__
    if isinstance(exc, StatementError) and exc.orig is not None:
        # str() of a StatementError appends the SQL and its bound values, which may be personal data.
        name, exc = f"{name} ({type(exc.orig).__name__})", exc.orig
    message = str(exc).strip()
    text = f"{name}: {message}" if message else name
    return _URL_PASSWORD.sub(r"\1***@", text)[:ERROR_MAX_CHARS]


@dataclass
class _Item:
    """One claimed job on its way through a batch."""

    job: ClaimedJob
    handler: Registered | None = None
    payload: Any = None
    failure: tuple[str, bool] | None = None  # (reason, final), known before anything runs
    prepared: Any = None  # a two-phase job's prepare result, between the phases
    outcome: Any = None  # its call's result, or the exception the call raised
    result: str | None = None  # done, retry, dead, lost, released; None while a call is pending


class _CommitGuard:
    """Refuses ``session.commit()`` while a handler runs: it would commit the other jobs' writes
    of the batch apart from their completions (a retry would then apply them twice)."""

    KEY = "qunyun.worker.commit_guard"

    def __init__(self, session: Session) -> None:
        self.armed = False
        self.tripped = False
        session.info[self.KEY] = self

    @classmethod
    def install(cls, factory: sessionmaker[Session]) -> None:
        """Listen once on the factory: listening on each session costs more than a small job."""
        if not event.contains(factory, "before_commit", cls._before_commit):
            event.listen(factory, "before_commit", cls._before_commit)

    @classmethod
    def _before_commit(cls, session: Session) -> None:
        guard = session.info.get(cls.KEY)
        # Releasing a savepoint (a handler's begin_nested, enqueue with a key) fires this too:
        # only the commit of the transaction itself, with no savepoint left, is refused.
        if guard is not None and guard.armed and session.get_nested_transaction() is None:
            guard.tripped = True
            raise HandlerCommitted("the handler committed its own transaction")


def _warm(session: Session, items: list[_Item], *, recording: bool) -> list[Any]:
    """Let each two-phase handler of the batch load or lock what its jobs need at once
    (``TwoPhaseJob.warm``); a failure here fails the transaction, which runs again job by job.
    Returns the handlers warmed, whose ``settle`` runs after the batch's jobs."""
    by_handler: dict[int, tuple[Any, list[Any]]] = {}
    for item in items:
        handler = item.handler
        if item.failure is None and handler is not None and handler.two_phase is not None:
            by_handler.setdefault(id(handler.two_phase), (handler.two_phase, []))[1].append(item.payload)
    warmed = []
    for two_phase, payloads in by_handler.values():
        if len(payloads) > 1:
            two_phase.warm(session, payloads, recording=recording)
            warmed.append(two_phase)
    return warmed


class _HandlerFailed(Exception):
    """A handler failed in a transaction without savepoints: roll it back, run the batch again."""

    def __init__(self, item: _Item, reason: str, final: bool) -> None:
        super().__init__(reason)
        self.item = item
        self.reason = reason
        self.final = final


class _LeasesChanged(Exception):
    """A transaction that locked nothing up front found, at its end, a lease no longer this
    worker's: roll it back, run the batch again with the rows still held locked first."""


Work = Callable[[Session, _Item], bool]  # runs a job's handler part; True when the job is finished


class Worker:
    """Claims due jobs a batch at a time and finishes them in as few transactions as it can.

    ``batch`` jobs are claimed at once (1 claims one at a time). In ``loop``/``run_next``, a
    batch that has run ``batch_seconds`` gives its unstarted jobs back to the queue (also when
    the worker is asked to stop), so a slow job holds back its siblings for one job at most.
    """

    def __init__(
        self,
        name: str,
        *,
        factory: sessionmaker[Session] | None = None,
        lease_seconds: int | None = None,
        clock: Clock = now_micros,
        leases: LeaseKeeper | None = None,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        batch: int = DEFAULT_BATCH,
        batch_seconds: float = BATCH_SECONDS,
        call_threads: int = CALL_THREADS,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.name = name[:NAME_MAX_CHARS]
        self.factory = factory
        self.lease_seconds = lease_seconds or get_settings().job_lease_seconds
        self.clock = clock
        self.leases = leases
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.batch = batch
        self.batch_seconds = batch_seconds
        self.call_threads = call_threads
        self._stop: threading.Event | None = None
        self._calls: ThreadPoolExecutor | None = None
        self._next_schedule = 0.0
        self._next_recovery = 0
        self._ahead: list[ClaimedJob] = []  # claimed by the loop with the last batch's completions
        self._guarded: sessionmaker[Session] | None = None  # the factory whose commits are guarded
        if factory is not None:
            # Here, in the thread that builds the workers, not in a worker thread beside others.
            _CommitGuard.install(factory)
            self._guarded = factory

    # -- claiming

    def claim_batch(self, limit: int | None = None) -> list[ClaimedJob]:
        """Recover expired leases (every few seconds), then lease up to ``limit`` (default:
        ``batch``) of the most urgent due jobs to this worker, in one transaction."""
        with unit_of_work(self.factory) as session:
            return self._claim(session, limit or self.batch)

    def _claim(self, session: Session, limit: int) -> list[ClaimedJob]:
        now = self.clock()
        if now >= self._next_recovery:
            recover_expired(session, now=now, lease_seconds=self.lease_seconds)
            self._next_recovery = now + RECOVER_EVERY_SECONDS * MICROS
        return claim_jobs(session, self.name, now=now, lease_seconds=self.lease_seconds, limit=limit)

    def claim(self) -> ClaimedJob | None:
        """Lease the single most urgent due job to this worker."""
        jobs = self.claim_batch(1)
        return jobs[0] if jobs else None

    def run_next(self) -> bool:
        """Claim and run one batch of due jobs; False when none is due."""
        return self._next_batch(claim_ahead=False)

    def _next_batch(self, *, claim_ahead: bool) -> bool:
        """Run the batch claimed ahead, or claim one. With ``claim_ahead`` (the loop, which runs
        whatever it claims), the transaction that finishes this batch also claims the next one."""
        jobs, self._ahead = self._ahead or self.claim_batch(), []
        if not jobs:
            return False
        self._run(jobs, yielding=True, claim_ahead=claim_ahead)
        return True

    # -- executing

    def execute(self, job: ClaimedJob) -> str:
        """Run a claimed job; returns the outcome: done, retry, dead or lost (lease taken over)."""
        return self.execute_batch([job])[0]

    def execute_batch(self, jobs: Sequence[ClaimedJob]) -> list[str]:
        """Run claimed jobs (ordinary and two-phase alike) as one batch; returns each job's
        outcome in order: done, retry, dead or lost (its lease was taken over)."""
        return self._run(jobs, yielding=False, claim_ahead=False)

    def _run(self, jobs: Sequence[ClaimedJob], *, yielding: bool, claim_ahead: bool) -> list[str]:
        items = [self._resolve(job) for job in jobs]
        if self.leases is not None:
            for job in jobs:
                self.leases.hold(job)
        try:
            self._phase(items, self._first_phase, yielding=yielding, claim_ahead=claim_ahead)
            calling = [item for item in items if item.result is None]
            if calling:
                self._call(calling)
                self._phase(calling, self._record_phase, yielding=False, claim_ahead=claim_ahead)
        finally:
            if self.leases is not None:
                for job in jobs:
                    self.leases.release(job)
        return [item.result or LOST for item in items]

    def _resolve(self, job: ClaimedJob) -> _Item:
        handler = handler_for(job.kind)
        if handler is None:
            reason = (
                f"UnknownJobKind: no handler is registered for {job.kind!r} "
                f"(is its module imported? see {IMPORTS_ENV} in docs/jobs.md)"
            )
            return _Item(job, failure=(reason, True))
        try:
            payload = handler.parse(dict(job.payload))
        except ValidationError as exc:
            # The same payload fails the same way every time: no retry.
            return _Item(job, failure=(invalid_payload_reason(job.kind, exc), True))
        return _Item(job, handler, payload)

    @staticmethod
    def _first_phase(session: Session, item: _Item) -> bool:
        handler = item.handler
        assert handler is not None
        if handler.two_phase is None:
            assert handler.fn is not None
            handler.fn(session, item.payload)
            return True
        item.prepared = handler.two_phase.prepare(session, item.payload)
        return item.prepared is None  # nothing to call: the job is finished

    @staticmethod
    def _record_phase(session: Session, item: _Item) -> bool:
        assert item.handler is not None and item.handler.two_phase is not None
        item.handler.two_phase.record(session, item.payload, item.prepared, item.outcome)
        return True

    def _call(self, items: list[_Item]) -> None:
        """The two-phase calls, outside any transaction (their prepare committed)."""

        def call(item: _Item) -> None:
            assert item.handler is not None and item.handler.two_phase is not None
            token = _current_job.set(item.job)
            try:
                item.outcome = item.handler.two_phase.call(item.prepared)
            except Exception as exc:
                log.warning("job %s (%s) attempt %s: call failed: %s", *_ident(item.job), describe_error(exc))
                item.outcome = exc
            finally:
                _current_job.reset(token)

        if len(items) == 1 or self.call_threads <= 1:
            for item in items:
                call(item)
            return
        if self._calls is None:
            self._calls = ThreadPoolExecutor(self.call_threads, thread_name_prefix=f"qunyun-call-{self.name}")
        list(self._calls.map(call, items))

    def close(self) -> None:
        """Stop the threads that ran two-phase calls, if any (``loop`` does it when it ends)."""
        calls, self._calls = self._calls, None
        if calls is not None:
            calls.shutdown(wait=True)

    def _phase(self, items: list[_Item], work: Work, *, yielding: bool, claim_ahead: bool = False) -> None:
        """Run ``work`` for ``items`` in one transaction; when that transaction fails as a whole
        (not one handler: the database, or a handler that ended the transaction), once per job."""
        try:
            results = self._attempt(items, work, yielding=yielding, claim_ahead=claim_ahead)
        except Exception as exc:
            if len(items) > 1:
                log.warning(
                    "worker %s: a batch of %d jobs failed as a whole (%s); running them one at a time",
                    self.name,
                    len(items),
                    describe_error(exc),
                )
                for item in items:
                    self._phase([item], work, yielding=False)
                return
            [item] = items
            log.error("job %s (%s) attempt %s failed with its transaction", *_ident(item.job), exc_info=True)
            item.result = self._fail(item.job, describe_error(exc))
            return
        for item, result in results:
            item.result = result

    def _attempt(self, items: list[_Item], work: Work, *, yielding: bool, claim_ahead: bool) -> list[tuple[_Item, str]]:
        """Optimistically first: no row locked up front, no savepoints (each costs a round trip
        per job). When a handler fails, or a lease turns out lost at the end, that transaction
        rolls back and the batch runs again carefully: the rows still held locked first, one
        savepoint per job, the failed job recorded as failed without running again."""
        try:
            return self._transaction(items, work, yielding=yielding, careful=False, claim_ahead=claim_ahead)
        except _HandlerFailed as failed:
            failed.item.failure = (failed.reason, failed.final)
        except _LeasesChanged:
            log.warning("worker %s: a lease of the batch was taken over; running it again without that job", self.name)
        return self._transaction(items, work, yielding=yielding, careful=True, claim_ahead=claim_ahead)

    def _transaction(
        self, items: list[_Item], work: Work, *, yielding: bool, careful: bool, claim_ahead: bool
    ) -> list[tuple[_Item, str]]:
        """One transaction: each held job's ``work`` (under a savepoint when ``careful``), its
        failure recorded or its completion, all committed together (with the next batch's claim
        when ``claim_ahead`` and nothing waits for a call). Returns the outcome of every job
        finished here (a prepared two-phase job is not: it waits for its call).

        Careful, the rows still held are locked first and a job found lost is skipped. Not
        careful, nothing is locked up front: the completions at the end, which lock the rows and
        change only those still held, find out; a lease lost (``_LeasesChanged``) or a handler
        failing (``_HandlerFailed``) aborts the transaction."""
        results: list[tuple[_Item, str]] = []
        completed: list[ClaimedJob] = []
        prepared: list[ClaimedJob] = []
        ahead: list[ClaimedJob] = []
        started = time.monotonic()
        factory = self.factory or get_sessionmaker()
        if factory is not self._guarded:
            _CommitGuard.install(factory)
            self._guarded = factory
        with unit_of_work(factory) as session:
            held = still_held(session, [item.job for item in items]) if careful else None
            session.connection()  # begins the transaction that the handlers must leave intact
            guard = _CommitGuard(session)
            root = session.get_transaction()
            assert root is not None
            recording = work is Worker._record_phase
            warmed = _warm(session, items, recording=recording) if not careful else []
            for n, item in enumerate(items):
                job = item.job
                if held is not None and job.id not in held:
                    log.warning("job %s (%s) attempt %s: lease lost, nothing of it is committed", *_ident(job))
                    results.append((item, LOST))
                    continue
                if yielding and n > 0 and self._should_yield(started):
                    rest = items[n:]
                    released = release_unstarted(session, [i.job for i in rest if held is None or i.job.id in held])
                    results.extend((i, RELEASED if i.job.id in released else LOST) for i in rest)
                    claim_ahead = False  # the released jobs are for idle workers
                    break
                if item.failure is not None:
                    reason, final = item.failure
                    results.append((item, self._record_failure(session, job, reason, final=final)))
                    continue
                token = _current_job.set(job)
                try:
                    with session.begin_nested() if careful else nullcontext():
                        guard.armed = True
                        try:
                            finished = work(session, item)
                            session.flush()  # a write that fails, fails here, as this job's
                        finally:
                            guard.armed = False
                        if guard.tripped:  # the handler swallowed the refusal: still its failure
                            raise HandlerCommitted("the handler committed its own transaction")
                except Exception as exc:
                    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                        raise  # the connection died: the transaction's failure, not the job's
                    final = isinstance(exc, HandlerCommitted)
                    if final:
                        log.error("job %s (%s) attempt %s: %s", *_ident(job), exc)
                    else:
                        log.exception("job %s (%s) attempt %s failed", *_ident(job))
                    if not careful:
                        raise _HandlerFailed(item, describe_error(exc), final) from exc
                    _check_intact(session, root)
                    results.append((item, self._record_failure(session, job, describe_error(exc), final=final)))
                else:
                    _check_intact(session, root)
                    if finished:
                        completed.append(job)
                        results.append((item, DONE))
                    else:
                        prepared.append(job)
                finally:
                    guard.tripped = False
                    _current_job.reset(token)
            for two_phase in warmed:
                # What the warmed jobs left to the batch's end, before their completions.
                two_phase.settle(session, recording=recording)
            now = self.clock()
            done = complete(session, completed, now=now)
            extended = extend(session, prepared, expiry=now + self.lease_seconds * MICROS)
            if done < len(completed) or extended < len(prepared):
                if not careful:
                    raise _LeasesChanged
                # Cannot happen: the rows were locked under our leases up front.
                raise LeaseLost(f"{len(completed) + len(prepared) - done - extended} leases were lost")
            if self.leases is not None:
                for job in prepared:
                    self.leases.extended(job, now + self.lease_seconds * MICROS)
            # Not on SQLite: there the batch's transaction holds the database's one write lock,
            # and a worker that went on from batch to batch under it would starve the others.
            if claim_ahead and not prepared and not self._stopping() and session.get_bind().dialect.name != "sqlite":
                ahead = self._claim(session, self.batch)
        if ahead:
            self._ahead = ahead  # committed: the loop runs them next
        return results

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _should_yield(self, started: float) -> bool:
        return self._stopping() or time.monotonic() - started >= self.batch_seconds

    def _record_failure(self, session: Session, job: ClaimedJob, reason: str, *, final: bool = False) -> str:
        """Record a failed attempt in ``session``: retry later with backoff, or bury it."""
        now = self.clock()
        dead = final or job.attempt >= job.max_attempts
        values: dict[str, Any] = {"locked_by": None, "locked_until": None, "last_error": reason}
        if dead:
            values.update(status=JobStatus.DEAD.value, finished_at=now)
        else:
            delay = backoff_seconds(job.attempt, base=self.backoff_base, cap=self.backoff_cap)
            values.update(status=JobStatus.QUEUED.value, run_at=now + int(delay * MICROS))
        held = session.execute(update(JOBS).where(held_by(job)).values(**values).returning(JOBS.c.id))
        if held.first() is None:
            return LOST  # whoever took the lease over records this attempt (recover_expired)
        outcome = JobStatus.DEAD.value if dead else "retry"
        session.execute(insert(JOB_RUNS), run_row(job, now, outcome, reason))
        return outcome

    def _fail(self, job: ClaimedJob, reason: str, *, final: bool = False) -> str:
        """Record a failed attempt in a transaction of its own."""
        with unit_of_work(self.factory) as session:
            return self._record_failure(session, job, reason, final=final)

    # -- the loop

    def schedule_periodic(self, *, force: bool = False) -> list[str]:
        """Enqueue the periodic jobs of the current bucket, at most every SCHEDULE_EVERY_SECONDS."""
        if not force and time.monotonic() < self._next_schedule:
            return []
        self._next_schedule = time.monotonic() + SCHEDULE_EVERY_SECONDS * random.uniform(0.8, 1.2)
        with unit_of_work(self.factory) as session:
            return schedule_due(session, now=from_micros(self.clock()))

    def loop(self, stop: threading.Event, *, burst: bool = False) -> None:
        """Run jobs until ``stop`` is set (or, in burst mode, until none is due)."""
        self._stop = stop
        try:
            self._loop(stop, burst=burst)
        finally:
            self._give_back()
            self.close()

    def _loop(self, stop: threading.Event, *, burst: bool) -> None:
        errors = 0
        while not stop.is_set():
            try:
                self.schedule_periodic()
                ran = self._next_batch(claim_ahead=True)
                errors = 0
            except Exception:
                errors += 1
                log.exception("worker %s: database error (%d in a row)", self.name, errors)
                if burst and errors >= BURST_MAX_ERRORS:
                    raise
                stop.wait(min(30.0, 2.0**errors) * random.uniform(0.5, 1.0))
                continue
            if not ran:
                if burst:
                    return
                stop.wait(random.uniform(*IDLE_SLEEP_SECONDS))

    def _give_back(self) -> None:
        """The batch claimed ahead goes back to the queue unstarted (the worker stops)."""
        jobs, self._ahead = self._ahead, []
        if not jobs:
            return
        try:
            with unit_of_work(self.factory) as session:
                release_unstarted(session, jobs)
        except Exception:
            log.exception("worker %s: giving %d claimed jobs back failed; their leases expire", self.name, len(jobs))


def _ident(job: ClaimedJob) -> tuple[int, str, int]:
    return job.id, job.kind, job.attempt


def _check_intact(session: Session, root: SessionTransaction) -> None:
    """The batch's transaction is still the one it began with (a handler may have rolled it back)."""
    if session.get_transaction() is not root or not root.is_active:
        raise TransactionEnded("a handler ended the job's transaction")


def load_handler_modules() -> None:
    """Import the built-in handlers and those named in QUNYUN_WORKER_IMPORTS (comma-separated)."""
    extra = [m.strip() for m in os.environ.get(IMPORTS_ENV, "").split(",") if m.strip()]
    for module in [BUILTIN_HANDLERS, *extra]:
        importlib.import_module(module)


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class InProcessWorker:
    """Worker threads inside this process: ``qunyun serve`` runs them beside the web app."""

    def __init__(
        self,
        concurrency: int = 1,
        *,
        name: str | None = None,
        burst: bool = False,
        factory: sessionmaker[Session] | None = None,
        lease_seconds: int | None = None,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.batch = batch
        self.name = name or default_name()
        self.burst = burst
        self.factory = factory
        self.lease_seconds = lease_seconds or get_settings().job_lease_seconds
        self.stopping = threading.Event()
        self.failures: list[BaseException] = []
        self._engine: Engine | None = None
        self._workers: list[threading.Thread] = []
        self._keeper: threading.Thread | None = None

    def start(self) -> None:
        if self._workers:
            raise RuntimeError("these workers were started already")
        load_handler_modules()
        factory = self.factory
        if factory is None:
            # A pool of our own, sized so that no worker waits for a connection behind web requests.
            # No ping at each checkout (a round trip per batch): a connection found dead fails
            # its transaction as a whole, which the worker runs again on a fresh one.
            self._engine = make_engine(
                get_settings().resolved_database_url,
                pool_size=self.concurrency + 2,
                max_overflow=2,
                pool_pre_ping=False,
            )
            factory = sessionmaker(bind=self._engine, expire_on_commit=False)
        keeper = LeaseKeeper(factory=factory, lease_seconds=self.lease_seconds)
        self._keeper = threading.Thread(
            target=keeper.run, args=(self.stopping,), name="qunyun-lease-keeper", daemon=True
        )
        for i in range(self.concurrency):
            worker = Worker(
                f"{self.name[: NAME_MAX_CHARS - 4]}:{i}",
                factory=factory,
                lease_seconds=self.lease_seconds,
                leases=keeper,
                batch=self.batch,
            )
            thread = threading.Thread(target=self._guard, args=(worker,), name=f"qunyun-worker-{i}", daemon=True)
            self._workers.append(thread)
        self._keeper.start()
        for thread in self._workers:
            thread.start()
        log.info("started %d job worker(s) as %s", self.concurrency, self.name)

    def _guard(self, worker: Worker) -> None:
        try:
            worker.loop(self.stopping, burst=self.burst)
        except BaseException as exc:
            log.exception("worker %s stopped on an error", worker.name)
            self.failures.append(exc)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker threads; True when all have finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._workers:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._workers):
            return False
        self.stopping.set()  # burst workers end on their own; the lease keeper goes with them
        if self._keeper is not None:
            self._keeper.join(5)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        return True

    def stop(self, timeout: float = 10) -> None:
        """Let each worker finish its current job, then stop; waits up to ``timeout`` seconds."""
        self.stopping.set()
        if not self.join(timeout):
            # Daemon threads: the process may exit; their leases expire and the jobs are reclaimed.
            log.warning("job workers still busy after %.0fs; leaving them to their leases", timeout)


def run_workers(concurrency: int = 1, burst: bool = False, name: str | None = None, batch: int = DEFAULT_BATCH) -> None:
    """Run job workers in this process until SIGTERM or SIGINT (or, with ``burst``, until idle).

    The first signal lets each worker finish its current job; a second one aborts.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pool = InProcessWorker(concurrency, name=name, burst=burst, batch=batch)
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}
    in_main_thread = threading.current_thread() is threading.main_thread()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing current jobs, then stopping (again to abort)", signal.Signals(signum).name)
        pool.stopping.set()
        signal.signal(signum, previous[signal.Signals(signum)] or signal.SIG_DFL)

    if in_main_thread:
        for sig in signals:
            signal.signal(sig, on_signal)
    try:
        pool.start()
        while not pool.join(timeout=0.5):
            pass
    finally:
        if in_main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler or signal.SIG_DFL)
        pool.stop()
    if pool.failures:
        raise RuntimeError(f"{len(pool.failures)} job worker(s) failed; see the log") from pool.failures[0]

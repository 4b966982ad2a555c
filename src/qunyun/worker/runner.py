"""The job runner: claim due jobs under a lease, run each handler in the job's own transaction.

A job's effects and its completion commit together: the handler's writes and the conditional
``UPDATE jobs SET status='done' … WHERE locked_by = me AND attempts = my attempt`` share one
transaction, so an attempt whose lease passed to another worker rolls back whole. Every attempt
leaves exactly one ``JobRun``: written by the worker that ran it, or, when that worker vanished, by
the worker that found its lease expired. docs/jobs.md tells the whole story.
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
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Engine, Table, and_, insert, select, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from qunyun.config import get_settings
from qunyun.db.base import from_micros, now_micros, to_micros
from qunyun.db.session import make_engine, unit_of_work
from qunyun.models import Job, JobRun, JobStatus
from qunyun.worker.queue import handler_for, invalid_payload_reason
from qunyun.worker.scheduler import schedule_due

log = logging.getLogger(__name__)

JOBS = cast(Table, Job.__table__)
JOB_RUNS = cast(Table, JobRun.__table__)

IMPORTS_ENV = "QUNYUN_WORKER_IMPORTS"
BUILTIN_HANDLERS = "qunyun.worker.builtin"
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 6 * 3600.0
IDLE_SLEEP_SECONDS = (0.2, 1.0)
SCHEDULE_EVERY_SECONDS = 30.0
RECOVER_BATCH = 100
RECOVER_EVERY_SECONDS = 5  # a lost lease is found this much later at most; it saves a query per job
ERROR_MAX_CHARS = 2000
NAME_MAX_CHARS = 100  # jobs.locked_by and job_runs.worker
BURST_MAX_ERRORS = 3
MICROS = 1_000_000

Clock = Callable[[], int]  # UTC epoch microseconds, like every Timestamp column


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds a lease on; ``(worker, attempt)`` identifies the lease."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    worker: str
    claimed_at: int


class LeaseLost(Exception):
    """The job's lease passed to another worker: this attempt must not commit anything."""


class HandlerCommitted(Exception):
    """A handler called ``commit()``: its writes no longer share the job's transaction."""


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


def _held_by(job: ClaimedJob) -> ColumnElement[bool]:
    """The job row is still running under this very lease."""
    return and_(
        JOBS.c.id == job.id,
        JOBS.c.status == JobStatus.RUNNING.value,
        JOBS.c.locked_by == job.worker,
        JOBS.c.attempts == job.attempt,
    )


def recover_expired(session: Session, *, now: int, lease_seconds: int) -> int:
    """Requeue (or bury) running jobs whose lease expired: their worker crashed or lost the database.

    The lost attempt gets its ``JobRun`` here, since its worker never wrote one. Its real start is
    not stored; ``started_at`` is when the lease was last granted or renewed.
    """
    rows = session.execute(
        select(JOBS.c.id, JOBS.c.locked_by, JOBS.c.locked_until, JOBS.c.attempts, JOBS.c.max_attempts)
        .where(JOBS.c.status == JobStatus.RUNNING.value, JOBS.c.locked_until < now)
        .order_by(JOBS.c.id)
        .limit(RECOVER_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    for job_id, worker, locked_until, attempts, max_attempts in rows:
        worker = worker or "unknown"
        reason = f"LeaseExpired: worker {worker} stopped renewing its lease (crashed or lost the database)"
        dead = attempts >= max_attempts
        values: dict[str, Any] = {"locked_by": None, "locked_until": None, "last_error": reason}
        if dead:
            values.update(status=JobStatus.DEAD.value, finished_at=now)
        else:
            values.update(status=JobStatus.QUEUED.value, run_at=now)
        lost = ClaimedJob(job_id, "", {}, attempts, max_attempts, worker, 0)
        if session.execute(update(JOBS).where(_held_by(lost)).values(**values).returning(JOBS.c.id)).first() is None:
            continue  # changed under us (only possible by hand: the row is locked or we are the only writer)
        session.execute(
            insert(JOB_RUNS).values(
                job_id=job_id,
                attempt=attempts,
                worker=worker,
                started_at=min(now, to_micros(locked_until) - lease_seconds * MICROS),
                finished_at=now,
                outcome=JobStatus.DEAD.value if dead else "retry",
                error=reason,
            )
        )
        log.warning("job %s: %s", job_id, reason)
    return len(rows)


def claim_jobs(
    session: Session, worker: str, *, now: int, lease_seconds: int, limit: int = 1, org_id: int | None = None
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs to ``worker``, most urgent first (of organisation ``org_id``
    only, when given: a simulation runs its own jobs against its own simulated world).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass each other without
    waiting or taking the same row. SQLite ignores it; the caller's write transaction
    (BEGIN IMMEDIATE) makes the claim the only writer.
    """
    due = select(JOBS.c.id).where(JOBS.c.status == JobStatus.QUEUED.value, JOBS.c.run_at <= now)
    if org_id is not None:
        due = due.where(JOBS.c.org_id == org_id)
    due = due.order_by(JOBS.c.priority.desc(), JOBS.c.run_at, JOBS.c.id).limit(limit).with_for_update(skip_locked=True)
    rows = session.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(due))
        .values(
            status=JobStatus.RUNNING.value,
            locked_by=worker,
            locked_until=now + lease_seconds * MICROS,
            attempts=JOBS.c.attempts + 1,
        )
        .returning(
            JOBS.c.id,
            JOBS.c.kind,
            JOBS.c.payload,
            JOBS.c.attempts,
            JOBS.c.max_attempts,
            JOBS.c.priority,
            JOBS.c.run_at,
        )
    ).all()
    return [
        ClaimedJob(r.id, r.kind, dict(r.payload or {}), r.attempts, r.max_attempts, worker, now)
        for r in sorted(rows, key=lambda r: (-r.priority, r.run_at, r.id))
    ]


class LeaseKeeper:
    """Renews the leases of jobs that run long, so that nobody reclaims a job still running.

    Leases are renewed once less than two thirds of them remain; short jobs never cost a write.
    """

    def __init__(self, *, factory: sessionmaker[Session] | None, lease_seconds: int, clock: Clock = now_micros) -> None:
        self.factory = factory
        self.lease = lease_seconds * MICROS
        self.clock = clock
        self._lock = threading.Lock()
        self._held: dict[tuple[int, int], tuple[ClaimedJob, int]] = {}  # (id, attempt) → (job, expiry)

    def hold(self, job: ClaimedJob) -> None:
        with self._lock:
            self._held[(job.id, job.attempt)] = (job, job.claimed_at + self.lease)

    def release(self, job: ClaimedJob) -> None:
        with self._lock:
            self._held.pop((job.id, job.attempt), None)

    def renew_due(self) -> int:
        """Extend every held lease that is past a third of its length; returns how many were."""
        now = self.clock()
        with self._lock:
            due = [job for job, expiry in self._held.values() if expiry - now < self.lease * 2 // 3]
        if not due:
            return 0
        expiry = now + self.lease
        renewed: set[tuple[int, int]] = set()
        with unit_of_work(self.factory) as session:
            for job in due:
                stmt = update(JOBS).where(_held_by(job)).values(locked_until=expiry).returning(JOBS.c.id)
                if session.execute(stmt).first() is not None:
                    renewed.add((job.id, job.attempt))
        with self._lock:
            for job in due:
                key = (job.id, job.attempt)
                if key not in self._held:
                    continue  # finished while we renewed
                if key in renewed:
                    self._held[key] = (job, expiry)
                else:
                    # Its completion will be refused; nothing more to keep alive.
                    log.warning("job %s: lease of %s attempt %s was taken over", job.id, job.worker, job.attempt)
                    del self._held[key]
        return len(renewed)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(max(0.05, self.lease / MICROS / 3)):
            try:
                self.renew_due()
            except Exception:
                log.exception("renewing job leases failed; retrying")


class Worker:
    """Claims due jobs one at a time and runs each handler in the job's own transaction.

    One at a time: a job claimed in a batch would wait under a lease while its siblings run, and
    other workers could not take it; claiming is cheap next to a job.
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
    ) -> None:
        self.name = name[:NAME_MAX_CHARS]
        self.factory = factory
        self.lease_seconds = lease_seconds or get_settings().job_lease_seconds
        self.clock = clock
        self.leases = leases
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._next_schedule = 0.0
        self._next_recovery = 0

    def claim(self) -> ClaimedJob | None:
        """Recover expired leases, then lease the most urgent due job to this worker."""
        now = self.clock()
        with unit_of_work(self.factory) as session:
            if now >= self._next_recovery:
                recover_expired(session, now=now, lease_seconds=self.lease_seconds)
                self._next_recovery = now + RECOVER_EVERY_SECONDS * MICROS
            jobs = claim_jobs(session, self.name, now=now, lease_seconds=self.lease_seconds)
        return jobs[0] if jobs else None

    def run_next(self) -> bool:
        """Claim and run one due job; False when none is due."""
        job = self.claim()
        if job is None:
            return False
        self.execute(job)
        return True

    def execute(self, job: ClaimedJob) -> str:
        """Run a claimed job; returns the outcome: done, retry, dead or lost (lease taken over)."""
        handler = handler_for(job.kind)
        if handler is None:
            reason = (
                f"UnknownJobKind: no handler is registered for {job.kind!r} "
                f"(is its module imported? see {IMPORTS_ENV} in docs/jobs.md)"
            )
            return self._fail(job, reason, final=True)
        try:
            payload = handler.parse(dict(job.payload))
        except ValidationError as exc:
            # The same payload fails the same way every time: no retry.
            return self._fail(job, invalid_payload_reason(job.kind, exc), final=True)
        token = _current_job.set(job)
        if self.leases is not None:
            self.leases.hold(job)
        try:
            with unit_of_work(self.factory) as session:
                session.connection()  # begin now, to tell afterwards whether the handler committed
                transaction = session.get_transaction()
                handler.fn(session, payload)
                if session.get_transaction() is not transaction:
                    raise HandlerCommitted("the handler committed its own transaction")
                self._complete(session, job)
        except LeaseLost:
            log.warning("job %s attempt %s: lease lost, its effects were rolled back", job.id, job.attempt)
            return "lost"
        except HandlerCommitted as exc:
            # Its writes committed apart from the completion: a retry could apply them twice, so
            # the job stops here for a human to look at.
            log.error("job %s (%s): %s", job.id, job.kind, exc)
            return self._fail(job, describe_error(exc), final=True)
        except Exception as exc:
            log.exception("job %s (%s) attempt %s failed", job.id, job.kind, job.attempt)
            return self._fail(job, describe_error(exc))
        finally:
            if self.leases is not None:
                self.leases.release(job)
            _current_job.reset(token)
        return JobStatus.DONE.value

    def _complete(self, session: Session, job: ClaimedJob) -> None:
        now = self.clock()
        done = session.execute(
            update(JOBS)
            .where(_held_by(job))
            .values(status=JobStatus.DONE.value, locked_by=None, locked_until=None, finished_at=now)
            .returning(JOBS.c.id)
        ).first()
        if done is None:
            raise LeaseLost
        session.execute(
            insert(JOB_RUNS).values(
                job_id=job.id,
                attempt=job.attempt,
                worker=job.worker,
                started_at=job.claimed_at,
                finished_at=now,
                outcome=JobStatus.DONE.value,
                error=None,
            )
        )

    def _fail(self, job: ClaimedJob, reason: str, *, final: bool = False) -> str:
        """Record a failed attempt in a fresh transaction: retry later with backoff, or bury it."""
        now = self.clock()
        dead = final or job.attempt >= job.max_attempts
        values: dict[str, Any] = {"locked_by": None, "locked_until": None, "last_error": reason}
        if dead:
            values.update(status=JobStatus.DEAD.value, finished_at=now)
        else:
            delay = backoff_seconds(job.attempt, base=self.backoff_base, cap=self.backoff_cap)
            values.update(status=JobStatus.QUEUED.value, run_at=now + int(delay * MICROS))
        outcome = JobStatus.DEAD.value if dead else "retry"
        with unit_of_work(self.factory) as session:
            held = session.execute(update(JOBS).where(_held_by(job)).values(**values).returning(JOBS.c.id))
            if held.first() is None:
                # Whoever took the lease over records this attempt (recover_expired).
                return "lost"
            session.execute(
                insert(JOB_RUNS).values(
                    job_id=job.id,
                    attempt=job.attempt,
                    worker=job.worker,
                    started_at=job.claimed_at,
                    finished_at=now,
                    outcome=outcome,
                    error=reason,
                )
            )
        return outcome

    def schedule_periodic(self, *, force: bool = False) -> list[str]:
        """Enqueue the periodic jobs of the current bucket, at most every SCHEDULE_EVERY_SECONDS."""
        if not force and time.monotonic() < self._next_schedule:
            return []
        self._next_schedule = time.monotonic() + SCHEDULE_EVERY_SECONDS * random.uniform(0.8, 1.2)
        with unit_of_work(self.factory) as session:
            return schedule_due(session, now=from_micros(self.clock()))

    def loop(self, stop: threading.Event, *, burst: bool = False) -> None:
        """Run jobs until ``stop`` is set (or, in burst mode, until none is due)."""
        errors = 0
        while not stop.is_set():
            try:
                self.schedule_periodic()
                ran = self.run_next()
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
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
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
            self._engine = make_engine(
                get_settings().resolved_database_url, pool_size=self.concurrency + 2, max_overflow=2
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


def run_workers(concurrency: int = 1, burst: bool = False, name: str | None = None) -> None:
    """Run job workers in this process until SIGTERM or SIGINT (or, with ``burst``, until idle).

    The first signal lets each worker finish its current job; a second one aborts.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    pool = InProcessWorker(concurrency, name=name, burst=burst)
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

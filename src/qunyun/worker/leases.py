"""Leases on jobs: claiming due jobs in batches, renewing the leases of jobs still held, and
recovering the jobs of workers that vanished.

``(locked_by, attempts)`` identifies one lease: ``attempts`` grows with every claim, so a worker
that stalled past its lease can never finish an attempt that passed to another worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CursorResult,
    Table,
    and_,
    bindparam,
    insert,
    select,
    text,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import ReturningUpdate

from qunyun.db.base import now_micros, to_micros
from qunyun.db.session import unit_of_work
from qunyun.models import Job, JobRun, JobStatus

log = logging.getLogger(__name__)

JOBS = cast(Table, Job.__table__)
JOB_RUNS = cast(Table, JobRun.__table__)

RECOVER_BATCH = 100
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


def held_by(job: ClaimedJob) -> ColumnElement[bool]:
    """The job row is still running under this very lease."""
    return and_(
        JOBS.c.id == job.id,
        JOBS.c.status == JobStatus.RUNNING.value,
        JOBS.c.locked_by == job.worker,
        JOBS.c.attempts == job.attempt,
    )


def held_by_any(jobs: Sequence[ClaimedJob]) -> ColumnElement[bool]:
    """Rows still running under one of these leases."""
    return and_(
        JOBS.c.status == JobStatus.RUNNING.value,
        tuple_(JOBS.c.id, JOBS.c.locked_by, JOBS.c.attempts).in_([(j.id, j.worker, j.attempt) for j in jobs]),
    )


# Statements of the hot path are built once (SQLAlchemy then reuses their compiled form).
_RUNNING = select(JOBS.c.id, JOBS.c.locked_by, JOBS.c.attempts).where(
    JOBS.c.id.in_(bindparam("ids", expanding=True)), JOBS.c.status == JobStatus.RUNNING.value
)
_RUNNING_LOCKED = _RUNNING.with_for_update()


def still_held(session: Session, jobs: Sequence[ClaimedJob], *, lock: bool = True) -> set[int]:
    """The ids of ``jobs`` whose leases this worker still holds, locked for the rest of the
    transaction (PostgreSQL: nobody can take them over before it ends; SQLite: the write
    transaction is the only writer anyway)."""
    if not jobs:
        return set()
    leases = {(job.id, job.worker, job.attempt) for job in jobs}
    rows = session.execute(_RUNNING_LOCKED if lock else _RUNNING, {"ids": [job.id for job in jobs]})
    return {job_id for job_id, worker, attempts in rows if (job_id, worker, attempts) in leases}


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
        if session.execute(update(JOBS).where(held_by(lost)).values(**values).returning(JOBS.c.id)).first() is None:
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


def _claim_statement(*, of_one_org: bool) -> ReturningUpdate[Any]:
    due = select(JOBS.c.id).where(JOBS.c.status == JobStatus.QUEUED.value, JOBS.c.run_at <= bindparam("now"))
    if of_one_org:
        due = due.where(JOBS.c.org_id == bindparam("of_org"))
    due = (
        due.order_by(JOBS.c.priority.desc(), JOBS.c.run_at, JOBS.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    return (
        update(JOBS)
        .where(JOBS.c.id.in_(due))
        .values(
            status=JobStatus.RUNNING.value,
            locked_by=bindparam("worker"),
            locked_until=bindparam("expiry"),
            attempts=JOBS.c.attempts + 1,
        )
        .returning(
            JOBS.c.id,
            JOBS.c.kind,
            JOBS.c.payload,
            JOBS.c.attempts,
            JOBS.c.max_attempts,
            JOBS.c.priority,
            type_coerce(JOBS.c.run_at, BigInteger).label("run_at"),  # to sort by, no datetime needed
        )
    )


_CLAIM = _claim_statement(of_one_org=False)
_CLAIM_OF_ORG = _claim_statement(of_one_org=True)


def claim_jobs(
    session: Session, worker: str, *, now: int, lease_seconds: int, limit: int = 1, org_id: int | None = None
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs to ``worker``, most urgent first (of organisation ``org_id``
    only, when given: a simulation runs its own jobs against its own simulated world).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent claimers pass each other without
    waiting or taking the same row. SQLite ignores it; the caller's write transaction
    (BEGIN IMMEDIATE) makes the claim the only writer.
    """
    params: dict[str, Any] = {"now": now, "limit": limit, "worker": worker, "expiry": now + lease_seconds * MICROS}
    if org_id is not None:
        params["of_org"] = org_id
    rows = session.execute(_CLAIM if org_id is None else _CLAIM_OF_ORG, params).all()
    # RETURNING comes in no particular order; positions rather than names: this runs per job.
    return [
        ClaimedJob(job_id, kind, payload or {}, attempts, max_attempts, worker, now)
        for job_id, kind, payload, attempts, max_attempts, _, _ in sorted(rows, key=lambda r: (-r[5], r[6], r[0]))
    ]


def release_unstarted(session: Session, jobs: Sequence[ClaimedJob]) -> set[int]:
    """Give claimed jobs that never started back to the queue, as if never claimed (no attempt
    counted, no run recorded); returns the ids of those still held, which it released."""
    if not jobs:
        return set()
    return set(
        session.scalars(
            update(JOBS)
            .where(held_by_any(jobs))
            .values(status=JobStatus.QUEUED.value, locked_by=None, locked_until=None, attempts=JOBS.c.attempts - 1)
            .returning(JOBS.c.id)
        )
    )


# PostgreSQL: one statement marks a batch done under its leases and copies the run history from
# the rows it changed. The batch travels as two arrays, so the statement is the same (and prepared
# once by the driver) whatever the batch's size.
_COMPLETE_PG = text(
    """
    WITH done AS (
        UPDATE jobs SET status = :done, locked_by = NULL, locked_until = NULL, finished_at = :now
        FROM unnest(CAST(:ids AS BIGINT[]), CAST(:attempts AS INTEGER[])) AS held(id, attempt)
        WHERE jobs.id = held.id AND jobs.attempts = held.attempt
            AND jobs.status = :running AND jobs.locked_by = :worker
        RETURNING jobs.id, jobs.attempts
    )
    INSERT INTO job_runs (job_id, attempt, worker, started_at, finished_at, outcome)
    SELECT id, attempts, :worker, :started, :now, :done FROM done
    """
)
_INSERT_RUN = insert(JOB_RUNS)


def run_row(job: ClaimedJob, now: int, outcome: str, error: str | None) -> dict[str, Any]:
    """A ``job_runs`` row for an attempt that ends now; it started when it was claimed."""
    return {
        "job_id": job.id,
        "attempt": job.attempt,
        "worker": job.worker,
        "started_at": job.claimed_at,
        "finished_at": now,
        "outcome": outcome,
        "error": error,
    }


def _array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal: the driver adapts a list for many times the CPU."""
    return "{" + ",".join(map(str, values)) + "}"


def complete(session: Session, jobs: Sequence[ClaimedJob], *, now: int) -> int:
    """Mark ``jobs`` done with one ``job_runs`` row each, those still held under their leases
    only; returns how many were. The rows it changes stay locked until the transaction ends."""
    if not jobs:
        return 0
    if session.get_bind().dialect.name == "postgresql":
        # One statement per lease holder and claim time: a batch has one of each.
        claims: dict[tuple[str, int], list[ClaimedJob]] = {}
        for job in jobs:
            claims.setdefault((job.worker, job.claimed_at), []).append(job)
        done = 0
        for (worker, started), claimed in claims.items():
            params = {
                "ids": _array(job.id for job in claimed),
                "attempts": _array(job.attempt for job in claimed),
                "worker": worker,
                "started": started,
                "now": now,
                "done": JobStatus.DONE.value,
                "running": JobStatus.RUNNING.value,
            }
            done += cast(CursorResult[Any], session.execute(_COMPLETE_PG, params)).rowcount
        return done
    held = set(
        session.scalars(
            update(JOBS)
            .where(held_by_any(jobs))
            .values(status=JobStatus.DONE.value, locked_by=None, locked_until=None, finished_at=now)
            .returning(JOBS.c.id)
        )
    )
    if held:
        session.execute(_INSERT_RUN, [run_row(job, now, JobStatus.DONE.value, None) for job in jobs if job.id in held])
    return len(held)


_EXTEND_PG = text(
    """
    UPDATE jobs SET locked_until = :expiry
    FROM unnest(CAST(:ids AS BIGINT[]), CAST(:attempts AS INTEGER[])) AS held(id, attempt)
    WHERE jobs.id = held.id AND jobs.attempts = held.attempt
        AND jobs.status = :running AND jobs.locked_by = :worker
    """
)


def extend(session: Session, jobs: Sequence[ClaimedJob], *, expiry: int) -> int:
    """Extend the leases of ``jobs`` still held to ``expiry``; returns how many were. The rows
    stay locked until the transaction ends."""
    if not jobs:
        return 0
    workers = {job.worker for job in jobs}
    if session.get_bind().dialect.name == "postgresql" and len(workers) == 1:
        params = {
            "ids": _array(job.id for job in jobs),
            "attempts": _array(job.attempt for job in jobs),
            "worker": workers.pop(),
            "expiry": expiry,
            "running": JobStatus.RUNNING.value,
        }
        return cast(CursorResult[Any], session.execute(_EXTEND_PG, params)).rowcount
    statement = update(JOBS).where(held_by_any(jobs)).values(locked_until=expiry)
    return cast(CursorResult[Any], session.execute(statement)).rowcount


class LeaseKeeper:
    """Renews the leases of jobs held (running, or claimed and waiting in a batch), so that
    nobody reclaims a job still in hand.

    Leases are renewed once less than two thirds of them remain; short jobs never cost a write.
    A job whose row a worker's transaction holds locked right now is skipped, not waited for
    (PostgreSQL): nobody can take it over while that transaction lasts.
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

    def extended(self, job: ClaimedJob, expiry: int) -> None:
        """The worker extended this lease itself (in its own transaction)."""
        with self._lock:
            if (job.id, job.attempt) in self._held:
                self._held[(job.id, job.attempt)] = (job, expiry)

    def renew_due(self) -> int:
        """Extend every held lease that is past a third of its length; returns how many were."""
        now = self.clock()
        with self._lock:
            due = [job for job, expiry in self._held.values() if expiry - now < self.lease * 2 // 3]
        if not due:
            return 0
        expiry = now + self.lease
        with unit_of_work(self.factory) as session:
            free = select(JOBS.c.id).where(held_by_any(due)).with_for_update(skip_locked=True)
            renewed_ids = set(
                session.scalars(
                    update(JOBS).where(JOBS.c.id.in_(free)).values(locked_until=expiry).returning(JOBS.c.id)
                )
            )
            # Rows held by a transaction in progress were skipped: still ours when their lease is.
            ours = still_held(session, [job for job in due if job.id not in renewed_ids], lock=False)
        renewed = 0
        with self._lock:
            for job in due:
                key = (job.id, job.attempt)
                if key not in self._held:
                    continue  # finished while we renewed
                if job.id in renewed_ids:
                    self._held[key] = (job, expiry)
                    renewed += 1
                elif job.id not in ours:
                    # Its completion will be refused; nothing more to keep alive.
                    log.warning("job %s: lease of %s attempt %s was taken over", job.id, job.worker, job.attempt)
                    del self._held[key]
        return renewed

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(max(0.05, self.lease / MICROS / 3)):
            try:
                self.renew_due()
            except Exception:
                log.exception("renewing job leases failed; retrying")

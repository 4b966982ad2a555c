"""The job queue and its workers: retries, dead jobs, leases, periodic jobs, burst and signals."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import StatementError

from qunyun.db.base import from_micros, now_micros, to_micros
from qunyun.db.session import unit_of_work
from qunyun.models import Job, JobRun, JobStatus, Organisation
from qunyun.timeutil import utcnow
from qunyun.worker.queue import enqueue
from qunyun.worker.runner import (
    IMPORTS_ENV,
    MICROS,
    InProcessWorker,
    LeaseKeeper,
    backoff_seconds,
    claim_jobs,
    describe_error,
    run_workers,
)
from qunyun.worker.scheduler import schedule_due
from tests.worker.conftest import MakeWorker
from tests.worker.handlers import COMMITS, RECORD, TICK, TYPED
from tests.worker.support import LEASE, Factory, FakeClock, add_job, effects, get_job, runs, steal

REPO = Path(__file__).resolve().parents[2]


def test_a_job_runs_once_and_its_run_is_recorded(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id})
    worker = make_worker()

    assert worker.run_next() is True
    assert worker.run_next() is False

    job = get_job(db, job_id)
    assert (job.status, job.attempts, job.locked_by, job.locked_until) == ("done", 1, None, None)
    assert job.finished_at is not None
    [run] = runs(db, job_id)
    assert (run.attempt, run.worker, run.outcome, run.error) == (1, "test:1", "done", None)
    assert run.started_at <= run.finished_at
    [effect] = effects(db, job_id)
    assert effect.detail["attempt"] == 1


def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(
    db: Factory, org_id: int, make_worker: MakeWorker, clock: FakeClock
) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id, "fail_times": 2})
    worker = make_worker(backoff_base=10)

    assert worker.run_next() is True
    job = get_job(db, job_id)
    assert (job.status, job.attempts, job.last_error) == ("queued", 1, "RuntimeError: planned failure 1")
    assert clock.now + 5 * MICROS <= to_micros(job.run_at) <= clock.now + 10 * MICROS
    assert effects(db, job_id) == []  # the failed attempt's writes rolled back
    assert worker.run_next() is False  # not due before its backoff

    clock.advance(10)
    assert worker.run_next() is True
    job = get_job(db, job_id)
    assert (job.status, job.attempts) == ("queued", 2)
    assert clock.now + 10 * MICROS <= to_micros(job.run_at) <= clock.now + 20 * MICROS

    clock.advance(20)
    assert worker.run_next() is True
    job = get_job(db, job_id)
    assert (job.status, job.attempts) == ("done", 3)
    assert [(r.attempt, r.outcome, r.error) for r in runs(db, job_id)] == [
        (1, "retry", "RuntimeError: planned failure 1"),
        (2, "retry", "RuntimeError: planned failure 2"),
        (3, "done", None),
    ]
    [effect] = effects(db, job_id)
    assert effect.detail["attempt"] == 3


def test_a_job_is_dead_after_max_attempts_with_the_reason(
    db: Factory, org_id: int, make_worker: MakeWorker, clock: FakeClock
) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id, "fail_times": 99}, max_attempts=3)
    worker = make_worker()

    for _ in range(3):
        assert worker.run_next() is True
        clock.advance(3600)
    assert worker.run_next() is False

    job = get_job(db, job_id)
    assert (job.status, job.attempts, job.last_error) == ("dead", 3, "RuntimeError: planned failure 3")
    assert job.finished_at is not None and job.locked_by is None
    assert [r.outcome for r in runs(db, job_id)] == ["retry", "retry", "dead"]
    assert effects(db, job_id) == []


def test_a_job_of_unknown_kind_is_dead_at_once(db: Factory, make_worker: MakeWorker) -> None:
    job_id = add_job(db, "nobody.handles_this")

    assert make_worker().run_next() is True

    job = get_job(db, job_id)
    assert (job.status, job.attempts) == ("dead", 1)
    assert job.last_error is not None
    assert "no handler is registered for 'nobody.handles_this'" in job.last_error
    [run] = runs(db, job_id)
    assert (run.outcome, run.error) == ("dead", job.last_error)


def test_a_typed_job_gets_its_payload_as_the_model(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    job_id = add_job(db, TYPED, {"org_id": org_id, "note": "hello"})

    assert make_worker().run_next() is True

    assert get_job(db, job_id).status == "done"
    [effect] = effects(db, job_id)
    assert effect.detail == {"note": "hello"}


def test_enqueue_refuses_a_payload_that_does_not_fit_its_model(db: Factory, org_id: int) -> None:
    with pytest.raises(ValueError, match=r"test.typed: note: Field required"):
        add_job(db, TYPED, {"org_id": org_id})
    with pytest.raises(ValueError, match=r"org_id: Input should be a valid integer"):
        add_job(db, TYPED, {"org_id": str(org_id), "note": "x"})
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_a_stored_payload_that_does_not_fit_is_dead_at_once_with_the_reason(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    job_id = add_job(db, TYPED, {"org_id": org_id, "note": "fine"}, max_attempts=5)
    with unit_of_work(db) as s:  # an old or hand-made job: the payload no longer fits
        s.execute(update(Job).where(Job.id == job_id).values(payload={"org_id": org_id, "nite": "typo"}))

    assert make_worker().run_next() is True

    job = get_job(db, job_id)
    assert (job.status, job.attempts) == ("dead", 1)
    assert job.last_error is not None
    assert job.last_error.startswith("InvalidPayload: test.typed:")
    assert "note: Field required" in job.last_error and "nite: Extra inputs are not permitted" in job.last_error
    assert effects(db, job_id) == []


def test_a_handler_that_commits_is_stopped(db: Factory, make_worker: MakeWorker) -> None:
    job_id = add_job(db, COMMITS)

    assert make_worker().run_next() is True

    job = get_job(db, job_id)
    assert job.status == "dead"
    assert job.last_error == "HandlerCommitted: the handler committed its own transaction"


def test_enqueue_with_a_key_is_idempotent(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    with unit_of_work(db) as s:
        first = enqueue(s, RECORD, {"org_id": org_id}, key="once")
        assert enqueue(s, RECORD, {"org_id": org_id}, key="once").id == first.id
    assert add_job(db, RECORD, {"org_id": org_id}, key="once") == first.id
    make_worker().run_next()
    assert add_job(db, RECORD, {"org_id": org_id}, key="once") == first.id  # also once done

    with db() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
    assert len(effects(db, first.id)) == 1


def test_jobs_run_by_priority_then_due_time(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    low = add_job(db, RECORD, {"org_id": org_id})
    high = add_job(db, RECORD, {"org_id": org_id}, priority=5)
    later = add_job(db, RECORD, {"org_id": org_id})
    worker = make_worker()

    claimed = [worker.claim() for _ in range(3)]
    assert [job.id if job else None for job in claimed] == [high, low, later]


def test_a_job_whose_lease_expired_is_reclaimed(
    db: Factory, org_id: int, make_worker: MakeWorker, clock: FakeClock
) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id})
    crashed = make_worker("crashed:1")
    claimed = crashed.claim()  # … and the process dies before running it
    assert claimed is not None
    rescuer = make_worker("rescuer:1")

    assert rescuer.run_next() is False  # the lease still holds
    clock.advance(LEASE + 1)
    assert rescuer.run_next() is True

    job = get_job(db, job_id)
    assert (job.status, job.attempts) == ("done", 2)
    lost, done = runs(db, job_id)
    assert (lost.attempt, lost.worker, lost.outcome) == (1, "crashed:1", "retry")
    assert lost.error is not None and lost.error.startswith("LeaseExpired: worker crashed:1")
    assert lost.finished_at <= done.started_at
    assert (done.attempt, done.worker, done.outcome) == (2, "rescuer:1", "done")

    # The crashed worker wakes up late: its completion is refused, its effects roll back.
    assert crashed.execute(claimed) == "lost"
    assert len(effects(db, job_id)) == 1
    assert len(runs(db, job_id)) == 2


def test_an_expired_lease_on_the_last_attempt_buries_the_job(
    db: Factory, org_id: int, make_worker: MakeWorker, clock: FakeClock
) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id}, max_attempts=1)
    assert make_worker("crashed:1").claim() is not None
    clock.advance(LEASE + 1)

    assert make_worker("rescuer:1").run_next() is False

    job = get_job(db, job_id)
    assert (job.status, job.attempts) == ("dead", 1)
    assert job.last_error is not None and job.last_error.startswith("LeaseExpired")
    assert [r.outcome for r in runs(db, job_id)] == ["dead"]


def test_completion_is_refused_when_the_lease_was_taken_over(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id})
    worker = make_worker()
    claimed = worker.claim()
    assert claimed is not None
    steal(db, job_id)

    assert worker.execute(claimed) == "lost"

    assert effects(db, job_id) == []  # the handler ran, but its writes rolled back
    assert runs(db, job_id) == []  # the new holder records the attempts
    job = get_job(db, job_id)
    assert (job.status, job.locked_by, job.attempts) == ("running", "thief:1", 2)


def test_a_failure_is_not_recorded_when_the_lease_was_taken_over(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id, "fail_times": 1})
    worker = make_worker()
    claimed = worker.claim()
    assert claimed is not None
    steal(db, job_id)

    assert worker.execute(claimed) == "lost"

    job = get_job(db, job_id)
    assert (job.status, job.locked_by, job.last_error) == ("running", "thief:1", None)
    assert runs(db, job_id) == []


def test_the_lease_of_a_long_job_is_renewed(
    db: Factory, org_id: int, make_worker: MakeWorker, clock: FakeClock
) -> None:
    job_id = add_job(db, RECORD, {"org_id": org_id})
    keeper = LeaseKeeper(factory=db, lease_seconds=LEASE, clock=clock)
    claimed = make_worker().claim()
    assert claimed is not None
    keeper.hold(claimed)

    clock.advance(LEASE / 4)
    assert keeper.renew_due() == 0  # still fresh: no write
    clock.advance(LEASE / 4)
    assert keeper.renew_due() == 1
    assert get_job(db, job_id).locked_until == from_micros(clock.now + LEASE * MICROS)

    clock.advance(LEASE * 3 / 4)  # past the first lease, within the renewed one
    assert make_worker("other:1").claim() is None
    assert get_job(db, job_id).locked_by == "test:1"

    steal(db, job_id)
    clock.advance(LEASE / 2)
    assert keeper.renew_due() == 0  # taken over: dropped, not renewed
    assert keeper.renew_due() == 0
    keeper.release(claimed)


def test_backoff_doubles_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempt, low, high in [(1, 5, 10), (2, 10, 20), (3, 20, 40), (30, 50, 100)]:
        delays = [backoff_seconds(attempt, base=10, cap=100, rng=rng) for _ in range(50)]
        assert all(low <= d <= high for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert backoff_seconds(10_000, base=10, cap=100) <= 100


def test_error_reasons_hold_no_passwords_or_sql_values() -> None:
    exc = ConnectionError("cannot reach postgresql://app:hunter2@db.internal:5432/qunyun")
    assert describe_error(exc) == "ConnectionError: cannot reach postgresql://app:***@db.internal:5432/qunyun"

    wrapped = StatementError("boom", "INSERT INTO t VALUES (?)", {"phone": "13800000000"}, ValueError("bad"))
    assert describe_error(wrapped) == "StatementError (ValueError): bad"
    assert describe_error(KeyError()) == "KeyError"


def test_the_scheduler_enqueues_a_periodic_job_once_per_bucket(db: Factory) -> None:
    def tick_keys(at: datetime) -> list[str]:
        with unit_of_work(db) as s:
            return [key for key in schedule_due(s, now=at) if key.startswith(f"{TICK}@")]

    assert tick_keys(datetime(2026, 3, 1, 12, 3, tzinfo=UTC)) == [f"{TICK}@2026-03-01T12:00:00Z"]
    assert tick_keys(datetime(2026, 3, 1, 12, 9, 59, tzinfo=UTC)) == []
    assert tick_keys(datetime(2026, 3, 1, 12, 10, tzinfo=UTC)) == [f"{TICK}@2026-03-01T12:10:00Z"]
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Job).where(Job.kind == TICK)) == 2


def test_many_workers_scheduling_at_once_enqueue_one_job(db: Factory) -> None:
    at = datetime(2026, 3, 1, 12, 3, tzinfo=UTC)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def schedule() -> None:
        try:
            barrier.wait()
            with unit_of_work(db) as s:
                schedule_due(s, now=at)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=schedule) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with db() as s:
        assert s.scalars(select(Job.key).where(Job.kind == TICK)).all() == [f"{TICK}@2026-03-01T12:00:00Z"]


def record_jobs(db: Factory) -> dict[int, str]:
    with db() as s:
        return {job_id: status for job_id, status in s.execute(select(Job.id, Job.status).where(Job.kind == RECORD))}


def test_burst_mode_exits_when_no_job_is_due(db: Factory, org_id: int) -> None:
    due = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(20)]
    future = add_job(db, RECORD, {"org_id": org_id}, run_at=datetime(2099, 1, 1, tzinfo=UTC))
    sigterm_handler = signal.getsignal(signal.SIGTERM)

    run_workers(concurrency=2, burst=True, name="burst")

    statuses = record_jobs(db)
    assert all(statuses[i] == JobStatus.DONE for i in due)
    assert statuses[future] == JobStatus.QUEUED
    assert signal.getsignal(signal.SIGTERM) is sigterm_handler  # restored


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_in_process_workers_run_jobs_until_stopped(db: Factory, org_id: int) -> None:
    pool = InProcessWorker(2, factory=db, name="serve")
    pool.start()
    try:
        ids = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(10)]
        wait_for(lambda: all(record_jobs(db)[i] == JobStatus.DONE for i in ids))
    finally:
        pool.stop(timeout=10)
    assert pool.join(0) is True
    assert pool.failures == []
    with db() as s:
        workers = set(s.scalars(select(JobRun.worker).where(JobRun.job_id.in_(ids))))
    assert workers <= {"serve:0", "serve:1"}


def test_sigterm_lets_the_worker_finish_its_job_then_stop(
    database_url: str, db: Factory, org_id: int, tmp_path: Path
) -> None:
    first = add_job(db, RECORD, {"org_id": org_id, "sleep_ms": 1500})
    second = add_job(db, RECORD, {"org_id": org_id, "sleep_ms": 1500})
    env = {**os.environ, "QUNYUN_DATABASE_URL": database_url, IMPORTS_ENV: "tests.worker.handlers"}
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qunyun.cli", "worker", "--name", "sigterm"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: record_jobs(db)[first] == JobStatus.RUNNING or proc.poll() is not None, 60)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log.read_text()
    assert record_jobs(db) == {first: JobStatus.DONE, second: JobStatus.QUEUED}
    assert len(effects(db, first)) == 1


def test_a_claim_for_one_organisation_leaves_the_others_jobs_queued(db: Factory, org_id: int) -> None:
    with unit_of_work(db) as s:
        other = Organisation(name="Other", slug="other", created_at=utcnow())
        s.add(other)
        s.flush()
        mine = enqueue(s, RECORD, {"n": 1}, org_id=org_id).id
        theirs = enqueue(s, RECORD, {"n": 2}, org_id=other.id).id
    with unit_of_work(db) as s:
        claimed = claim_jobs(s, "simulate:1", now=now_micros(), lease_seconds=LEASE, limit=10, org_id=org_id)
    assert [job.id for job in claimed] == [mine]
    with unit_of_work(db, write=False) as s:
        assert s.scalar(select(Job.status).where(Job.id == theirs)) == JobStatus.QUEUED.value

"""Jobs claimed in batches and finished in one transaction; two-phase jobs (prepare, call, record)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from qunyun.db.session import make_engine, unit_of_work
from qunyun.models import AuditLog, Job, JobStatus
from qunyun.timeutil import utcnow
from qunyun.worker.queue import TwoPhaseJob, enqueue_many, handler_for, two_phase_handler
from qunyun.worker.runner import Worker
from tests.worker.conftest import MakeWorker
from tests.worker.handlers import (
    CALLS,
    COMMITS,
    EXECUTION_LOG_ENV,
    RECORD,
    SETTLED,
    SETTLES,
    TWO_PHASE,
    TYPED,
    Crash,
    Settles,
)
from tests.worker.support import LEASE, Factory, FakeClock, add_job, effects, get_job, runs, steal


@pytest.fixture(autouse=True)
def calls() -> Iterator[None]:
    CALLS.seen.clear()
    CALLS.hook = None
    yield
    CALLS.seen.clear()
    CALLS.hook = None


def statuses(db: Factory, ids: list[int]) -> list[str]:
    with db() as s:
        found = {job_id: status for job_id, status in s.execute(select(Job.id, Job.status).where(Job.id.in_(ids)))}
    return [found[i] for i in ids]


def test_a_worker_claims_a_batch_and_finishes_it(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    ids = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(5)]
    worker = make_worker(batch=3)

    assert [job.id for job in worker.claim_batch()] == ids[:3]
    assert statuses(db, ids) == ["running"] * 3 + ["queued"] * 2
    assert worker.run_next() is True  # the two left
    assert worker.run_next() is False

    assert statuses(db, ids) == ["running"] * 3 + ["done"] * 2


def test_concurrent_claimers_never_take_the_same_job(db: Factory, org_id: int, clock: FakeClock) -> None:
    with unit_of_work(db) as s:
        enqueue_many(s, [(RECORD, {"org_id": org_id}, org_id)] * 300)
    claimers = 6
    barrier = threading.Barrier(claimers)
    claimed: list[list[int]] = [[] for _ in range(claimers)]
    errors: list[BaseException] = []

    def claim(i: int) -> None:
        worker = Worker(f"claimer:{i}", factory=db, lease_seconds=LEASE, clock=clock, batch=7)
        try:
            barrier.wait()
            while jobs := worker.claim_batch():
                claimed[i].extend(job.id for job in jobs)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    every = [job_id for ids in claimed for job_id in ids]
    assert len(every) == 300 and len(set(every)) == 300
    with db() as s:
        assert set(s.scalars(select(Job.attempts))) == {1}
        assert sum(1 for ids in claimed if ids) > 1  # they did claim side by side


def test_one_failing_job_does_not_undo_the_others_of_its_batch(
    db: Factory, org_id: int, make_worker: MakeWorker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ok1 = add_job(db, RECORD, {"org_id": org_id})
    bad = add_job(db, RECORD, {"org_id": org_id, "fail_times": 1})
    ok2 = add_job(db, RECORD, {"org_id": org_id})
    worker = make_worker()
    monkeypatch.setenv(EXECUTION_LOG_ENV, str(tmp_path))

    assert worker.execute_batch(worker.claim_batch()) == ["done", "retry", "done"]

    # The batch ran without savepoints until the failure, then again with one per job; the
    # failed handler is not run a second time for the same attempt.
    ran = Counter(int(line) for path in tmp_path.iterdir() for line in path.read_text().split())
    assert ran == {ok1: 2, bad: 1, ok2: 1}

    assert statuses(db, [ok1, bad, ok2]) == ["done", "queued", "done"]
    assert len(effects(db, ok1)) == len(effects(db, ok2)) == 1
    assert effects(db, bad) == []  # its savepoint rolled back, and only its
    assert [(r.outcome, r.error) for r in runs(db, bad)] == [("retry", "RuntimeError: planned failure 1")]
    assert [r.outcome for r in runs(db, ok1)] == ["done"]


def test_unknown_kinds_invalid_payloads_and_committing_handlers_in_a_batch_are_dead_alone(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    ids = [
        add_job(db, RECORD, {"org_id": org_id}),
        add_job(db, "nobody.handles_this"),
        add_job(db, TYPED, {"org_id": org_id, "note": "fine"}),
        add_job(db, COMMITS),
        add_job(db, RECORD, {"org_id": org_id}),
    ]
    with unit_of_work(db) as s:  # a stored payload that no longer fits its model
        s.get_one(Job, ids[2]).payload = {"org_id": org_id}
    worker = make_worker()

    assert worker.execute_batch(worker.claim_batch()) == ["done", "dead", "dead", "dead", "done"]

    jobs = [get_job(db, i) for i in ids]
    assert [job.status for job in jobs] == ["done", "dead", "dead", "dead", "done"]
    assert jobs[1].last_error is not None and jobs[1].last_error.startswith("UnknownJobKind:")
    assert jobs[2].last_error == "InvalidPayload: test.typed: note: Field required"
    assert jobs[3].last_error == "HandlerCommitted: the handler committed its own transaction"
    # The refused commit committed nothing: each good job's effect is there once, with its completion.
    assert [len(effects(db, i)) for i in ids] == [1, 0, 0, 0, 1]
    assert [len(runs(db, i)) for i in ids] == [1, 1, 1, 1, 1]


def test_a_lease_lost_within_a_batch_costs_that_job_only(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    ids = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(3)]
    worker = make_worker()
    batch = worker.claim_batch()
    steal(db, ids[1])

    assert worker.execute_batch(batch) == ["done", "lost", "done"]

    assert [len(effects(db, i)) for i in ids] == [1, 0, 1]
    job = get_job(db, ids[1])
    assert (job.status, job.locked_by, job.attempts) == ("running", "thief:1", 2)
    assert runs(db, ids[1]) == []  # the new holder records the attempts


def test_a_slow_batch_gives_its_unstarted_jobs_back(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    ids = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(3)]
    worker = make_worker(batch_seconds=0)  # every job is "slow"

    assert worker.run_next() is True

    jobs = [get_job(db, i) for i in ids]
    assert [(j.status, j.attempts, j.locked_by) for j in jobs] == [
        ("done", 1, None),
        ("queued", 0, None),  # as if never claimed: no attempt counted, no run recorded
        ("queued", 0, None),
    ]
    assert [len(runs(db, i)) for i in ids] == [1, 0, 0]
    while worker.run_next():
        pass
    assert statuses(db, ids) == ["done"] * 3
    assert [r.attempt for i in ids for r in runs(db, i)] == [1, 1, 1]


def test_a_worker_asked_to_stop_finishes_the_job_in_hand_and_gives_the_rest_back(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    ids = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(3)]
    stop = threading.Event()
    worker = make_worker()
    worker._stop = stop  # what loop() does
    stop.set()

    assert worker.run_next() is True

    assert statuses(db, ids) == ["done", "queued", "queued"]


def test_a_worker_that_stops_gives_back_the_batch_it_claimed_ahead(
    db: Factory, database_url: str, org_id: int, make_worker: MakeWorker
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("on SQLite every claim is a transaction of its own")
    ids = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(4)]
    worker = make_worker(batch=2)
    # What the loop does: finishing a batch claims the next one in the same transaction.
    assert worker._next_batch(claim_ahead=True) is True
    assert statuses(db, ids) == ["done", "done", "running", "running"]

    stop = threading.Event()
    stop.set()  # asked to stop before it began the batch in hand
    worker.loop(stop)

    jobs = [get_job(db, i) for i in ids[2:]]
    assert [(j.status, j.attempts, j.locked_by) for j in jobs] == [("queued", 0, None)] * 2
    assert [len(runs(db, i)) for i in ids] == [1, 1, 0, 0]


def test_a_connection_that_died_between_batches_costs_no_job_an_attempt(
    db: Factory, database_url: str, org_id: int, clock: FakeClock
) -> None:
    """Workers check out connections without a ping: a dead one fails the batch's transaction,
    which runs again on a fresh connection, and no job is blamed for it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL server ends the connection")
    engine = make_engine(database_url, pool_size=1, max_overflow=0, pool_pre_ping=False)
    try:
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        worker = Worker("test:1", factory=factory, lease_seconds=LEASE, clock=clock)
        ids = [add_job(db, RECORD, {"org_id": org_id}) for _ in range(3)]
        batch = worker.claim_batch()
        with factory() as s:
            backend = s.scalar(text("SELECT pg_backend_pid()"))
        with unit_of_work(db) as s:
            s.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})

        assert worker.execute_batch(batch) == ["done"] * 3

        assert statuses(db, ids) == ["done"] * 3
        assert [[(r.attempt, r.outcome) for r in runs(db, i)] for i in ids] == [[(1, "done")]] * 3
        assert [len(effects(db, i)) for i in ids] == [1, 1, 1]
    finally:
        engine.dispose()


# -- two-phase jobs


class DirectPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    org_id: int


def two_phase(db: Factory, org_id: int, **payload: object) -> int:
    return add_job(db, TWO_PHASE, {"org_id": org_id, **payload})


def outcome_of(db: Factory, job_id: int) -> list[object]:
    return [row.detail["outcome"] for row in effects(db, job_id, "test.recorded")]


def test_prepare_commits_before_the_call_and_record_commits_with_the_completion(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    job_id = two_phase(db, org_id)
    seen_during_call: list[tuple[int, str, int]] = []

    def look(job: int) -> None:
        # Another session, as another process would see the database during the call.
        with db() as s:
            prepared = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "test.prepared"))
            status = s.scalar(select(Job.status).where(Job.id == job))
            recorded = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "test.recorded"))
        assert prepared is not None and status is not None and recorded is not None
        seen_during_call.append((prepared, status, recorded))

    CALLS.hook = look
    assert make_worker().run_next() is True

    assert seen_during_call == [(1, "running", 0)]
    assert CALLS.seen == [(job_id, 1)]
    assert outcome_of(db, job_id) == [f"receipt-{job_id}-1"]
    job = get_job(db, job_id)
    assert (job.status, job.locked_by) == ("done", None)
    assert [(r.attempt, r.outcome) for r in runs(db, job_id)] == [(1, "done")]


def test_record_sees_the_exception_the_call_raised(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    job_id = two_phase(db, org_id, call_fails=True)

    assert make_worker().run_next() is True

    # record chose to keep the failure and return: the job is done, the failure is on record.
    assert outcome_of(db, job_id) == ["ConnectionError: platform unreachable"]
    assert get_job(db, job_id).status == "done"


def test_a_record_that_raises_retries_the_job_and_prepare_runs_again(
    db: Factory, org_id: int, make_worker: MakeWorker, clock: FakeClock
) -> None:
    job_id = two_phase(db, org_id, record_fails_times=1)
    worker = make_worker(backoff_base=1)

    assert worker.run_next() is True
    job = get_job(db, job_id)
    assert (job.status, job.last_error) == ("queued", "RuntimeError: planned record failure 1")
    assert outcome_of(db, job_id) == []  # record's writes rolled back with its savepoint
    clock.advance(5)
    assert worker.run_next() is True

    assert get_job(db, job_id).status == "done"
    assert [row.detail["attempt"] for row in effects(db, job_id, "test.prepared")] == [1, 2]
    assert CALLS.seen == [(job_id, 1), (job_id, 2)]
    assert [r.outcome for r in runs(db, job_id)] == ["retry", "done"]


def test_nothing_to_call_completes_the_job_in_the_prepare_transaction(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    job_id = two_phase(db, org_id, nothing_to_call=True)

    assert make_worker().run_next() is True

    assert CALLS.seen == []
    assert get_job(db, job_id).status == "done"
    assert len(effects(db, job_id, "test.prepared")) == 1 and outcome_of(db, job_id) == []


def test_a_batch_mixes_ordinary_and_two_phase_jobs(db: Factory, org_id: int, make_worker: MakeWorker) -> None:
    ids = [
        add_job(db, RECORD, {"org_id": org_id}),
        two_phase(db, org_id),
        two_phase(db, org_id, call_fails=True),
        add_job(db, RECORD, {"org_id": org_id, "fail_times": 1}),
        two_phase(db, org_id, record_fails_times=1),
        two_phase(db, org_id),
    ]
    worker = make_worker(call_threads=3)

    try:
        assert worker.execute_batch(worker.claim_batch()) == ["done", "done", "done", "retry", "retry", "done"]
    finally:
        worker.close()

    assert sorted(CALLS.seen) == [(i, 1) for i in (ids[1], ids[2], ids[4], ids[5])]
    assert outcome_of(db, ids[1]) == [f"receipt-{ids[1]}-1"]
    assert outcome_of(db, ids[2]) == ["ConnectionError: platform unreachable"]
    assert outcome_of(db, ids[4]) == []


def test_a_lease_lost_during_the_call_rolls_back_nothing_but_skips_its_record(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    kept = two_phase(db, org_id)
    taken = two_phase(db, org_id)

    def take_over(job: int) -> None:
        if job == taken:
            steal(db, taken)

    CALLS.hook = take_over
    worker = make_worker()
    assert worker.execute_batch(worker.claim_batch()) == ["done", "lost"]

    assert outcome_of(db, kept) == [f"receipt-{kept}-1"]
    # The call happened; its outcome is unknown to the database: the holder's prepare must cope.
    assert outcome_of(db, taken) == []
    assert len(effects(db, taken, "test.prepared")) == 1
    job = get_job(db, taken)
    assert (job.status, job.locked_by) == ("running", "thief:1")


def test_a_two_phase_job_whose_lease_was_lost_before_it_ran_neither_prepares_nor_calls(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    kept = two_phase(db, org_id)
    taken = two_phase(db, org_id)
    worker = make_worker()
    batch = worker.claim_batch()
    steal(db, taken)

    assert worker.execute_batch(batch) == ["done", "lost"]

    assert CALLS.seen == [(kept, 1)]
    assert effects(db, taken) == []  # its prepare ran in a transaction that was rolled back
    assert outcome_of(db, kept) == [f"receipt-{kept}-1"]
    assert len(effects(db, kept, "test.prepared")) == 1


def test_a_worker_killed_between_the_phases_leaves_a_job_that_prepares_again(
    db: Factory, org_id: int, make_worker: MakeWorker, clock: FakeClock
) -> None:
    job_id = two_phase(db, org_id)

    def die(_job: int) -> None:
        raise Crash

    CALLS.hook = die
    crashed = make_worker("crashed:1")
    with pytest.raises(Crash):
        crashed.run_next()
    CALLS.hook = None
    # What survives the crash: the committed prepare and a running job under the dead lease.
    assert [row.detail["attempt"] for row in effects(db, job_id, "test.prepared")] == [1]
    assert get_job(db, job_id).status == "running"

    rescuer = make_worker("rescuer:1")
    assert rescuer.run_next() is False  # the lease still holds
    clock.advance(LEASE + 1)
    assert rescuer.run_next() is True

    assert [row.detail["attempt"] for row in effects(db, job_id, "test.prepared")] == [1, 2]
    assert outcome_of(db, job_id) == [f"receipt-{job_id}-2"]
    assert get_job(db, job_id).status == "done"
    lost, done = runs(db, job_id)
    assert (lost.worker, lost.outcome) == ("crashed:1", "retry")
    assert lost.error is not None and lost.error.startswith("LeaseExpired")
    assert (done.worker, done.outcome) == ("rescuer:1", "done")


def test_a_simulation_style_loop_executes_claimed_two_phase_jobs_one_by_one(
    db: Factory, org_id: int, make_worker: MakeWorker
) -> None:
    ids = [two_phase(db, org_id), add_job(db, RECORD, {"org_id": org_id})]
    worker = make_worker()

    assert [worker.execute(job) for job in worker.claim_batch()] == ["done", "done"]

    assert statuses(db, ids) == ["done", "done"]
    assert outcome_of(db, ids[0]) == [f"receipt-{ids[0]}-1"]


def test_two_phase_payloads_are_validated_at_enqueue(db: Factory, org_id: int) -> None:
    with pytest.raises(ValueError, match=r"test.two_phase: call_fails: Input should be a valid boolean"):
        two_phase(db, org_id, call_fails="yes")
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 0


class Direct(TwoPhaseJob[DirectPayload, str, str]):
    def prepare(self, session: Session, payload: DirectPayload) -> str | None:
        session.add(
            AuditLog(
                org_id=payload.org_id, action="test.direct", target_type="x", target_id="1", detail={}, at=utcnow()
            )
        )
        return "hello"

    def call(self, prepared: str) -> str:
        return prepared.upper()

    def record(self, session: Session, payload: DirectPayload, prepared: str, outcome: str | BaseException) -> None:
        session.add(
            AuditLog(
                org_id=payload.org_id,
                action="test.direct",
                target_type="x",
                target_id="2",
                detail={"outcome": str(outcome)},
                at=utcnow(),
            )
        )


two_phase_handler("test.direct", payload=DirectPayload)(Direct)


def test_a_two_phase_handler_called_directly_runs_its_three_phases(db: Factory, org_id: int) -> None:
    """For tests and tools (the worker never calls inside a transaction)."""
    handler = handler_for("test.direct")
    assert handler is not None and isinstance(handler.two_phase, Direct)
    with unit_of_work(db) as s:
        handler(s, {"org_id": org_id})
    with db() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.action == "test.direct").order_by(AuditLog.id)).all()
    assert [(r.target_id, r.detail) for r in rows] == [("1", {}), ("2", {"outcome": "HELLO"})]


def test_periodic_jobs_run_in_batches(db: Factory, make_worker: MakeWorker) -> None:
    worker = make_worker()
    keys = worker.schedule_periodic(force=True)
    assert keys
    while worker.run_next():
        pass
    with db() as s:
        assert Counter(s.scalars(select(Job.status))) == Counter({JobStatus.DONE.value: len(keys)})


# -- warmed two-phase batches: settle


@pytest.fixture
def settles() -> Iterator[Settles]:
    SETTLES.calls.clear()
    SETTLES.fail_next = False
    yield SETTLES
    SETTLES.calls.clear()
    SETTLES.fail_next = False


def test_a_warmed_batch_settles_its_writes_before_the_calls_and_with_the_completions(
    db: Factory, org_id: int, make_worker: MakeWorker, settles: Settles
) -> None:
    ids = [add_job(db, SETTLED, {"org_id": org_id}) for _ in range(3)]
    seen_during_calls: list[tuple[int, str]] = []

    def look(job: int) -> None:
        with db() as s:
            prepared = s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "test.prepared"))
            status = s.scalar(select(Job.status).where(Job.id == job))
        assert prepared is not None and status is not None
        seen_during_calls.append((prepared, status))

    CALLS.hook = look
    assert make_worker().run_next() is True

    # Every prepare's write committed (by settle) before the first call; records with the completions.
    assert seen_during_calls == [(3, "running")] * 3
    assert settles.calls == [(False, 3), (True, 3)]
    assert statuses(db, ids) == ["done"] * 3
    assert [[r.detail["outcome"] for r in effects(db, i, "test.recorded")] for i in ids] == [
        [f"receipt-{i}-1"] for i in ids
    ]


def test_a_settle_that_fails_runs_the_batch_again_one_job_at_a_time(
    db: Factory, org_id: int, make_worker: MakeWorker, settles: Settles
) -> None:
    ids = [add_job(db, SETTLED, {"org_id": org_id}) for _ in range(3)]
    settles.fail_next = True

    assert make_worker().run_next() is True

    # The failed settle took the batch's prepares with it; unwarmed, each job wrote its own, once.
    assert statuses(db, ids) == ["done"] * 3
    assert [len(effects(db, i, "test.prepared")) for i in ids] == [1, 1, 1]
    assert [len(effects(db, i, "test.recorded")) for i in ids] == [1, 1, 1]
    assert sorted(CALLS.seen) == [(i, 1) for i in ids]
    assert settles.calls == [(True, 3)]  # the record phase, warmed again, settled

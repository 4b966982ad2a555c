"""SQLite writers of one process queue for the write lock first come, first served (the
onboarding concurrency test's writers starved in SQLite's busy handler on a loaded machine)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from qunyun.db.session import WriteGate, make_engine, unit_of_work, write_gate


def test_writers_are_served_in_the_order_they_came() -> None:
    gate = WriteGate()
    assert gate.acquire(1)
    served: list[int] = []
    threads = []
    for n in range(5):
        thread = threading.Thread(target=lambda n=n: (gate.acquire(10), served.append(n), gate.release()))
        thread.start()
        threads.append(thread)
        while len(gate._waiting) < n + 1:  # each waits before the next comes
            time.sleep(0.001)
    gate.release()
    for thread in threads:
        thread.join(10)
    assert served == [0, 1, 2, 3, 4]
    assert gate.acquire(0.01)  # free again


def test_a_writer_gives_up_after_the_timeout_and_leaves_the_queue() -> None:
    gate = WriteGate()
    assert gate.acquire(1)
    started = time.monotonic()
    assert not gate.acquire(0.2)
    assert time.monotonic() - started >= 0.2
    assert not gate._waiting
    gate.release()
    assert gate.acquire(0.01)


def test_the_turn_ends_with_the_transaction_or_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "gate.db"
    engine = make_engine(f"sqlite:///{path.as_posix()}")
    other = make_engine(f"sqlite:///{path.as_posix()}")  # another engine on the file: the same gate
    gate = write_gate(str(path))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n INTEGER)"))
        for outcome in ("commit", "rollback", "invalidate", "close"):
            conn = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
            conn.begin()
            conn.execute(text("INSERT INTO t VALUES (1)"))
            assert not gate.acquire(0.05)  # held by the writer
            if outcome == "commit":
                conn.commit()
            elif outcome == "rollback":
                conn.rollback()
            elif outcome == "invalidate":  # the connection broke: thrown away by the pool
                conn.invalidate()
            conn.close()  # back to the pool, its transaction (if any) rolled back
            assert gate.acquire(0.05)
            gate.release()
        with unit_of_work(sessionmaker(bind=other)) as s:
            assert s.scalar(text("SELECT count(*) FROM t")) == 1
        assert gate.acquire(0.05)
        gate.release()
    finally:
        engine.dispose()
        other.dispose()

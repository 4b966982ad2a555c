"""Sends survive workers being killed: 1,000 group messages (300 on SQLite) performed by
`qunyun worker` processes that are SIGKILLed at random moments and restarted until every job is
done.

The platform is the simulator with a durable recording (every call it receives is appended to a
file and fsynced before ``perform`` returns: what a real platform would still know after the
worker died). Half the sends go through a reconciling simulator (it remembers keys like Matrix's
transaction ids), half through a plain one (it cannot tell what became of a call).

What must hold: the platform received no message twice; every action is sent (and then received
exactly once), or uncertain with an open task for a person; no action is left queued or sending,
and no job queued, running or dead.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.connectors.dispatch import PERFORM_JOB, TASK_UNCERTAIN_SEND, request_action
from qunyun.connectors.simulator.recording import read_calls
from qunyun.models import Connection, Group, Job, Organisation, OutboundAction, StaffTask
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from tests.connections.helpers import connection_row

# On SQLite one process writes at a time, which makes the same run several times longer: it sends
# fewer there, with more frequent kills (CI runs the 1,000 on PostgreSQL).
SENDS = {"postgresql": 1000, "sqlite": 300}
GROUPS = 4  # per connection
WORKERS = 3
LEASE_SECONDS = 2
KILLS = 25  # at most
# At least this many kills must have happened for the run to prove anything (a fast machine
# settles SQLite's smaller run between polls, so it is killed less often).
MIN_KILLS = {"postgresql": 10, "sqlite": 5}
# A kill comes once this many more actions have settled since the last one (whatever the speed of
# the machine, workers get to work between kills, and are killed in the middle of it).
KILL_AFTER = {"postgresql": (10, 60), "sqlite": (3, 12)}
# ... or, until the minimum is reached, once this many seconds have passed since the last kill with
# some progress made (a quiet machine settles many actions between two polls and would otherwise
# kill too rarely to prove anything).
KILL_EVERY = {"postgresql": 1.5, "sqlite": 1.0}
# About a minute in CI; a generous bound for a loaded machine (worker start-up alone can take seconds).
DEADLINE_SECONDS = 600


def add_connection(session: Session, org: Organisation, name: str, record_to: Path, *, reconcile: bool) -> Connection:
    prefix = "r" if reconcile else "p"
    now = utcnow()
    groups = [f"{prefix}{n}" for n in range(1, GROUPS + 1)]
    connection = connection_row(
        org.id,
        name,
        settings={"reconcile": reconcile, "record_to": str(record_to), "groups": groups},
        created_at=now,
        updated_at=now,
    )
    session.add(connection)
    session.flush()
    for n in range(1, GROUPS + 1):
        session.add(
            Group(
                org_id=org.id,
                platform="simulator",
                connection_id=connection.id,
                external_id=f"{prefix}{n}",
                name=f"{name} {n} 群",
                created_at=now,
            )
        )
    session.flush()
    return connection


class Workers:
    """``qunyun worker`` processes, killed and restarted at will. A worker counts as up once its
    log says it started (Python start-up is not what this test is about)."""

    def __init__(self, database_url: str, logs: Path) -> None:
        self.env = {
            **os.environ,
            "QUNYUN_DATABASE_URL": database_url,
            "QUNYUN_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "PYTHONUNBUFFERED": "1",
        }
        self.logs = logs
        self.procs: dict[subprocess.Popen[bytes], Path] = {}
        self.names: dict[subprocess.Popen[bytes], str] = {}
        self.started = 0
        self.killed = 0
        self.in_flight_kills = 0  # kills of a worker that held an action in "sending"

    def start(self) -> None:
        self.started += 1
        path = self.logs / f"worker-{self.started}.log"
        with open(path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from qunyun.cli import app; app()",
                    "worker",
                    "--name",
                    f"kill-{self.started}",
                    "--batch",
                    "8",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[proc] = path
        self.names[proc] = f"kill-{self.started}"

    def up(self) -> list[subprocess.Popen[bytes]]:
        return [p for p, path in self.procs.items() if p.poll() is None and b"started" in path.read_bytes()]

    def kill_one(self, rng: random.Random, sending: set[str]) -> bool:
        """SIGKILL a worker that is up, most often one holding an action in ``sending`` (between
        its committed "sending" and its record: the moment that matters); False when none is up."""
        up = self.up()
        if not up:
            return False
        in_flight = [p for p in up if self.names[p] in sending]
        victim = rng.choice(in_flight if in_flight and rng.random() < 0.8 else up)
        victim_was_sending = victim in in_flight
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        del self.procs[victim]
        self.killed += 1
        self.in_flight_kills += victim_was_sending
        return True

    def keep(self, count: int) -> None:
        """Restart crashed ones so that ``count`` are running."""
        for proc in [p for p in self.procs if p.poll() is not None]:
            del self.procs[proc]
        while len(self.procs) < count:
            self.start()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = {}

    def tail(self) -> str:
        out = []
        for path in sorted(self.logs.glob("worker-*.log"), key=lambda p: p.stat().st_mtime)[-3:]:
            out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)


def holding_sends(session: Session) -> set[str]:
    """The workers (``--name``) holding a job whose action is ``sending``."""
    rows = session.scalars(
        select(Job.locked_by)
        .join(OutboundAction, OutboundAction.id == Job.payload["action_id"].as_integer())
        .where(Job.status == "running", OutboundAction.state == "sending")
    )
    return {name.rsplit(":", 1)[0] for name in rows if name}


def settled(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(OutboundAction)
            .where(OutboundAction.state.not_in(["planned", "queued", "sending"]))
        )
        or 0
    )


def unfinished(session: Session) -> tuple[int, int]:
    """(jobs not finished, actions not settled)."""
    jobs = session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(["queued", "running"])))
    actions = session.scalar(
        select(func.count())
        .select_from(OutboundAction)
        .where(OutboundAction.state.in_(["planned", "queued", "sending"]))
    )
    return jobs or 0, actions or 0


def test_killed_workers_never_send_twice_nor_lose_a_send(
    db: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    sends, kill_after = SENDS[dialect], KILL_AFTER[dialect]
    reconciled_file, plain_file = tmp_path / "reconciling.jsonl", tmp_path / "plain.jsonl"
    requested = time.monotonic()
    with db() as session:
        org = create_organisation(session, name="压测", slug="kill")
        lead = create_staff(session, org.id, username="lead", password="password-123", role="lead")
        reconciling = add_connection(session, org, "对账模拟器", reconciled_file, reconcile=True)
        plain = add_connection(session, org, "普通模拟器", plain_file, reconcile=False)
        groups = {
            c.id: list(session.scalars(select(Group.id).where(Group.connection_id == c.id)))
            for c in (reconciling, plain)
        }
        ids: dict[int, int] = {}  # action id → connection id
        for n in range(sends):
            connection = reconciling if n % 2 == 0 else plain
            action = request_action(
                session,
                org.id,
                "send_group_message",
                connection_id=connection.id,
                group_id=groups[connection.id][n // 2 % GROUPS],
                payload={"text": f"第 {n} 条推送"},
                idempotency_key=f"kill:{n}",
            )
            ids[action.id] = connection.id
        session.commit()
        org_id, lead_id, reconciling_id = org.id, lead.id, reconciling.id

    setup_seconds = time.monotonic() - requested
    rng = random.Random(9)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(database_url, logs)
    started = time.monotonic()
    try:
        workers.keep(WORKERS)
        next_kill = rng.randint(*kill_after)
        last_kill_done, last_kill_at = 0, time.monotonic()
        while time.monotonic() - started < DEADLINE_SECONDS:
            with db() as session:
                done = settled(session)
                if unfinished(session) == (0, 0):
                    break
                due = done >= next_kill or (
                    workers.killed < MIN_KILLS[dialect]
                    and done > last_kill_done
                    and time.monotonic() - last_kill_at >= KILL_EVERY[dialect]
                )
                sending = holding_sends(session) if due else set()
            if workers.killed < KILLS and due and workers.kill_one(rng, sending):
                next_kill = done + rng.randint(*kill_after)
                last_kill_done, last_kill_at = done, time.monotonic()
            workers.keep(WORKERS)
            time.sleep(rng.uniform(0.02, 0.2))
    finally:
        workers.stop()
    elapsed = time.monotonic() - started

    with db() as session:
        assert unfinished(session) == (0, 0), f"not finished after {elapsed:.0f} s\n{workers.tail()}"
        dead = session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == PERFORM_JOB, Job.status == "dead")
        )
        assert dead == 0
        rows = session.execute(
            select(
                OutboundAction.id, OutboundAction.idempotency_key, OutboundAction.state, OutboundAction.attempts
            ).where(OutboundAction.org_id == org_id)
        ).all()
        open_tasks = {
            action_id: kind
            for action_id, kind in session.execute(
                select(StaffTask.outbound_action_id, StaffTask.kind).where(StaffTask.status == "open")
            )
        }
        assignees = set(session.scalars(select(StaffTask.assignee_id)))

    received = {
        "reconciling": Counter(call.key for call in read_calls(reconciled_file)),
        "plain": Counter(call.key for call in read_calls(plain_file)),
    }
    twice = {name: [k for k, n in keys.items() if n > 1] for name, keys in received.items()}
    assert twice == {"reconciling": [], "plain": []}, "the platform received a message twice"

    counts: Counter[tuple[str, str, bool]] = Counter()
    for action_id, key, state, _attempts in rows:
        name = "reconciling" if ids[action_id] == reconciling_id else "plain"
        got = received[name][key] == 1
        counts[(name, state, got)] += 1
        assert state in ("sent", "uncertain"), (action_id, state)
        if state == "sent":
            assert got, f"action {action_id} is sent but the platform never received it"
        else:
            assert open_tasks.get(action_id) == TASK_UNCERTAIN_SEND, f"uncertain action {action_id} has no task"
    assert len(rows) == sends
    report = {
        "database": dialect,
        "sends": sends,
        "request_seconds": round(setup_seconds, 1),
        "run_seconds": round(elapsed, 1),
        "workers_started": workers.started,
        "workers_killed": workers.killed,
        "killed_while_sending": workers.in_flight_kills,
        "outcomes": {
            f"{name}:{state}:{'received' if got else 'not received'}": n
            for (name, state, got), n in sorted(counts.items())
        },
    }
    print("kill test:", json.dumps(report, ensure_ascii=False))
    # A reconciling platform settles every crashed attempt itself: nothing is left to a person.
    assert not any(name == "reconciling" and state != "sent" for name, state, _ in counts)
    assert assignees <= {lead_id}

    assert workers.killed >= MIN_KILLS[dialect]

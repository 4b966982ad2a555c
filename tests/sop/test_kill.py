"""SOP runs survive workers being killed: 1,000 runs due in the same minute (200 on SQLite),
claimed, fired and sent by `qunyun worker` processes that are SIGKILLed at random moments —
while they hold the claim, a chunk of runs being fired, or a send between its committed
"sending" and its record — and restarted until every run settled.

The platform is the simulator with a durable recording (tests/connectors/test_kill_sends.py has
the machinery): half the groups on a reconciling simulator, half on a plain one. What must hold:
the platform received no message twice; every run ended sent (received exactly once), confirmed,
or with a person (an open task); none is left planned, queued, skipped, expired or failed.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.connectors.simulator.recording import read_calls
from qunyun.models import Group, Job, OutboundAction, Role, SopRun, StaffTask
from qunyun.sop import runs, service
from qunyun.sop.runs import FIRE_DUE_JOB, schedule_minutes
from qunyun.sop.types import StepSpec
from qunyun.team.service import create_organisation, create_staff
from tests.connectors.test_kill_sends import GROUPS, KILL_EVERY, Workers, add_connection

RUNS = {"postgresql": 1000, "sqlite": 200}
WORKERS = 3
KILLS = int(__import__("os").environ.get("SOP_KILLS", "25"))
MIN_KILLS = {"postgresql": 10, "sqlite": 4}
KILL_AFTER = {"postgresql": (10, 60), "sqlite": (3, 12)}
DEADLINE_SECONDS = 600
LIVE_KINDS = ("sop.fire", "sop.fire_due", "connectors.perform")


def holding(session: Session) -> set[str]:
    """Workers (``--name``) holding an SOP job, or a send in ``sending``."""
    names = set(
        session.scalars(select(Job.locked_by).where(Job.status == "running", Job.kind.in_(("sop.fire", FIRE_DUE_JOB))))
    )
    names |= set(
        session.scalars(
            select(Job.locked_by)
            .join(OutboundAction, OutboundAction.id == Job.payload["action_id"].as_integer())
            .where(Job.status == "running", OutboundAction.state == "sending")
        )
    )
    return {name.rsplit(":", 1)[0] for name in names if name}


def progress(session: Session) -> tuple[int, int, int]:
    """(runs handed on, actions settled, live jobs)."""
    handed = session.scalar(select(func.count()).select_from(SopRun).where(SopRun.action_id.is_not(None))) or 0
    settled = (
        session.scalar(
            select(func.count())
            .select_from(OutboundAction)
            .where(OutboundAction.state.not_in(["planned", "queued", "sending"]))
        )
        or 0
    )
    now = int(datetime.now(UTC).timestamp() * 1_000_000)
    live = (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.kind.in_(LIVE_KINDS), Job.status.in_(["queued", "running"]), Job.run_at <= now)
        )
        or 0
    )
    return handed, settled, live


def test_killed_workers_never_send_a_run_twice_nor_lose_one(
    db: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    dialect = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    total, kill_after = RUNS[dialect], KILL_AFTER[dialect]
    files = {"reconciling": tmp_path / "reconciling.jsonl", "plain": tmp_path / "plain.jsonl"}
    per_group = total // (2 * GROUPS)
    with db() as session:
        org = create_organisation(session, name="压测", slug="sopkill")
        lead = create_staff(session, org.id, username="lead", password="password-123", role="lead")
        reconciling = add_connection(session, org, "对账模拟器", files["reconciling"], reconcile=True)
        add_connection(session, org, "普通模拟器", files["plain"], reconcile=False)
        scope = Scope(staff_id=lead.id, org_id=org.id, role=Role.LEAD)
        # A campaign of per_group steps at one time on one day: total runs due in one minute.
        steps = [
            StepSpec(at=datetime.now(UTC).time(), category="内容推送", script=f"第{n}条：{{group_name}}", day=1)
            for n in range(per_group)
        ]
        plan = service.create_plan(session, scope, name="压测计划", kind="campaign", steps=steps)
        group_ids = list(session.scalars(select(Group.id).where(Group.org_id == org.id).order_by(Group.id)))
        today = datetime.now(UTC).astimezone(runs.zone_of(session, org.id)).date()
        made = runs.apply_many(session, scope, plan.id, group_ids, today)
        assert made == total
        # Due now (they were made for tomorrow): the same minute for every run.
        due = datetime.now(UTC).replace(second=0, microsecond=0)
        session.execute(update(SopRun).values(due_at=due, fire_at=due))
        session.execute(delete(Job).where(Job.kind == FIRE_DUE_JOB))
        schedule_minutes(session, [int(due.timestamp() * 1_000_000)])
        session.commit()
        connection_of = {g: c for g, c in session.execute(select(Group.id, Group.connection_id))}
        org_id, lead_id, reconciling_id = org.id, lead.id, reconciling.id

    rng = random.Random(12)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(database_url, logs)
    started = time.monotonic()
    try:
        workers.keep(WORKERS)
        next_kill = rng.randint(*kill_after)
        # A kill comes after some settled runs, or (a quiet machine settles many between polls)
        # after a while with some progress since the last one.
        last_kill_done, last_kill_at = 0, time.monotonic()
        while time.monotonic() - started < DEADLINE_SECONDS:
            with db() as session:
                handed, settled, live = progress(session)
                if handed == total and settled == total and live == 0:
                    break
                done = handed + settled
                due = done >= next_kill or (
                    workers.killed < min(MIN_KILLS[dialect], KILLS)
                    and done > last_kill_done
                    and time.monotonic() - last_kill_at >= KILL_EVERY[dialect]
                )
                busy = holding(session) if due else set()
            if workers.killed < KILLS and due and workers.kill_one(rng, busy):
                next_kill = done + rng.randint(*kill_after)
                last_kill_done, last_kill_at = done, time.monotonic()
            workers.keep(WORKERS)
            time.sleep(rng.uniform(0.02, 0.2))
    finally:
        workers.stop()
    elapsed = time.monotonic() - started

    with db() as session:
        rows = session.execute(
            select(SopRun.id, SopRun.group_id, SopRun.state, OutboundAction.idempotency_key, OutboundAction.state)
            .outerjoin(OutboundAction, OutboundAction.id == SopRun.action_id)
            .where(SopRun.org_id == org_id)
        ).all()
        open_tasks = set(session.scalars(select(StaffTask.outbound_action_id).where(StaffTask.status == "open")))
        action_of = dict(session.execute(select(SopRun.id, SopRun.action_id)).all())
        dead = session.scalar(
            select(func.count()).select_from(Job).where(Job.kind.in_(LIVE_KINDS), Job.status == "dead")
        )
        assignees = set(session.scalars(select(StaffTask.assignee_id)))
    assert len(rows) == total, f"{len(rows)} runs\n{workers.tail()}"

    received = {name: Counter(call.key for call in read_calls(path)) for name, path in files.items()}
    twice = {name: [k for k, n in keys.items() if n > 1] for name, keys in received.items()}
    assert twice == {"reconciling": [], "plain": []}, "the platform received a message twice"
    assert all(k.startswith("sop:run:") for keys in received.values() for k in keys)

    outcomes: Counter[str] = Counter()
    for run_id, group_id, _stored, key, action_state in rows:
        name = "reconciling" if connection_of[group_id] == reconciling_id else "plain"
        assert key == f"sop:run:{run_id}", f"run {run_id} never handed on\n{workers.tail()}"
        state = runs.action_run_state(action_state).value
        outcomes[f"{name}:{state}"] += 1
        if state == "sent":
            assert received[name][key] == 1, f"run {run_id} is sent but the platform never received it"
        else:
            assert state == "assigned" and action_state == "uncertain", (run_id, action_state)
            assert action_of[run_id] in open_tasks, f"run {run_id} is with nobody"
    assert not any(k.startswith("reconciling:") and not k.endswith(":sent") for k in outcomes)
    assert dead == 0
    assert assignees <= {lead_id}
    print(
        "sop kill test:",
        json.dumps(
            {
                "database": dialect,
                "runs": total,
                "run_seconds": round(elapsed, 1),
                "workers_started": workers.started,
                "workers_killed": workers.killed,
                "killed_while_busy": workers.in_flight_kills,
                "outcomes": dict(sorted(outcomes.items())),
            },
            ensure_ascii=False,
        ),
    )
    assert workers.killed >= min(MIN_KILLS[dialect], KILLS)

"""Group commit of live posts (ingestion/coalesce.py): posts of one organisation that arrive while
its transaction runs share the next one, each post still gets its own answer, and one post's
failure is never another's."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.audit.service import entry
from qunyun.auth.scope import Scope
from qunyun.errors import InvalidInput
from qunyun.ingestion.coalesce import AuditEntry, Coalescer, Counts
from qunyun.ingestion.service import parse_events
from qunyun.locale import Msg
from qunyun.models import AuditLog, Event, Role


def joined(event_id: str, member: str) -> dict[str, str]:
    return {
        "id": event_id,
        "ts": datetime.now(UTC).isoformat(),
        "kind": "member.joined",
        "group": "g1",
        "member": member,
    }


def lead(org: int) -> Scope:
    return Scope(staff_id=0, org_id=org, role=Role.LEAD)


def audit_as(org: int, note: str) -> AuditEntry:
    def audit(scope: Scope, stored: int, duplicates: int) -> dict[str, Any]:
        return entry(org_id=org, staff_id=None, action="events.ingest", target_type="events", target_id=note,
                     detail={"stored": stored, "duplicates": duplicates})  # fmt: skip

    return audit


def post_behind_a_slow_one(
    coalescer: Coalescer, org: int, posts: list[tuple[str, list[dict[str, str]], AuditEntry]]
) -> tuple[list[Counts | BaseException | None], threading.Event]:
    """A first post whose transaction waits until ``posts`` have all queued behind it; returns
    what each of ``posts`` got (in order) once everything has finished."""
    release = threading.Event()
    first_audit = audit_as(org, "first")

    def slow(scope: Scope, stored: int, duplicates: int) -> dict[str, Any]:
        release.wait(30)
        return first_audit(scope, stored, duplicates)

    results: list[Counts | BaseException | None] = [None] * len(posts)

    def run(i: int | None) -> None:
        if i is None:
            coalescer.ingest(org, "api", parse_events([joined("e-first", "m0")]), slow, scope=lead(org))
            return
        _note, events, after = posts[i]
        try:
            results[i] = coalescer.ingest(org, "api", parse_events(events), after, scope=lead(org))
        except BaseException as exc:  # the test looks at what each post got
            results[i] = exc

    first = threading.Thread(target=run, args=(None,))
    first.start()
    deadline = time.monotonic() + 30
    while not coalescer._lanes and time.monotonic() < deadline:
        time.sleep(0.005)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(posts))]
    for t in threads:
        t.start()
    lane = coalescer._lanes[(org, "api")]
    while len(lane.waiting) < len(posts) and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for t in [first, *threads]:
        t.join(30)
    return results, release


def test_posts_waiting_behind_a_transaction_share_the_next_one(db: sessionmaker[Session], org_id: int) -> None:
    coalescer = Coalescer()
    posts = [(f"p{i}", [joined(f"e{i}", f"m{i}")], audit_as(org_id, f"p{i}")) for i in range(1, 9)]
    posts.append(("again", [joined("e1", "m1"), joined("e-new", "m9")], audit_as(org_id, "again")))  # e1 twice
    results, _ = post_behind_a_slow_one(coalescer, org_id, posts)

    assert results[:8] == [Counts(stored=1, duplicates=0)] * 8
    assert results[8] == Counts(stored=1, duplicates=1)  # its e1 came second, in the same batch
    assert (coalescer.posts, coalescer.transactions) == (10, 2)  # the first alone, then nine together
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.org_id == org_id)) == 10
        audits: dict[str, Any] = dict(
            s.execute(select(AuditLog.target_id, AuditLog.detail).where(AuditLog.org_id == org_id)).all()
        )
    assert len(audits) == 10 and audits["again"] == {"stored": 1, "duplicates": 1}


def test_one_posts_failure_is_its_own(db: sessionmaker[Session], org_id: int) -> None:
    coalescer = Coalescer()

    def refuse(scope: Scope, stored: int, duplicates: int) -> dict[str, Any]:
        raise InvalidInput(Msg("err.event.platform_length", limit=16), field="platform")

    posts = [(f"p{i}", [joined(f"e{i}", f"m{i}")], audit_as(org_id, f"p{i}")) for i in range(1, 5)]
    posts.insert(2, ("bad", [joined("e-bad", "m-bad")], refuse))
    results, _ = post_behind_a_slow_one(coalescer, org_id, posts)

    assert isinstance(results[2], InvalidInput) and results[2].field == "platform"
    assert [r for i, r in enumerate(results) if i != 2] == [Counts(stored=1, duplicates=0)] * 4
    with db() as s:
        stored = set(s.scalars(select(Event.external_id).where(Event.org_id == org_id)))
        audits = set(s.scalars(select(AuditLog.target_id).where(AuditLog.org_id == org_id)))
    assert stored == {"e-first", "e1", "e2", "e3", "e4"}  # nothing of the refused post
    assert audits == {"first", "p1", "p2", "p3", "p4"}
    assert not coalescer._lanes  # every lane handed on and freed


def test_a_lone_post_is_a_transaction_of_its_own(db: sessionmaker[Session], org_id: int) -> None:
    coalescer = Coalescer()
    for i in range(3):
        assert coalescer.ingest(
            org_id, "api", parse_events([joined(f"e{i}", "m")]), audit_as(org_id, str(i)), scope=lead(org_id)
        ) == Counts(1, 0)
    assert (coalescer.posts, coalescer.transactions) == (3, 3)

"""The live lanes of ``POST /api/v1/events`` (``coalesce.LiveLanes``): posts wait as coroutines, the
posts waiting behind a running transaction share the next one, each post gets its own answer, and
one post's failure is never another's."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.errors import InvalidInput
from qunyun.ingestion import coalesce
from qunyun.ingestion.coalesce import AuditEntry, Counts, LiveLanes
from qunyun.ingestion.service import parse_events
from qunyun.locale import Msg
from qunyun.models import AuditLog, Event
from tests.ingestion.test_coalesce import audit_as, joined, lead


def behind_a_slow_batch(
    org: int, posts: list[tuple[list[dict[str, str]], AuditEntry]], monkeypatch: pytest.MonkeyPatch
) -> tuple[LiveLanes, list[Counts | BaseException]]:
    """A first post whose batch is held until ``posts`` all wait in the lane behind it; what
    each of ``posts`` got, in order."""
    lanes = LiveLanes()
    release = threading.Event()
    run_batch = coalesce.run_batch
    held = threading.Event()

    def slow(batch: list[Any], factory: Any = None) -> int:
        if not held.is_set():
            held.set()
            release.wait(30)
        return run_batch(batch, factory)

    monkeypatch.setattr(coalesce, "run_batch", slow)
    results: list[Counts | BaseException] = [RuntimeError("not answered")] * len(posts)

    async def post(i: int) -> None:
        events, audit = posts[i]
        try:
            results[i] = await lanes.ingest(org, "api", parse_events(events), audit, scope=lead(org))
        except Exception as exc:  # the test looks at what each post got
            results[i] = exc

    async def main() -> None:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                first = parse_events([joined("e-first", "m0")])
                tg.start_soon(lambda: lanes.ingest(org, "api", first, audit_as(org, "first"), scope=lead(org)))
                await anyio.to_thread.run_sync(held.wait, 30)
                for i in range(len(posts)):
                    tg.start_soon(post, i)
                while lanes.waiting < len(posts) + 1:
                    await anyio.sleep(0.005)
                release.set()

    try:
        anyio.run(main)
    finally:
        release.set()
    return lanes, results


def test_posts_waiting_in_the_lane_share_one_transaction(
    db: sessionmaker[Session], org_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    posts = [([joined(f"e{i}", f"m{i}")], audit_as(org_id, f"p{i}")) for i in range(1, 9)]
    posts.append(([joined("e1", "m1"), joined("e-new", "m9")], audit_as(org_id, "again")))  # e1 twice
    lanes, results = behind_a_slow_batch(org_id, posts, monkeypatch)

    assert results[:8] == [Counts(stored=1, duplicates=0)] * 8
    assert results[8] == Counts(stored=1, duplicates=1)  # its e1 came second, in the same batch
    assert (lanes.posts, lanes.transactions) == (10, 2)  # the first alone, then nine together
    assert lanes.waiting == 0 and not lanes._lanes
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Event).where(Event.org_id == org_id)) == 10
        audits: dict[str, Any] = dict(
            s.execute(select(AuditLog.target_id, AuditLog.detail).where(AuditLog.org_id == org_id)).all()
        )
    assert len(audits) == 10 and audits["again"] == {"stored": 1, "duplicates": 1}


def test_one_posts_failure_is_its_own(db: sessionmaker[Session], org_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(scope: Scope, stored: int, duplicates: int) -> dict[str, Any]:
        raise InvalidInput(Msg("err.event.platform_length", limit=16), field="platform")

    posts = [([joined(f"e{i}", f"m{i}")], audit_as(org_id, f"p{i}")) for i in range(1, 5)]
    posts.insert(2, ([joined("e-bad", "m-bad")], refuse))
    lanes, results = behind_a_slow_batch(org_id, posts, monkeypatch)

    assert isinstance(results[2], InvalidInput) and results[2].field == "platform"
    assert [r for i, r in enumerate(results) if i != 2] == [Counts(stored=1, duplicates=0)] * 4
    with db() as s:
        stored = set(s.scalars(select(Event.external_id).where(Event.org_id == org_id)))
        audits = set(s.scalars(select(AuditLog.target_id).where(AuditLog.org_id == org_id)))
    assert stored == {"e-first", "e1", "e2", "e3", "e4"}  # nothing of the refused post
    assert audits == {"first", "p1", "p2", "p3", "p4"}
    assert not lanes._lanes  # every lane drained and freed


def test_a_token_revoked_since_is_refused_for_its_post_alone(db: sessionmaker[Session], org_id: int) -> None:
    from qunyun.auth.tokens import TokenKind, hash_secret, issue_token, revoke_token
    from qunyun.errors import Unauthenticated
    from qunyun.models import Staff
    from qunyun.timeutil import utcnow

    with db() as s:
        staff = Staff(org_id=org_id, username="sync", display_name="Sync", password_hash="!", role="integration",
                      language="zh", is_active=True, created_at=utcnow())  # fmt: skip
        s.add(staff)
        s.flush()
        live = issue_token(s, staff, TokenKind.API, now=utcnow()).secret
        revoked = issue_token(s, staff, TokenKind.API, now=utcnow())
        revoke_token(s, revoked.token.id, now=utcnow())
        s.commit()
    lanes = LiveLanes()

    async def main() -> list[Counts | BaseException]:
        answers: list[Counts | BaseException] = [RuntimeError("not answered")] * 2

        async def post(i: int, secret: str) -> None:
            events = parse_events([joined(f"t{i}", f"m{i}")])
            try:
                answers[i] = await lanes.ingest(
                    org_id, "api", events, audit_as(org_id, str(i)), token_hash=hash_secret(secret)
                )
            except Exception as exc:
                answers[i] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(post, 0, live)
            tg.start_soon(post, 1, revoked.secret)
        return answers

    answers = anyio.run(main)
    assert answers[0] == Counts(stored=1, duplicates=0)
    assert isinstance(answers[1], Unauthenticated)
    with db() as s:
        assert set(s.scalars(select(Event.external_id).where(Event.org_id == org_id))) == {"t0"}

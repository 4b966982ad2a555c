"""Follow-ups: what domain modules do when live events arrive.

A follow-up is a function ``fn(session, org_id, events)`` over the new live events of the kinds
it declares (duplicates and imported history never reach it). It runs either

- **inline**: in the ingest transaction, once per ingest call, with the parsed events — for
  cheap work that must see the event at once (enqueueing an action, a lookup, a counter); or
- **as a job**: the ingest transaction enqueues a job carrying the events, so neither exists
  without the other; a worker runs ``fn`` in the job's own transaction. Message text never goes
  into a job's payload: the worker re-reads it from ``message_texts`` (None once the retention
  job has purged it, or when it was never kept).

Follow-ups register with :func:`follow_up` at import time; the modules that hold them are listed
once, in ``qunyun.modules``, and loaded by the ingestor and by every worker alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.db.base import from_micros
from qunyun.models.event import EventKind, MessageText, MsgType

# At most this many events per follow-up job: a large live batch becomes several jobs.
JOB_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """A newly stored live event, parsed, with both its internal and its external ids.

    Ids are ``None`` where the kind has no such field (``order.refunded`` names no group).
    """

    event_id: int
    external_id: str
    kind: EventKind
    ts: int  # UTC epoch microseconds (``at`` is the datetime)
    connection_id: int | None
    group_id: int | None = None
    group: str | None = None
    member_id: int | None = None
    member: str | None = None
    member_name: str | None = None
    msg_type: MsgType | None = None
    # Kept only within QUNYUN_MESSAGE_TEXT_RETENTION_DAYS; None otherwise.
    text: str | None = None
    message: str | None = None  # the platform's message id
    channel: str | None = None  # the channel's code
    channel_id: int | None = None
    # The invite link a member joined through, as the platform reports it (member.joined).
    link: str | None = None
    inviter: str | None = None
    inviter_id: int | None = None
    scene: str | None = None
    reason: str | None = None
    order: str | None = None
    amount_fen: int | None = None
    product: str | None = None

    @property
    def at(self) -> datetime:
        return from_micros(self.ts)


Handler = Callable[[Session, int, list[LiveEvent]], None]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True)
class FollowUp:
    handler: Handler
    kinds: frozenset[EventKind]
    job: str | None  # the job kind it runs as; None: inline


class FollowUpJob(BaseModel):
    """The payload of a follow-up job: the live events (without their text)."""

    org_id: int
    events: list[LiveEvent]


_REGISTRY: list[FollowUp] = []


def follow_up(*kinds: EventKind, job: str | None = None) -> Callable[[H], H]:
    """Register ``fn(session, org_id, events)`` for new live events of ``kinds``.

    Without ``job`` it runs inline, in the ingest transaction. With ``job`` (a job kind, e.g.
    ``"fission.validate"``) the ingest transaction enqueues jobs of that kind and a worker runs
    ``fn`` with the events, message text re-read from the database.
    """
    if not kinds:
        raise ValueError("a follow-up names the event kinds it wants")

    def register(fn: H) -> H:
        entry = FollowUp(fn, frozenset(EventKind(k) for k in kinds), job)
        if job is not None:
            from qunyun.worker.queue import job_handler

            def run(session: Session, payload: FollowUpJob) -> None:
                fn(session, payload.org_id, with_texts(session, payload.events))

            job_handler(job, payload=FollowUpJob)(run)
        _REGISTRY.append(entry)
        return fn

    return register


def unregister(handler: Handler) -> None:
    """Remove ``handler``'s registration (tests; production registers once, at import)."""
    _REGISTRY[:] = [f for f in _REGISTRY if f.handler is not handler]


def wanted_kinds() -> frozenset[int]:
    """The kinds at least one follow-up wants: only these become LiveEvents."""
    return frozenset(int(k) for f in _REGISTRY for k in f.kinds)


def run_follow_ups(session: Session, org_id: int, events: list[LiveEvent]) -> None:
    """Hand ``events`` to each follow-up that wants some of them: inline ones now, the others
    as jobs enqueued in the caller's transaction."""
    from qunyun.worker.queue import enqueue

    for entry in list(_REGISTRY):
        mine = [e for e in events if e.kind in entry.kinds]
        if not mine:
            continue
        if entry.job is None:
            entry.handler(session, org_id, mine)
            continue
        for start in range(0, len(mine), JOB_EVENTS):
            chunk = [replace(e, text=None) if e.text is not None else e for e in mine[start : start + JOB_EVENTS]]
            enqueue(session, entry.job, {"org_id": org_id, "events": chunk}, org_id=org_id)


def with_texts(session: Session, events: Iterable[LiveEvent]) -> list[LiveEvent]:
    """``events`` with the text of their messages as ``message_texts`` holds it now."""
    events = list(events)
    ids = [e.event_id for e in events if e.kind == EventKind.MESSAGE_POSTED]
    if not ids:
        return events
    texts: dict[int, str] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = session.execute(select(MessageText.event_id, MessageText.text).where(MessageText.event_id.in_(chunk)))
        texts.update((event_id, text) for event_id, text in rows)
    return [replace(e, text=texts.get(e.event_id)) if e.event_id in texts else e for e in events]

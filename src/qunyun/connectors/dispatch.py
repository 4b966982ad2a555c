"""Outbound actions: recorded once per idempotency key, routed by the connection's declared
capabilities, sent in two phases so that a crash never sends twice, and handed to a person when
the platform cannot do them — or when nobody can tell whether it did.

State machine (``OutboundState``; every change is an ``OutboundActionTransition`` row)::

    (new) → planned ─┬→ queued ─┬→ sending ─┬→ sent ───────────────────→ confirmed
                     │          │           ├→ awaiting_confirmation ──→ confirmed | expired | failed
                     │          │           ├→ failed    permanent refusal, or MAX_ATTEMPTS transient errors
                     │          │           ├→ queued    transient error: retried later (backoff)
                     │          │           ├→ delegated the connector refused it at run time
                     │          │           └→ uncertain may have been sent ─→ confirmed | failed | expired
                     │          ├→ expired   (its deadline passed before it ran)
                     │          ├→ failed    (its payload no longer builds)
                     │          └→ delegated (no connector, or it lacks a capability at run time)
                     ├→ delegated ─→ confirmed (staff did it) | expired | failed
                     └→ expired

``request_action`` records and routes in the caller's transaction (a ``connectors.perform`` job is
enqueued with the row, so neither exists without the other). The job is two-phase
(``qunyun.connectors.tasks.PerformAction``): :func:`prepare` commits ``sending`` with the attempt
before :func:`call` talks to the platform outside any transaction, and :func:`record` writes the
outcome with the job's completion. An attempt that finds the action already ``sending`` (an
earlier one crashed or lost its lease after committing it) never calls blindly: it reconciles
through the connector where the platform can tell, and otherwise moves it to ``uncertain`` with a
task for a person. An action that no job will move any more (its job dead or purged, its worker
gone) is set going again by :func:`sweep_stuck`, through the same path. docs/connectors.md tells
the whole story.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import BigInteger, Table, Text, any_, bindparam, func, insert, inspect, select, text, update
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from qunyun.connections.service import default_connection
from qunyun.connectors import registry
from qunyun.connectors.actions import (
    RESERVED_PAYLOAD_KEYS,
    Action,
    ActionKind,
    action_class,
    action_from_payload,
    parse_instant,
)
from qunyun.connectors.base import (
    ActionResult,
    Capability,
    Connector,
    ConnectorUnavailable,
    PlatformProfile,
    ResultStatus,
    TransientError,
    UnsupportedAction,
    missing_capabilities,
)
from qunyun.db.base import to_micros
from qunyun.errors import Conflict, InvalidInput, NotFound, QunyunError
from qunyun.locale import Msg, catalogue
from qunyun.models import (
    Connection,
    Group,
    Job,
    JobStatus,
    Member,
    OutboundAction,
    OutboundActionTransition,
    OutboundState,
    Staff,
    StaffTask,
    TaskKind,
    TaskStatus,
)
from qunyun.tasks.service import close_for_action, open_task
from qunyun.tasks.titles import message_values, platform_label, to_json
from qunyun.timeutil import utcnow
from qunyun.worker.queue import enqueue

PERFORM_JOB = "connectors.perform"
EXPIRE_JOB = "connectors.expire_overdue"
SWEEP_JOB = "connectors.sweep_stuck"
MAX_ATTEMPTS = 5  # sends of one action (transient errors are retried until then)
MAX_CHECKS = 5  # reconciliations on top of them, when the platform cannot answer
# A perform job's own attempts: each crash or lost lease of a worker holding it counts one, and a
# dead job would strand its action; the action's MAX_ATTEMPTS bounds the platform calls anyway.
JOB_MAX_ATTEMPTS = 25
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
# The sweep of stuck actions (:func:`sweep_stuck`): a ``sending`` action with no live job is left
# this long to the runner's own recovery of lost leases (a job lease is 5 minutes by default)
# before the sweep takes it; an action swept this many times without settling goes to a person.
STUCK_AFTER = timedelta(minutes=30)
MAX_SWEEPS = 3
SWEEP_BATCH = 500  # actions looked at per pass; the rest wait for the next one
SWEPT = "sends.history.swept"  # the detail of the history row a sweep appends (queued/sending → itself)
LIVE_JOB_STATES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)

S = OutboundState
ALLOWED_TRANSITIONS: Mapping[OutboundState, frozenset[OutboundState]] = {
    S.PLANNED: frozenset({S.QUEUED, S.DELEGATED, S.EXPIRED}),
    S.QUEUED: frozenset({S.SENDING, S.FAILED, S.EXPIRED, S.DELEGATED}),
    S.SENDING: frozenset({S.SENT, S.AWAITING_CONFIRMATION, S.FAILED, S.QUEUED, S.DELEGATED, S.UNCERTAIN}),
    S.UNCERTAIN: frozenset({S.CONFIRMED, S.FAILED, S.EXPIRED}),
    S.AWAITING_CONFIRMATION: frozenset({S.CONFIRMED, S.EXPIRED, S.FAILED}),
    S.SENT: frozenset({S.CONFIRMED}),
    S.DELEGATED: frozenset({S.CONFIRMED, S.EXPIRED, S.FAILED}),
    S.CONFIRMED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}
# States in which a person holds the action (a task is open for it).
WAITING_ON_PERSON = frozenset({S.AWAITING_CONFIRMATION, S.DELEGATED, S.UNCERTAIN})
CONFIRMABLE = WAITING_ON_PERSON | {S.SENT}
# Task kinds this module opens (kept importable under their old names).
TASK_PLATFORM_ACTION = TaskKind.PLATFORM_ACTION.value  # do by hand what the platform cannot do by API
TASK_CONFIRM_SEND = TaskKind.CONFIRM_SEND.value  # press send on a send the platform holds
TASK_UNCERTAIN_SEND = TaskKind.UNCERTAIN_SEND.value  # may have been sent: check and confirm


def transition(
    session: Session,
    action: OutboundAction,
    to_state: OutboundState,
    detail: Msg | str = "",
    *,
    attempt: int | None = None,
) -> None:
    """Move ``action`` to ``to_state`` and append the history row; ``Conflict`` if not allowed.
    ``detail`` is a catalogue message (shown in the reader's language), or a caller's text."""
    current = OutboundState(action.state)
    if to_state not in ALLOWED_TRANSITIONS[current]:
        raise Conflict(
            Msg("err.outbound.bad_transition", id=action.id, current=current.value, to=to_state.value), field="state"
        )
    action.state = to_state.value
    _record(session, action, current, to_state, detail, attempt)


def note(session: Session, action: OutboundAction, detail: Msg | str, *, attempt: int | None = None) -> None:
    """Append a history row to ``action`` that changes nothing (its state stays: from and to are
    the same): something done for it meanwhile, a sweep or a reminder to the person it waits on."""
    state = OutboundState(action.state)
    _record(session, action, state, state, detail, attempt)


def _record(
    session: Session,
    action: OutboundAction,
    from_state: OutboundState | None,
    to_state: OutboundState,
    detail: Msg | str,
    attempt: int | None = None,
) -> None:
    settle_batch(session)  # a batch's deferred writes first: the history stays in order
    now = utcnow()
    action.updated_at = now
    session.add(
        OutboundActionTransition(
            action_id=action.id,
            from_state=from_state.value if from_state is not None else None,
            to_state=to_state.value,
            attempt=attempt,
            at=now,
            detail=str(detail)[:2000],
            detail_key=detail.key if isinstance(detail, Msg) else None,
            detail_values=message_values(detail) if isinstance(detail, Msg) else None,
        )
    )
    session.flush()


# --- requesting ---------------------------------------------------------------------------------

# Requests per statement of a batch (the actions' INSERT has 14 parameters a row; SQLite allows
# 32,766 a statement).
REQUEST_CHUNK = 500
FEW_JOBS = 8  # up to this many new actions queued by a batch: history and jobs in one statement
# Bulk inserts of plain rows go through the tables (Core): the ORM's bulk insert would leave out
# the columns that are None and split the statement by the keys each row has.
_TRANSITIONS = cast(Table, OutboundActionTransition.__table__)
_JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True)
class ActionRequest:
    """One outbound action asked for by :func:`request_actions` (the arguments of
    :func:`request_action`)."""

    action: ActionKind | str
    payload: Mapping[str, Any]
    idempotency_key: str
    connection_id: int | None = None
    group_id: int | None = None
    member_id: int | None = None
    assignee_id: int | None = None
    run_at: datetime | None = None
    # The caller made the key new (from a new event's id, say): it is inserted without being
    # looked up first. Should it exist after all, the insert finds it and it is looked up then,
    # as a key a concurrent request committed first (the same row, or a Conflict) — only a
    # request that no longer routes reports its own error rather than the existing row.
    new_key: bool = False


def request_action(
    session: Session,
    org_id: int,
    action: ActionKind | str,
    *,
    connection_id: int | None = None,
    group_id: int | None = None,
    member_id: int | None = None,
    payload: Mapping[str, Any],
    idempotency_key: str,
    assignee_id: int | None = None,
    run_at: datetime | None = None,
) -> OutboundAction:
    """Record an outbound action once per ``idempotency_key`` and route it: queued with a
    ``connectors.perform`` job, or delegated to a staff task (``assignee_id``, else the group's
    owner) when the connection's platform lacks a capability it needs. The same key returns the
    same row.

    The connection is ``connection_id``, else the group's, else the organisation's default
    connection of the group's (or member's) platform; the group and member must be on it.
    ``payload`` is the action's fields (see ``qunyun.connectors.actions``) plus an optional
    ``deadline`` (ISO 8601): not performed after it, the action expires. ``run_at`` delays it.
    """
    request = ActionRequest(
        action,
        payload,
        idempotency_key,
        connection_id=connection_id,
        group_id=group_id,
        member_id=member_id,
        assignee_id=assignee_id,
        run_at=run_at,
    )
    outcome = request_actions(session, org_id, [request])[0]
    if isinstance(outcome, QunyunError):
        raise outcome
    return outcome


@dataclass(frozen=True, slots=True)
class ActionRef:
    """An action :func:`request_action_refs` recorded or found: its id and state (for callers
    that keep no more of it than that, the entity is not loaded)."""

    id: int
    state: OutboundState


# The caller's record of a batch of actions (a moderation decision): from their outcomes, the
# table and the values of the one row that names them (its ``id`` is returned).
Record = Callable[[list["ActionRef | QunyunError"]], tuple[Table, dict[str, Any]]]


def request_action_refs(
    session: Session,
    org_id: int,
    requests: Sequence[ActionRequest],
    *,
    known: Iterable[GroupRow | MemberRow | ConnectionRow] = (),
    record: Record | None = None,
) -> tuple[list[ActionRef | QunyunError], int | None]:
    """:func:`request_actions` returning each action's id and state rather than its entity:
    a new action is inserted with a plain INSERT … RETURNING of its id (the firing path of
    moderation, where loading the inserted row as an entity was most of the client's time).

    ``known``: targets the caller has read already in this transaction (the moderation engine
    reads them with its members), not read again. ``record``: the caller's row that names the
    actions (the decision that asked for them), built from their outcomes and inserted with the
    actions' history and jobs, in one round trip on PostgreSQL; its id is returned (else None).
    """
    pending: _Pending | None = _Pending() if record is not None else None
    outcomes = _request_actions(session, org_id, requests, refs=True, known=known, pending=pending)
    refs = [o if isinstance(o, (ActionRef, QunyunError)) else ActionRef(o.id, OutboundState(o.state)) for o in outcomes]
    if record is None:
        return refs, None
    table, values = record(refs)
    assert pending is not None
    return refs, _write_pending(session, pending, (table, values))


@dataclass
class _Pending:
    """History rows and perform jobs of inserted actions, written with the caller's record."""

    history: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Routed:
    """A request that builds and routes, before its row exists."""

    index: int
    request: ActionRequest
    kind: ActionKind
    connection: Any  # a ConnectionRow, or the Connection entity
    typed: Action
    stored: dict[str, Any]
    deadline: datetime | None
    missing: frozenset[Capability] = frozenset()
    profile: PlatformProfile | None = None


def request_actions(
    session: Session, org_id: int, requests: Sequence[ActionRequest]
) -> list[OutboundAction | QunyunError]:
    """:func:`request_action` for many requests at once, in a few statements for the whole batch:
    one look-up of the keys (none for keys marked ``new_key``), one each of the groups (with
    their connections, and with the member when the batch names one), members, connections and
    assignees named, and one INSERT each of the new actions, their history and their perform jobs.

    Returns, in the order asked, each request's action, or the error that
    :func:`request_action` would have raised for it (nothing is written for a request that
    fails; the others still are). A key asked for twice in one batch is one action: the later
    requests must be the same request, as with a key asked for again later.
    """
    return _request_actions(session, org_id, requests, refs=False)  # type: ignore[return-value]


def _request_actions(
    session: Session,
    org_id: int,
    requests: Sequence[ActionRequest],
    *,
    refs: bool,
    known: Iterable[GroupRow | MemberRow | ConnectionRow] = (),
    pending: _Pending | None = None,
) -> list[OutboundAction | ActionRef | QunyunError]:
    """:func:`request_actions`; with ``refs``, the actions inserted are :class:`ActionRef`
    (those found by key are still entities). ``known``: targets already read; ``pending``: the
    history and jobs of a single chunk without delegations or late keys are left to the caller
    to write (:func:`_write_pending`)."""
    outcomes: list[OutboundAction | ActionRef | QunyunError | None] = [None] * len(requests)
    kinds: dict[int, ActionKind] = {}
    first_of: dict[str, int] = {}  # key → the index of its first request in the batch
    repeats: list[int] = []
    for i, request in enumerate(requests):
        key = request.idempotency_key
        if not key or len(key) > 200:
            outcomes[i] = InvalidInput(Msg("err.outbound.key_length", limit=200), field="idempotency_key")
            continue
        try:
            kinds[i] = action_class(request.action).kind  # InvalidInput naming "action" for an unknown kind
        except QunyunError as exc:
            outcomes[i] = exc
            continue
        if key in first_of:
            repeats.append(i)
        else:
            first_of[key] = i
    existing = _by_keys(session, org_id, [key for key, i in first_of.items() if not requests[i].new_key])
    fresh: list[int] = []
    for key, i in first_of.items():
        request = requests[i]
        found = existing.get(key)
        if found is not None:
            outcomes[i] = _same_or_error(found, org_id, kinds[i], request)
        elif "assignee_id" in request.payload:
            outcomes[i] = InvalidInput(Msg("err.outbound.assignee_in_payload"), field="payload.assignee_id")
        else:
            fresh.append(i)

    routed: list[_Routed] = []
    if fresh:
        targets = _Targets.load(session, org_id, [requests[i] for i in fresh], known)
        for i in fresh:
            try:
                routed.append(_route(session, org_id, i, requests[i], kinds[i], targets))
            except QunyunError as exc:
                outcomes[i] = exc
    single = len(routed) <= REQUEST_CHUNK
    for chunk in range(0, len(routed), REQUEST_CHUNK):
        # A key asked for again in the batch is compared with its first request's entity.
        chunk_refs = refs and not repeats
        part = routed[chunk : chunk + REQUEST_CHUNK]
        for item, row in _insert_actions(session, org_id, part, refs=chunk_refs, pending=pending if single else None):
            outcomes[item.index] = row
    for i in repeats:
        first = outcomes[first_of[requests[i].idempotency_key]]
        outcomes[i] = (
            _same_or_error(first, org_id, kinds[i], requests[i]) if isinstance(first, OutboundAction) else first
        )
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


def _same_or_error(
    row: OutboundAction, org_id: int, kind: ActionKind, request: ActionRequest
) -> OutboundAction | QunyunError:
    try:
        return _same_request(row, org_id, kind, request.connection_id, request.group_id, request.member_id)
    except Conflict as exc:
        return exc


@dataclass(frozen=True, slots=True)
class GroupRow:
    """What routing reads of a group (a plain row: loading the entity costs more than its use)."""

    id: int
    org_id: int
    connection_id: int | None
    platform: str
    external_id: str


@dataclass(frozen=True, slots=True)
class MemberRow:
    id: int
    org_id: int
    platform: str
    external_id: str


@dataclass(frozen=True, slots=True)
class ConnectionRow:
    """What routing reads of a connection (``registry.profile_of`` reads the same columns)."""

    id: int
    org_id: int
    platform: str
    name: str
    updated_at: datetime


# The statements of the usual batch, built once (a select built at each call costs more than its
# round trip): the groups with their connections, and with one member, as plain columns.
_GROUP_COLUMNS = (Group.id, Group.org_id, Group.connection_id, Group.platform, Group.external_id)
_CONNECTION_COLUMNS = (Connection.id, Connection.org_id, Connection.platform, Connection.name, Connection.updated_at)
_MEMBER_COLUMNS = (Member.id, Member.org_id, Member.platform, Member.external_id)
_GROUPS = (
    select(*_GROUP_COLUMNS, *_CONNECTION_COLUMNS)
    .outerjoin(Connection, Connection.id == Group.connection_id)
    .where(Group.id.in_(bindparam("groups", expanding=True)))
)
_GROUPS_AND_MEMBER = _GROUPS.add_columns(*_MEMBER_COLUMNS).outerjoin(Member, Member.id == bindparam("member"))
_G, _C = len(_GROUP_COLUMNS), len(_CONNECTION_COLUMNS)


@dataclass
class _Targets:
    """The groups, members, connections and staff a batch of requests names, loaded at once
    (plain rows, or the entities where the session holds them or a batch names them apart)."""

    groups: dict[int, Any]  # id → GroupRow
    members: dict[int, Any]  # id → MemberRow or Member
    connections: dict[int, Any]  # id → ConnectionRow or Connection
    staff: set[int]
    defaults: dict[str, Connection] = field(default_factory=dict)  # platform → default connection

    @classmethod
    def load(
        cls,
        session: Session,
        org_id: int,
        requests: Sequence[ActionRequest],
        known: Iterable[GroupRow | MemberRow | ConnectionRow] = (),
    ) -> _Targets:
        groups: dict[int, Any] = {}
        connections: dict[int, Any] = {}
        members: dict[int, Any] = {}
        for row in known:
            {GroupRow: groups, MemberRow: members, ConnectionRow: connections}[type(row)][row.id] = row
        # A known group is only as good as its connection: without it, it is read again.
        groups = {k: g for k, g in groups.items() if g.connection_id is None or g.connection_id in connections}
        group_ids = {r.group_id for r in requests if r.group_id is not None} - groups.keys()
        member_ids = {r.member_id for r in requests if r.member_id is not None} - members.keys()
        staff_ids = {r.assignee_id for r in requests if r.assignee_id is not None}
        ordered = sorted(group_ids)
        # One member named (a kick, a mute): read with the groups, in the same round trip.
        joined = next(iter(member_ids)) if len(member_ids) == 1 and ordered else None
        if ordered and session.autoflush:
            session.flush()  # as the ORM's execute would: the rows read are the session's
        db = session.connection()
        for i in range(0, len(ordered), REQUEST_CHUNK):
            # The groups with their connections: one round trip for the usual request.
            chunk = ordered[i : i + REQUEST_CHUNK]
            rows: Any
            if joined is None:
                rows = db.execute(_GROUPS, {"groups": chunk})
            else:
                rows = db.execute(_GROUPS_AND_MEMBER, {"groups": chunk, "member": joined})
            for row in rows:
                groups[row[0]] = GroupRow(*row[:_G])
                if row[_G] is not None:
                    connections[row[_G]] = ConnectionRow(*row[_G : _G + _C])
                if joined is not None and row[_G + _C] is not None:
                    members[row[_G + _C]] = MemberRow(*row[_G + _C :])
        members.update(_rows_by_id(session, Member, member_ids - members.keys()))
        connection_ids = {r.connection_id for r in requests if r.connection_id is not None} - connections.keys()
        connections.update(_rows_by_id(session, Connection, connection_ids))
        staff: set[int] = set()
        if staff_ids:
            staff = set(session.scalars(select(Staff.id).where(Staff.id.in_(staff_ids), Staff.org_id == org_id)))
        return cls(groups, members, connections, staff)

    def group(self, org_id: int, group_id: int | None) -> Any:
        if group_id is None:
            return None
        group = self.groups.get(group_id)
        if group is None or group.org_id != org_id:
            raise InvalidInput(Msg("err.outbound.no_group", id=group_id), field="group_id")
        return group

    def member(self, org_id: int, member_id: int | None) -> Any:
        if member_id is None:
            return None
        member = self.members.get(member_id)
        if member is None or member.org_id != org_id:
            raise InvalidInput(Msg("err.outbound.no_member", id=member_id), field="member_id")
        return member


def _rows_by_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    """Rows of ``model`` by id (already in the session: not asked for again)."""
    out: dict[int, Any] = {}
    for id_ in ids:
        row = session.identity_map.get(identity_key(model, id_))
        if row is not None and not inspect(row).expired:
            out[id_] = row
    missing = sorted(ids - out.keys())
    for i in range(0, len(missing), REQUEST_CHUNK):
        out.update(
            {row.id: row for row in session.scalars(select(model).where(model.id.in_(missing[i : i + REQUEST_CHUNK])))}
        )
    return out


def _route(
    session: Session, org_id: int, index: int, request: ActionRequest, kind: ActionKind, targets: _Targets
) -> _Routed:
    """Check and build one request of a batch (InvalidInput naming the field), before any write."""
    group = targets.group(org_id, request.group_id)
    member = targets.member(org_id, request.member_id)
    connection = _resolve_connection(session, org_id, request.connection_id, group, member, targets)
    if request.assignee_id is not None and request.assignee_id not in targets.staff:
        raise InvalidInput(Msg("err.group.no_staff", id=request.assignee_id), field="assignee_id")
    payload = request.payload
    typed = action_from_payload(
        kind,
        {k: v for k, v in payload.items() if k != "deadline"},
        group=group.external_id if group else None,
        member=member.external_id if member else None,
    )
    deadline = parse_instant(payload["deadline"], "payload.deadline") if payload.get("deadline") else None
    stored = typed.to_payload()
    if deadline is not None:
        stored["deadline"] = deadline.isoformat()
    if request.assignee_id is not None:
        stored["assignee_id"] = request.assignee_id
    return _Routed(index, request, kind, connection, typed, stored, deadline)


def _insert_actions(
    session: Session, org_id: int, routed: list[_Routed], *, refs: bool = False, pending: _Pending | None = None
) -> list[tuple[_Routed, OutboundAction | ActionRef | QunyunError]]:
    """Insert the rows of routed requests (one statement; a key that exists already — one a
    concurrent request committed first, or a ``new_key`` that was not new — is that row, or a
    Conflict when it is another request's), their history and their perform jobs (left in
    ``pending`` when given and nothing was delegated or found late: the caller writes them)."""
    if not routed:
        return []
    now = utcnow()
    platform_now: dict[int, datetime] = {}
    decided: dict[int, OutboundState] = {}  # index → the state it is inserted in
    for item in routed:
        connection = item.connection
        if connection.id not in platform_now:
            platform_now[connection.id] = _platform_now(connection)
        if item.deadline is not None and item.deadline <= platform_now[connection.id]:
            decided[item.index] = S.EXPIRED
            continue
        item.profile = registry.profile_of(connection)
        item.missing = missing_capabilities(item.typed, item.profile.capabilities)
        # Delegated through ``_delegate`` after the insert: it opens a task and moves the row.
        decided[item.index] = S.PLANNED if item.missing else S.QUEUED
    values = [
        {
            "org_id": org_id,
            "platform": item.connection.platform,
            "connection_id": item.connection.id,
            "action": item.kind.value,
            "group_id": item.request.group_id,
            "member_id": item.request.member_id,
            "payload": item.stored,
            "idempotency_key": item.request.idempotency_key,
            "state": decided[item.index].value,
            "attempts": 0,
            "external_ref": None,
            "result": {},
            "last_error": None,
            "created_at": now,
            "updated_at": now,
        }
        for item in routed
    ]
    # Executemany (batched into one INSERT … RETURNING by the driver layer): its statement is
    # compiled once per process, where a multi-row VALUES would be compiled at each call.
    rows: Any
    if refs:
        # Plain Core on the session's connection: the ids, no entity loaded.
        if session.autoflush:
            session.flush()  # as the ORM's execute would (a no-op when the targets were read)
        params: Any = values[0] if len(values) == 1 else values
        inserted_ids = {
            key: action_id for action_id, key in session.connection().execute(_insert_refs(session), params)
        }
        rows = [_Inserted(action_id, org_id, key) for key, action_id in inserted_ids.items()]
    elif len(values) == 1:
        # One row (the usual request): a plain INSERT … RETURNING loaded as the entity, which
        # costs less than the ORM's bulk insert.
        rows = session.scalars(_insert_one(session), values[0])
    else:
        statement = _insert_ignoring(session, OutboundAction).returning(OutboundAction)
        rows = session.scalars(statement, values, execution_options={"render_nulls": True})
    inserted = {row.idempotency_key: row for row in rows}
    out: list[tuple[_Routed, OutboundAction | ActionRef | QunyunError]] = []
    history: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    delegated: list[tuple[_Routed, Any]] = []
    late: list[_Routed] = []
    requested = Msg("sends.history.requested")
    for item in routed:
        row = inserted.get(item.request.idempotency_key)
        if row is None:  # a concurrent request with the same key committed first: that one is the action
            late.append(item)
            continue
        state = decided[item.index]
        if refs:
            out.append((item, ActionRef(row.id, S.DELEGATED if state == S.PLANNED else state)))
        else:
            out.append((item, row))
        history.append(_history_row(row.id, None, S.PLANNED, requested, now))
        if state == S.EXPIRED:
            reason = Msg("sends.reason.expired_before_queued", deadline=item.deadline.isoformat())  # type: ignore[union-attr]
            history.append(_history_row(row.id, S.PLANNED, S.EXPIRED, reason, now))
        elif state == S.QUEUED:
            history.append(_history_row(row.id, S.PLANNED, S.QUEUED, "", now))
            jobs.append(_perform_job_row(row, item.request.run_at or now, now))
        else:
            delegated.append((item, row))
    if pending is not None and not delegated and not late:
        pending.history, pending.jobs = history, jobs
    else:
        _write_pending(session, _Pending(history, jobs))
    for item, row in delegated:
        assert item.profile is not None
        entity = row if isinstance(row, OutboundAction) else session.get_one(OutboundAction, row.id)
        _delegate(session, entity, item.typed, _missing_reason(item.profile, item.missing), missing=item.missing)
    if late:
        winners = _by_keys(session, org_id, [item.request.idempotency_key for item in late])
        for item in late:
            winner = winners.get(item.request.idempotency_key)
            if winner is None:  # the conflict was not the key's (cannot be: the key is the only unique one)
                raise Conflict(Msg("err.outbound.key_reused", idempotency_key=item.request.idempotency_key))
            out.append((item, _same_or_error(winner, org_id, item.kind, item.request)))
    return out


def _targets_of(request: ActionRequest) -> tuple[int | None, int | None, int | None]:
    return request.connection_id, request.group_id, request.member_id


def _history_row(
    action_id: int,
    from_state: OutboundState | None,
    to_state: OutboundState,
    detail: Msg | str,
    at: datetime,
    attempt: int | None = None,
) -> dict[str, Any]:
    """An ``OutboundActionTransition`` as the values of a bulk insert (as :func:`_record` writes it)."""
    return {
        "action_id": action_id,
        "from_state": from_state.value if from_state is not None else None,
        "to_state": to_state.value,
        "attempt": attempt,
        "at": at,
        "detail": str(detail)[:2000],
        "detail_key": detail.key if isinstance(detail, Msg) else None,
        "detail_values": message_values(detail) if isinstance(detail, Msg) else None,
    }


def _perform_job_row(row: OutboundAction | _Inserted, run_at: datetime, now: datetime) -> dict[str, Any]:
    """The action's perform job as the values of a bulk insert (as ``enqueue`` writes it, under
    the key that :func:`request_action` always gave it)."""
    return {
        "org_id": row.org_id,
        "kind": PERFORM_JOB,
        "payload": {"action_id": row.id},
        "key": f"{PERFORM_JOB}:{row.id}",
        "status": JobStatus.QUEUED.value,
        "priority": 0,
        "run_at": run_at,
        "attempts": 0,
        "max_attempts": JOB_MAX_ATTEMPTS,
        "created_at": now,
    }


_INSERT_ONE: dict[str, Any] = {}  # dialect name → the statement of :func:`_insert_one`


def _insert_one(session: Session) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING of one action, as an ORM statement that loads
    the inserted row (built once per dialect)."""
    name = session.get_bind().dialect.name
    if name not in _INSERT_ONE:
        _INSERT_ONE[name] = select(OutboundAction).from_statement(
            _insert_ignoring(session, OutboundAction).returning(OutboundAction)
        )
    return _INSERT_ONE[name]


@dataclass(frozen=True, slots=True)
class _Inserted:
    """An action inserted without loading its entity (:func:`_insert_refs`)."""

    id: int
    org_id: int
    idempotency_key: str


_INSERT_REFS: dict[str, Any] = {}  # dialect name → the statement of :func:`_insert_refs`


def _insert_refs(session: Session) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the id and key of actions, as a Core statement
    (built once per dialect)."""
    name = session.get_bind().dialect.name
    if name not in _INSERT_REFS:
        _INSERT_REFS[name] = _insert_ignoring(session, OutboundAction).returning(
            OutboundAction.id, OutboundAction.idempotency_key
        )
    return _INSERT_REFS[name]


_INSERT_TRANSITIONS = insert(_TRANSITIONS)
_IGNORING: dict[tuple[str, Any], Any] = {}  # (dialect name, model) → its statement


def _insert_ignoring(session: Session, model: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect (SQLite or PostgreSQL), built
    once per dialect and model (statements are immutable: a caller's ``returning`` makes another)."""
    name = session.get_bind().dialect.name
    found = _IGNORING.get((name, model))
    if found is None:
        dialect = postgresql if name == "postgresql" else sqlite
        found = _IGNORING[(name, model)] = dialect.insert(model).on_conflict_do_nothing()
    return found


def _write_pending(
    session: Session, pending: _Pending, record: tuple[Table, dict[str, Any]] | None = None
) -> int | None:
    """Write the history rows and perform jobs of inserted actions and, when given, the caller's
    record of them (its id returned). Plain Core statements on the session's connection (its
    transaction): the ORM's execute path (autoflush, ORM compile state) costs more than the round
    trip, and the rows they refer to were flushed by the actions' INSERT."""
    history, jobs = pending.history, pending.jobs
    db = session.connection()
    if db.dialect.name == "postgresql" and len(jobs) <= FEW_JOBS and len(history) <= 2 * FEW_JOBS:
        parts = (len(history), len(jobs), record[0] if record else None, tuple(record[1]) if record else ())
        if (history and jobs) or (history and record):
            # One round trip: the history rows (and the jobs) as data-modifying CTEs of the last
            # INSERT (a few rows: a multi-row VALUES is compiled per size, a large batch goes
            # executemany).
            params = _numbered(history, "h") | _numbered(jobs, "j") | _numbered([record[1]] if record else [], "r")
            result = db.execute(_combined(*parts), params)
            return int(result.scalar_one()) if record else None
    if history:
        db.execute(_INSERT_TRANSITIONS, history)
    if jobs:
        db.execute(_insert_ignoring(session, _JOBS), jobs)
    if record is None:
        return None
    table, values = record
    return int(db.execute(insert(table).returning(table.c.id), values).scalar_one())


_COMBINED: dict[tuple[Any, ...], Any] = {}  # (history rows, jobs, record table, its columns) → the statement


def _combined(history: int, jobs: int, record: Table | None, columns: tuple[str, ...]) -> Any:
    """PostgreSQL: INSERT the history rows, the perform jobs (ON CONFLICT DO NOTHING) and the
    caller's record (RETURNING its id) in one statement, each but the last a data-modifying CTE;
    built once per shape. Its parameters are :func:`_numbered` (h, j, r)."""
    key = (history, jobs, record, columns)
    found = _COMBINED.get(key)
    if found is None:
        binds: list[Any] = []
        quote = postgresql.dialect().identifier_preparer.quote

        def insert_sql(table: Table, prefix: str, count: int, names: Sequence[str]) -> str:
            binds.extend(bindparam(f"{prefix}{i}_{c}", type_=table.c[c].type) for i in range(count) for c in names)
            values = ", ".join("(" + ", ".join(f":{prefix}{i}_{c}" for c in names) + ")" for i in range(count))
            return f"INSERT INTO {table.name} ({', '.join(quote(c) for c in names)}) VALUES {values}"

        inserts = []
        if history:
            inserts.append(insert_sql(_TRANSITIONS, "h", history, _HISTORY_COLUMNS))
        if jobs:
            inserts.append(insert_sql(_JOBS, "j", jobs, _JOB_COLUMNS) + " ON CONFLICT DO NOTHING")
        if record is not None:
            inserts.append(insert_sql(record, "r", 1, columns) + f" RETURNING {record.name}.id")
        ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(inserts[:-1]))
        found = text(f"WITH {ctes} {inserts[-1]}").bindparams(*binds)
        _COMBINED[key] = found
    return found


_HISTORY_COLUMNS = ["action_id", "from_state", "to_state", "attempt", "at", "detail", "detail_key", "detail_values"]
_JOB_COLUMNS = [
    "org_id",
    "kind",
    "payload",
    "key",
    "status",
    "priority",
    "run_at",
    "attempts",
    "max_attempts",
    "created_at",
]


def _numbered(rows: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    return {f"{prefix}{i}_{c}": v for i, row in enumerate(rows) for c, v in row.items()}


# --- performing: the two phases of the perform job -----------------------------------------------


class CallMode(enum.StrEnum):
    SEND = "send"  # the action is queued: perform it
    RECONCILE = "reconcile"  # an earlier attempt may have performed it: ask the platform


@dataclass(frozen=True)
class PreparedCall:
    """What :func:`prepare` committed to: one platform call for one action's attempt."""

    action_id: int
    attempt: int
    mode: CallMode
    action: Action
    idempotency_key: str
    connector: Connector


# session.info: the actions this transaction holds locked, by id (and their groups and members)
_LOCKED = "qunyun.dispatch.locked"
# session.info: the writes a batch's prepare or record calls deferred to :func:`settle_batch`
_DEFERRED = "qunyun.dispatch.deferred"
_ACTIONS = cast(Table, OutboundAction.__table__)


@dataclass
class _Deferred:
    """The usual moves of a batch's actions (queued → sending, sending → sent), written at the
    batch's end in one UPDATE of the actions and one INSERT of their history rows."""

    rows: dict[int, OutboundAction] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def lock_batch(session: Session, action_ids: Sequence[int], *, with_targets: bool = True, defer: bool = False) -> None:
    """Lock the actions of a batch of perform jobs in one statement (in id order, so that two
    workers never wait on each other in a cycle), with their groups, members and connections loaded
    (``with_targets``): each job's :func:`prepare` or :func:`record` then finds its row without a
    round trip of its own (its connection's too).

    With ``defer``, the usual moves that the batch's :func:`prepare` and :func:`record` make
    (queued → sending with the attempt, sending → sent) are kept in memory until
    :func:`settle_batch` writes them all, which the caller must do in the same transaction before
    it commits (the worker does, before the jobs' completions)."""
    if defer:
        session.info[_DEFERRED] = _Deferred()
    ids = sorted(set(action_ids))
    rows: list[OutboundAction] = []
    postgres = session.get_bind().dialect.name == "postgresql"
    for i in range(0, len(ids), REQUEST_CHUNK):
        chunk = ids[i : i + REQUEST_CHUNK]
        if postgres:  # one statement text whatever the batch's size: parsed and planned once
            rows.extend(session.scalars(_LOCK_PG, {"ids": pg_array(chunk)}))
            continue
        query = select(OutboundAction).where(OutboundAction.id.in_(chunk)).order_by(OutboundAction.id).with_for_update()
        rows.extend(session.scalars(query))
    # Held here: the session's identity map keeps its rows only while something refers to them.
    held: dict[Any, Any] = session.info.setdefault(_LOCKED, {})
    held.update({row.id: row for row in rows})
    if with_targets:
        by_id = _rows_by_any_id if postgres else _rows_by_id
        groups = by_id(session, Group, {row.group_id for row in rows if row.group_id is not None})
        members = by_id(session, Member, {row.member_id for row in rows if row.member_id is not None})
        connections = by_id(session, Connection, {r.connection_id for r in rows if r.connection_id is not None})
        held.update({(Group, k): v for k, v in groups.items()})
        held.update({(Member, k): v for k, v in members.items()})
        held.update({(Connection, k): v for k, v in connections.items()})


def pg_array(values: Sequence[int | str | None]) -> str:
    """A PostgreSQL array literal of integers or texts (NULL for None), for a parameter cast to
    an array type: the driver adapts a list for many times the CPU."""
    return "{" + ",".join(_pg_element(v) for v in values) + "}"


def _pg_element(value: int | str | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _ids_param() -> Any:
    return cast_(bindparam("ids", type_=Text()), postgresql.ARRAY(BigInteger()))


_LOCK_PG = (
    select(OutboundAction).where(OutboundAction.id == any_(_ids_param())).order_by(OutboundAction.id).with_for_update()
)
_BY_ANY_ID: dict[Any, Any] = {}  # model → its SELECT … WHERE id = ANY(:ids)


def _rows_by_any_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    """:func:`_rows_by_id` on PostgreSQL: the ids as one array parameter (one statement text)."""
    out: dict[int, Any] = {}
    for id_ in ids:
        row = session.identity_map.get(identity_key(model, id_))
        if row is not None and not inspect(row).expired:
            out[id_] = row
    missing = sorted(ids - out.keys())
    if missing:
        if model not in _BY_ANY_ID:
            _BY_ANY_ID[model] = select(model).where(model.id == any_(_ids_param()))
        out.update({row.id: row for row in session.scalars(_BY_ANY_ID[model], {"ids": pg_array(missing)})})
    return out


_SETTLE_PG = text(
    """
    UPDATE outbound_actions AS a
    SET state = moved.state, attempts = moved.attempts, external_ref = moved.external_ref,
        last_error = moved.last_error, updated_at = moved.updated_at
    FROM unnest(
        CAST(:ids AS BIGINT[]), CAST(:states AS VARCHAR[]), CAST(:attempts AS INTEGER[]),
        CAST(:refs AS VARCHAR[]), CAST(:errors AS TEXT[]), CAST(:at AS BIGINT[])
    ) AS moved(id, state, attempts, external_ref, last_error, updated_at)
    WHERE a.id = moved.id
    """
)
# The history rows, one statement (the driver's executemany would send one a row).
_HISTORY_PG = text(
    """
    INSERT INTO outbound_action_transitions
        (action_id, from_state, to_state, attempt, at, detail, detail_key, detail_values)
    SELECT action_id, from_state, to_state, attempt, at, detail, detail_key, CAST(detail_values AS JSON)
    FROM unnest(
        CAST(:ids AS BIGINT[]), CAST(:froms AS VARCHAR[]), CAST(:tos AS VARCHAR[]), CAST(:attempts AS INTEGER[]),
        CAST(:at AS BIGINT[]), CAST(:details AS TEXT[]), CAST(:keys AS VARCHAR[]), CAST(:values AS TEXT[])
    ) AS h(action_id, from_state, to_state, attempt, at, detail, detail_key, detail_values)
    """
)
_SETTLE = (
    update(_ACTIONS)
    .where(_ACTIONS.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempts"),
        external_ref=bindparam("b_ref"),
        last_error=bindparam("b_error"),
        updated_at=bindparam("b_at"),
    )
)


def settle_batch(session: Session) -> int:
    """Write the moves deferred since :func:`lock_batch` (``defer``) or the last call: the
    actions' rows as they are in memory now, in one statement, and their history rows in order,
    in another. Returns how many actions were written."""
    deferred: _Deferred | None = session.info.get(_DEFERRED)
    if deferred is None or not deferred.rows:
        return 0
    rows, history = list(deferred.rows.values()), deferred.history
    deferred.rows, deferred.history = {}, []
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _HISTORY_PG,
            {
                "ids": pg_array([h["action_id"] for h in history]),
                "froms": pg_array([h["from_state"] for h in history]),
                "tos": pg_array([h["to_state"] for h in history]),
                "attempts": pg_array([h["attempt"] for h in history]),
                "at": pg_array([to_micros(h["at"]) for h in history]),
                "details": pg_array([h["detail"] for h in history]),
                "keys": pg_array([h["detail_key"] for h in history]),
                "values": pg_array([_json_or_none(h["detail_values"]) for h in history]),
            },
        )
        session.execute(
            _SETTLE_PG,
            {
                "ids": pg_array([row.id for row in rows]),
                "states": pg_array([row.state for row in rows]),
                "attempts": pg_array([row.attempts for row in rows]),
                "refs": pg_array([row.external_ref for row in rows]),
                "errors": pg_array([row.last_error for row in rows]),
                "at": pg_array([to_micros(row.updated_at) for row in rows]),
            },
        )
    else:
        session.execute(
            _SETTLE,
            [
                {
                    "b_id": row.id,
                    "b_state": row.state,
                    "b_attempts": row.attempts,
                    "b_ref": row.external_ref,
                    "b_error": row.last_error,
                    "b_at": row.updated_at,
                }
                for row in rows
            ],
        )
        session.execute(insert(_TRANSITIONS), history)
    return len(rows)


def _move(
    session: Session, row: OutboundAction, to_state: OutboundState, detail: Msg, *, attempt: int, **changes: Any
) -> None:
    """:func:`transition` with ``changes`` to the row's columns, deferred to :func:`settle_batch`
    in a batch that defers its writes (the row in memory changes now, without the ORM writing
    it), else written at once."""
    deferred: _Deferred | None = session.info.get(_DEFERRED)
    if deferred is None:
        for name, value in changes.items():
            setattr(row, name, value)
        transition(session, row, to_state, detail, attempt=attempt)
        return
    current = OutboundState(row.state)
    if to_state not in ALLOWED_TRANSITIONS[current]:
        raise Conflict(
            Msg("err.outbound.bad_transition", id=row.id, current=current.value, to=to_state.value), field="state"
        )
    now = utcnow()
    for name, value in {**changes, "state": to_state.value, "updated_at": now}.items():
        set_committed_value(row, name, value)
    deferred.rows[row.id] = row
    deferred.history.append(_history_row(row.id, current, to_state, detail, now, attempt))


def _locked(session: Session, action_id: int) -> OutboundAction | None:
    """The action, locked for this transaction (by :func:`lock_batch` earlier in it, else now)."""
    row = session.info.get(_LOCKED, {}).get(action_id)
    if row is not None:
        return cast(OutboundAction, row)
    return session.scalar(select(OutboundAction).where(OutboundAction.id == action_id).with_for_update())


def prepare(session: Session, action_id: int) -> PreparedCall | None:
    """Phase 1 (its transaction commits before the call): lock the action and decide.

    ``queued``: re-check the deadline and the capabilities (expired, delegated, failed without a
    call), else commit ``sending`` with the next attempt and return the send. ``sending``: an
    earlier attempt may have reached the platform; return a reconciliation if the connector can
    tell, else move it to ``uncertain`` with a task for a person. Anything else: nothing to do
    (None), so the job can run any number of times.
    """
    row = _locked(session, action_id)
    if row is None or row.state not in (S.QUEUED, S.SENDING):
        return None
    if row.state == S.SENDING:
        return _prepare_check(session, row)
    try:
        connector = _connector(session, row)
    except ConnectorUnavailable as exc:
        _delegate(session, row, None, exc.msg or exc.message)
        return None
    deadline = _deadline(row)
    if deadline is not None and deadline <= connector.now():
        transition(session, row, S.EXPIRED, Msg("sends.reason.expired_before_performed", deadline=deadline.isoformat()))
        return None
    try:
        typed = _typed_action(session, row)
    except InvalidInput as exc:
        row.last_error = exc.message
        transition(session, row, S.FAILED, exc.msg or exc.message)
        return None
    missing = missing_capabilities(typed, connector.capabilities)
    if missing:
        _delegate(session, row, typed, _missing_reason(connector.profile, missing), missing=missing)
        return None
    attempt = row.attempts + 1
    _move(session, row, S.SENDING, Msg("sends.history.attempt", attempt=attempt), attempt=attempt, attempts=attempt)
    return PreparedCall(row.id, attempt, CallMode.SEND, typed, row.idempotency_key, connector)


def call(prepared: PreparedCall) -> ActionResult | None:
    """Phase 2 (no session, no transaction): talk to the platform.

    A send returns the platform's answer. A reconciliation returns what the platform did with
    the key (its answer then), or, when it never received it: the answer to sending it now if
    the platform dedupes by key (safe), else None. A platform that dedupes by key but cannot be
    asked (Matrix) is simply called again with the key: it answers with the first call's answer.
    """
    connector = prepared.connector
    if prepared.mode == CallMode.SEND or not connector.reconciles:  # not reconciles: key_idempotent
        return connector.perform(prepared.action, prepared.idempotency_key)
    found = connector.reconcile(prepared.action, prepared.idempotency_key)
    if found is not None:
        return found
    if connector.key_idempotent:
        return connector.perform(prepared.action, prepared.idempotency_key)
    return None


def record(session: Session, prepared: PreparedCall, outcome: ActionResult | BaseException | None) -> None:
    """Phase 3 (commits with the job's completion): write what the call came to.

    An answer: sent, awaiting_confirmation (+ a task to confirm) or failed. ``UnsupportedAction``:
    delegated. ``TransientError`` (nothing changed): queued again with a retry job and backoff,
    failed after MAX_ATTEMPTS. Anything else means the outcome is unknown: the action stays
    ``sending`` for a reconciliation if the connector can do one or its platform dedupes by key,
    else it becomes ``uncertain``.
    If the action moved on meanwhile (another attempt took over), nothing is written.
    """
    row = _locked(session, prepared.action_id)
    if row is None or row.state != S.SENDING or row.attempts != prepared.attempt:
        return
    typed = prepared.action
    checking = prepared.mode == CallMode.RECONCILE
    if isinstance(outcome, ActionResult):
        _apply_result(session, row, typed, outcome, reconciled=checking)
    elif outcome is None:
        _uncertain(session, row, typed, Msg("sends.reason.no_record", platform=platform_label(row.platform)))
    elif isinstance(outcome, TransientError):
        error = str(outcome) or type(outcome).__name__
        if checking:
            _check_later(session, row, typed, error)
        else:
            _retry_or_fail(session, row, error, wait=outcome.retry_after)
    elif isinstance(outcome, UnsupportedAction) and not checking:
        row.last_error = str(outcome)
        _delegate(session, row, typed, Msg("sends.reason.refused", detail=str(outcome)))
    else:
        # The call broke off: it may or may not have reached the platform.
        error = _describe(outcome)
        if prepared.connector.reconciles or prepared.connector.key_idempotent:
            _check_later(session, row, typed, error)
        else:
            _uncertain(session, row, typed, Msg("sends.reason.no_answer", attempt=row.attempts, error=error))


def _prepare_check(session: Session, row: OutboundAction) -> PreparedCall | None:
    sent_by = row.attempts
    try:
        connector = _connector(session, row)
        typed = _typed_action(session, row)
    except (ConnectorUnavailable, InvalidInput) as exc:
        _uncertain(
            session, row, None, Msg("sends.reason.may_have_reached", attempt=sent_by, error=exc.msg or exc.message)
        )
        return None
    platform = platform_label(row.platform)
    if not connector.reconciles and not _repeat_is_safe(session, connector, row):
        _uncertain(session, row, typed, Msg("sends.reason.cannot_tell", attempt=sent_by, platform=platform))
        return None
    if row.attempts >= MAX_ATTEMPTS + MAX_CHECKS:
        _uncertain(session, row, typed, Msg("sends.reason.could_not_say", platform=platform))
        return None
    row.attempts += 1
    _record(session, row, S.SENDING, S.SENDING, Msg("sends.history.reconcile", attempt=row.attempts), row.attempts)
    return PreparedCall(row.id, row.attempts, CallMode.RECONCILE, typed, row.idempotency_key, connector)


def _repeat_is_safe(session: Session, connector: Connector, row: OutboundAction) -> bool:
    """Whether calling again with the action's key is answered with the first call's answer: the
    platform performs a call once per key (Matrix's transaction ids) and still remembers it,
    counted from the action's first ``sending`` (committed before its first call)."""
    if not connector.key_idempotent:
        return False
    if connector.key_memory is None:
        return True
    first = session.scalar(
        select(func.min(OutboundActionTransition.at)).where(
            OutboundActionTransition.action_id == row.id, OutboundActionTransition.to_state == S.SENDING.value
        )
    )
    return first is not None and first >= utcnow() - connector.key_memory


# --- people ---------------------------------------------------------------------------------------


def confirm(session: Session, action_id: int, *, detail: Msg | str = "") -> OutboundAction:
    """Record that a person completed the action (pressed send on the platform, did the
    delegated task, or checked that an uncertain send went out): → confirmed, and its open staff
    tasks are done. Idempotent."""
    row = session.scalar(select(OutboundAction).where(OutboundAction.id == action_id).with_for_update())
    if row is None:
        raise NotFound(Msg("err.outbound.not_found", id=action_id), field="action_id")
    if row.state == S.CONFIRMED:
        return row
    if row.state not in CONFIRMABLE:
        raise Conflict(Msg("err.sends.not_confirmable", id=action_id, state=row.state), field="state")
    transition(session, row, S.CONFIRMED, detail or Msg("sends.history.confirmed"))
    close_for_action(session, row.id, TaskStatus.DONE)
    return row


def not_sent(session: Session, action_id: int, *, detail: Msg | str = "") -> OutboundAction:
    """Record that a person checked an ``uncertain`` action and it never reached the platform:
    → failed (request it again under a new key to send it), its tasks cancelled. Idempotent."""
    row = session.scalar(select(OutboundAction).where(OutboundAction.id == action_id).with_for_update())
    if row is None:
        raise NotFound(Msg("err.outbound.not_found", id=action_id), field="action_id")
    if row.state == S.FAILED:
        return row
    if row.state != S.UNCERTAIN:
        raise Conflict(Msg("err.sends.not_uncertain", id=action_id, state=row.state), field="state")
    reason = detail or Msg("sends.history.not_sent")
    row.last_error = str(reason)
    transition(session, row, S.FAILED, reason)
    close_for_action(session, row.id, TaskStatus.CANCELLED)
    return row


def expire_overdue(session: Session, *, now: datetime | None = None, org_id: int | None = None) -> list[int]:
    """Expire actions waiting on a person (awaiting_confirmation, delegated, uncertain) whose
    deadline has passed, cancelling their open staff tasks. Returns the expired action ids."""
    now = now or utcnow()
    query = select(OutboundAction).where(OutboundAction.state.in_([s.value for s in WAITING_ON_PERSON]))
    if org_id is not None:
        query = query.where(OutboundAction.org_id == org_id)
    expired = []
    for row in session.scalars(query.order_by(OutboundAction.id).with_for_update()):
        deadline = _deadline(row)
        if deadline is not None and deadline <= now:
            transition(session, row, S.EXPIRED, Msg("sends.reason.expired_waiting", deadline=deadline.isoformat()))
            close_for_action(session, row.id, TaskStatus.CANCELLED)
            expired.append(row.id)
    return expired


@dataclass
class StuckSweep:
    """What one :func:`sweep_stuck` pass did, by action id."""

    requeued: list[int] = field(default_factory=list)  # queued, given a new perform job
    rechecked: list[int] = field(default_factory=list)  # sending, given a job that reconciles it
    handed_over: list[int] = field(default_factory=list)  # swept MAX_SWEEPS times: now a person's


def sweep_stuck(
    session: Session,
    *,
    now: datetime | None = None,
    org_id: int | None = None,
    stuck_after: timedelta = STUCK_AFTER,
    limit: int = SWEEP_BATCH,
) -> StuckSweep:
    """Find outbound actions that no job will move any more and set them going again.

    A ``queued`` action whose perform job is gone (dead after its attempts, purged) gets a new
    job. A ``sending`` action unchanged for ``stuck_after`` whose job will not run again (its
    worker died and the job is dead) gets a job too, whose prepare finds it ``sending`` and takes
    the reconcile path: the platform is asked where it can tell, otherwise the action becomes
    ``uncertain`` with a task for a person — never a blind resend. An action with a live job
    (queued, or running under a lease, however long its call takes) is left alone. Each sweep of
    an action is in its history; after ``MAX_SWEEPS`` a queued one is delegated to a person and a
    sending one becomes uncertain, so a job that keeps dying cannot loop for ever."""
    now = now or utcnow()
    in_org = (OutboundAction.org_id == org_id,) if org_id is not None else ()
    candidates = session.scalars(
        select(OutboundAction.id)
        .where(
            *in_org,
            (OutboundAction.state == S.QUEUED.value)
            | ((OutboundAction.state == S.SENDING.value) & (OutboundAction.updated_at < now - stuck_after)),
        )
        .order_by(OutboundAction.id)
    ).all()
    if not candidates:
        return StuckSweep()
    # One pass over the live perform jobs rather than a lookup per action: the queue may hold
    # thousands of sends waiting for their time, all of them healthy.
    live = _with_live_job(session, org_id)
    stuck = [action_id for action_id in candidates if action_id not in live][:limit]
    sweep = StuckSweep()
    for action_id in stuck:
        # Locked, then checked again: every job of an action is enqueued under this lock (the
        # request, a retry, a check, a sweep), so a job that appeared meanwhile is seen now.
        row = session.scalar(
            select(OutboundAction).where(OutboundAction.id == action_id).with_for_update(skip_locked=True)
        )
        if row is None or row.state not in (S.QUEUED, S.SENDING) or _with_live_job(session, org_id, action_id):
            continue
        state = OutboundState(row.state)
        if state == S.SENDING and row.updated_at >= now - stuck_after:
            continue
        if _sweeps(session, row.id, state) >= MAX_SWEEPS:
            if state == S.QUEUED:
                _delegate(session, row, None, Msg("sends.reason.sweep_queued", sweeps=MAX_SWEEPS))
            else:
                _uncertain(session, row, None, Msg("sends.reason.sweep_sending", attempt=row.attempts))
            sweep.handed_over.append(row.id)
            continue
        note(session, row, Msg(SWEPT), attempt=row.attempts if state == S.SENDING else None)
        enqueue(
            session,
            PERFORM_JOB,
            {"action_id": row.id},
            org_id=row.org_id,
            key=f"{PERFORM_JOB}:{row.id}:sweep{_sweeps(session, row.id, state)}",
            max_attempts=JOB_MAX_ATTEMPTS,
        )
        (sweep.requeued if state == S.QUEUED else sweep.rechecked).append(row.id)
    return sweep


def _with_live_job(session: Session, org_id: int | None, action_id: int | None = None) -> set[int]:
    """Ids of actions with a perform job that will still run (queued, or running under a lease
    that the runner recovers if its worker died); one action's, or every one's."""
    target = Job.payload["action_id"].as_integer()
    query = select(target).where(Job.kind == PERFORM_JOB, Job.status.in_(LIVE_JOB_STATES))
    if org_id is not None:
        query = query.where(Job.org_id == org_id)
    if action_id is not None:
        query = query.where(target == action_id)
    return {int(v) for v in session.scalars(query) if v is not None}


def _sweeps(session: Session, action_id: int, state: OutboundState) -> int:
    """How many sweeps found ``action_id`` stuck in ``state``."""
    return (
        session.scalar(
            select(func.count()).where(
                OutboundActionTransition.action_id == action_id,
                OutboundActionTransition.from_state == state.value,
                OutboundActionTransition.to_state == state.value,
                OutboundActionTransition.detail_key == SWEPT,
            )
        )
        or 0
    )


def history(session: Session, action_id: int) -> list[OutboundActionTransition]:
    """The action's transitions, oldest first."""
    return list(
        session.scalars(
            select(OutboundActionTransition)
            .where(OutboundActionTransition.action_id == action_id)
            .order_by(OutboundActionTransition.id)
        )
    )


# --- helpers ------------------------------------------------------------------------------------


def _by_keys(session: Session, org_id: int, keys: list[str]) -> dict[str, OutboundAction]:
    """The organisation's actions under ``keys``, by key."""
    found: dict[str, OutboundAction] = {}
    for i in range(0, len(keys), REQUEST_CHUNK):
        query = select(OutboundAction).where(
            OutboundAction.org_id == org_id, OutboundAction.idempotency_key.in_(keys[i : i + REQUEST_CHUNK])
        )
        found.update({row.idempotency_key: row for row in session.scalars(query)})
    return found


def _same_request(
    existing: OutboundAction,
    org_id: int,
    kind: ActionKind,
    connection_id: int | None,
    group_id: int | None,
    member_id: int | None,
) -> OutboundAction:
    asked = (org_id, kind.value, group_id, member_id)
    same = (existing.org_id, existing.action, existing.group_id, existing.member_id) == asked
    if not same or (connection_id is not None and existing.connection_id != connection_id):
        raise Conflict(
            Msg("err.outbound.key_reused", idempotency_key=existing.idempotency_key),
            field="idempotency_key",
        )
    return existing


def _load_group(session: Session, org_id: int, group_id: int | None) -> Group | None:
    if group_id is None:
        return None
    group = session.get(Group, group_id)
    if group is None or group.org_id != org_id:
        raise InvalidInput(Msg("err.outbound.no_group", id=group_id), field="group_id")
    return group


def _load_member(session: Session, org_id: int, member_id: int | None) -> Member | None:
    if member_id is None:
        return None
    member = session.get(Member, member_id)
    if member is None or member.org_id != org_id:
        raise InvalidInput(Msg("err.outbound.no_member", id=member_id), field="member_id")
    return member


def _resolve_connection(
    session: Session,
    org_id: int,
    connection_id: int | None,
    group: Any,
    member: Any,
    targets: _Targets,
) -> Any:
    """The connection the action goes through (see :func:`request_action`), its targets checked."""
    if connection_id is not None:
        found = targets.connections.get(connection_id)
        if found is None or found.org_id != org_id:
            raise InvalidInput(Msg("err.sends.no_connection", id=connection_id), field="connection_id")
        connection = found
    elif group is not None and group.connection_id is not None:
        connection = targets.connections[group.connection_id]
    elif group is not None or member is not None:
        platform = group.platform if group is not None else member.platform
        if platform not in targets.defaults:
            targets.defaults[platform] = default_connection(session, org_id, platform)
        connection = targets.defaults[platform]
    else:
        raise InvalidInput(Msg("err.sends.needs_connection"), field="connection_id")
    if group is not None:
        if group.connection_id is not None and group.connection_id != connection.id:
            raise InvalidInput(
                Msg("err.sends.group_connection", id=group.id, connection=connection.name), field="group_id"
            )
        if group.platform != connection.platform:
            raise InvalidInput(
                Msg("err.outbound.group_platform", id=group.id, actual=group.platform, platform=connection.platform),
                field="group_id",
            )
    if member is not None and member.platform != connection.platform:
        raise InvalidInput(
            Msg("err.outbound.member_platform", id=member.id, actual=member.platform, platform=connection.platform),
            field="member_id",
        )
    return connection


def _connector(session: Session, row: OutboundAction) -> Connector:
    """The action's connector (``ConnectorUnavailable``: none configured, or disabled)."""
    if row.connection_id is None:  # an action from before connections that the migration missed
        raise ConnectorUnavailable(Msg("err.sends.no_connection", id="—"), field="connection_id")
    try:
        return registry.connector_for(session, row.connection_id)
    except (NotFound, InvalidInput) as exc:
        # Gone, or configured so that no client builds (a token missing): a person does it.
        raise ConnectorUnavailable(exc.msg or exc.message, field="connection_id") from exc


def _typed_action(session: Session, row: OutboundAction) -> Action:
    group = _load_group(session, row.org_id, row.group_id)
    member = _load_member(session, row.org_id, row.member_id)
    return action_from_payload(
        row.action,
        {k: v for k, v in row.payload.items() if k not in RESERVED_PAYLOAD_KEYS},
        group=group.external_id if group else None,
        member=member.external_id if member else None,
    )


def _deadline(row: OutboundAction) -> datetime | None:
    value = row.payload.get("deadline")
    return parse_instant(value, "payload.deadline") if value else None


def _platform_now(connection: Connection) -> datetime:
    """The platform's time: a connector bound in this process may run on a virtual clock."""
    connector = registry.bound_connector(connection.id)
    return connector.now() if connector is not None else utcnow()


def _missing_reason(profile: PlatformProfile, missing: frozenset[Capability]) -> Msg:
    """Why a platform cannot do an action, with its notes on how it is done instead (in the
    catalogue as ``sends.note.<platform>.<capability>``; a note it lacks, in English)."""
    reason = Msg("sends.reason.missing", platform=platform_label(profile.platform), missing=", ".join(sorted(missing)))
    for capability in sorted(missing):
        text = profile.note(capability)
        if text:
            key = f"sends.note.{profile.platform}.{capability}"
            reason = Msg("sends.reason.with_note", reason=reason, note=Msg(key) if key in catalogue("en") else text)
    return reason


def _describe(exc: BaseException) -> str:
    """An exception as diagnostic text (its type and message, in English)."""
    message = exc.message if isinstance(exc, QunyunError) else str(exc)
    return f"{type(exc).__name__}: {message}"[:500] if str(message) else type(exc).__name__


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def _platform_wait(seconds: float | None) -> timedelta:
    if seconds is None or not seconds > 0:
        return timedelta(0)
    return timedelta(seconds=min(seconds, RETRY_MAX_SECONDS))


def _retry_or_fail(session: Session, row: OutboundAction, error: str, *, wait: float | None = None) -> None:
    """A send that changed nothing: queued again with a retry job, or failed after MAX_ATTEMPTS.
    The retry comes after the backoff, or after ``wait`` (the platform's ``retry_after``, at most
    RETRY_MAX_SECONDS) when that is longer."""
    row.last_error = error
    if row.attempts >= MAX_ATTEMPTS:
        reason = Msg("sends.reason.gave_up", attempts=row.attempts, error=error)
        transition(session, row, S.FAILED, reason, attempt=row.attempts)
        return
    transition(
        session,
        row,
        S.QUEUED,
        Msg("sends.history.attempt_error", attempt=row.attempts, error=error),
        attempt=row.attempts,
    )
    enqueue(
        session,
        PERFORM_JOB,
        {"action_id": row.id},
        org_id=row.org_id,
        run_at=utcnow() + max(_backoff(row.attempts), _platform_wait(wait)),
        key=f"{PERFORM_JOB}:{row.id}:retry{row.attempts}",
        max_attempts=JOB_MAX_ATTEMPTS,
    )


def _check_later(session: Session, row: OutboundAction, typed: Action, error: str) -> None:
    """The platform could not say (yet) what became of a send: stay ``sending`` and reconcile
    again later, or hand it to a person once the checks are used up."""
    row.last_error = error
    row.updated_at = utcnow()
    if row.attempts >= MAX_ATTEMPTS + MAX_CHECKS:
        _uncertain(session, row, typed, Msg("sends.reason.check_failed", error=error))
        return
    enqueue(
        session,
        PERFORM_JOB,
        {"action_id": row.id},
        org_id=row.org_id,
        run_at=utcnow() + _backoff(1),
        key=f"{PERFORM_JOB}:{row.id}:check{row.attempts}",
        max_attempts=JOB_MAX_ATTEMPTS,
    )


def _apply_result(
    session: Session, row: OutboundAction, typed: Action, result: ActionResult, *, reconciled: bool = False
) -> None:
    how = "sends.history.reconciled" if reconciled else "sends.history.attempt"
    detail = Msg(f"{how}_detail" if result.detail else how, attempt=row.attempts, detail=result.detail)
    if result.status == ResultStatus.DONE:
        _move(session, row, S.SENT, detail, attempt=row.attempts, external_ref=result.external_ref, last_error=None)
        return
    row.external_ref = result.external_ref
    if result.status == ResultStatus.AWAITING_CONFIRMATION:
        row.last_error = None
        transition(session, row, S.AWAITING_CONFIRMATION, detail, attempt=row.attempts)
        _open_task(session, row, typed, TaskKind.CONFIRM_SEND, result.detail or Msg("sends.reason.held"))
    else:
        row.last_error = result.detail
        transition(session, row, S.FAILED, detail, attempt=row.attempts)


def _uncertain(session: Session, row: OutboundAction, typed: Action | None, reason: Msg | str) -> None:
    row.last_error = str(reason)
    transition(session, row, S.UNCERTAIN, reason, attempt=row.attempts)
    _open_task(session, row, typed, TaskKind.UNCERTAIN_SEND, reason)


def _delegate(
    session: Session,
    row: OutboundAction,
    typed: Action | None,
    reason: Msg | str,
    *,
    missing: frozenset[Capability] = frozenset(),
) -> None:
    _open_task(session, row, typed, TaskKind.PLATFORM_ACTION, reason, missing=missing)
    transition(session, row, S.DELEGATED, reason)


def _open_task(
    session: Session,
    row: OutboundAction,
    typed: Action | None,
    kind: TaskKind,
    reason: Msg | str,
    *,
    missing: frozenset[Capability] = frozenset(),
) -> StaffTask:
    group = session.get(Group, row.group_id) if row.group_id is not None else None
    member = session.get(Member, row.member_id) if row.member_id is not None else None
    inner = Msg(
        action_class(row.action).title_key,
        group=group.name if group else "",
        member=(member.display_name or member.external_id) if member else "",
        name=row.payload.get("name", ""),
    )
    title = Msg(f"task.prefix.{kind.value}", title=inner, platform=platform_label(row.platform))
    detail: dict[str, Any] = {
        "action": row.action,
        "platform": row.platform,
        "connection_id": row.connection_id,
        # English text for readers of the raw detail and rows from before; the message is what
        # the console and the API show, in the reader's language (tasks.titles.task_reason).
        "reason": str(reason),
        "reason_msg": to_json(reason) if isinstance(reason, Msg) else None,
        "payload": {k: v for k, v in row.payload.items() if k not in RESERVED_PAYLOAD_KEYS},
        "idempotency_key": row.idempotency_key,
        "attempts": row.attempts,
    }
    if typed is not None:
        detail["group_external_id"] = getattr(typed, "group", None)
        detail["member_external_id"] = getattr(typed, "member", None)
    if missing:
        detail["missing_capabilities"] = sorted(missing)
    if row.external_ref:
        detail["external_ref"] = row.external_ref
    return open_task(
        session,
        org_id=row.org_id,
        kind=kind,
        title=title,
        detail=detail,
        group_id=row.group_id,
        assignee_id=row.payload.get("assignee_id"),
        outbound_action_id=row.id,
        due_at=_deadline(row),
    )

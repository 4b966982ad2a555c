"""Outbound actions: recorded once per idempotency key, routed by declared capabilities, performed
exactly once by a job, and handed to a person when the platform cannot do them.

State machine (``OutboundState``; every change is an ``OutboundActionTransition`` row)::

    (new) → planned ─┬→ queued ─┬→ sent ──────────────────→ confirmed
                     │          ├→ awaiting_confirmation ─→ confirmed | expired | failed
                     │          ├→ failed   (permanent error, or retries exhausted)
                     │          ├→ expired  (its deadline passed before it ran)
                     │          └→ delegated (connector missing or refused it at run time)
                     ├→ delegated ─→ confirmed (staff did it) | expired | failed
                     └→ expired

``request_action`` records and routes in the caller's transaction (a ``connectors.perform`` job is
enqueued with the row, so neither exists without the other); the job handler
(``qunyun.connectors.tasks``) calls ``perform_queued``, which talks to the platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qunyun.connectors.actions import RESERVED_PAYLOAD_KEYS, Action, action_from_payload, parse_instant
from qunyun.connectors.base import (
    ActionKind,
    ActionResult,
    Capability,
    ConnectorUnavailable,
    PlatformProfile,
    ResultStatus,
    TransientError,
    UnsupportedAction,
    capabilities_of,
    get_connector,
    get_profile,
    missing_capabilities,
    registered_connector,
)
from qunyun.errors import Conflict, InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import Group, Member, OutboundAction, OutboundActionTransition, OutboundState, Staff, StaffTask
from qunyun.timeutil import utcnow
from qunyun.worker.queue import enqueue

PERFORM_JOB = "connectors.perform"
EXPIRE_JOB = "connectors.expire_overdue"
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600

S = OutboundState
ALLOWED_TRANSITIONS: Mapping[OutboundState, frozenset[OutboundState]] = {
    S.PLANNED: frozenset({S.QUEUED, S.DELEGATED, S.EXPIRED}),
    S.QUEUED: frozenset({S.SENT, S.AWAITING_CONFIRMATION, S.FAILED, S.EXPIRED, S.DELEGATED}),
    S.AWAITING_CONFIRMATION: frozenset({S.CONFIRMED, S.EXPIRED, S.FAILED}),
    S.SENT: frozenset({S.CONFIRMED}),
    S.DELEGATED: frozenset({S.CONFIRMED, S.EXPIRED, S.FAILED}),
    S.CONFIRMED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}
CONFIRMABLE = frozenset({S.AWAITING_CONFIRMATION, S.DELEGATED, S.SENT})
# Staff task kinds this module creates.
TASK_PLATFORM_ACTION = "platform_action"  # do by hand what the platform cannot do by API
TASK_CONFIRM_SEND = "confirm_send"  # press send on a send the platform holds

_TASK_TITLES: Mapping[ActionKind, str] = {
    ActionKind.SEND_GROUP_MESSAGE: "Post in {group}",
    ActionKind.SEND_WELCOME: "Welcome {member} in {group}",
    ActionKind.SET_WELCOME_MESSAGE: "Set the welcome message of {group}",
    ActionKind.DELETE_MESSAGE: "Delete a message in {group}",
    ActionKind.MUTE: "Mute {member} in {group}",
    ActionKind.UNMUTE: "Unmute {member} in {group}",
    ActionKind.KICK: "Remove {member} from {group}",
    ActionKind.CREATE_GROUP: "Create the group {name}",
    ActionKind.CREATE_INVITE_LINK: "Create an invite link for {group}",
    ActionKind.REVOKE_INVITE_LINK: "Revoke an invite link of {group}",
    ActionKind.SET_TAGS: "Tag {member}",
    ActionKind.SYNC_INTERCEPT_RULES: "Update the intercept rule {name}",
}


def transition(session: Session, action: OutboundAction, to_state: OutboundState, detail: str = "") -> None:
    """Move ``action`` to ``to_state`` and append the history row; ``Conflict`` if not allowed."""
    current = OutboundState(action.state)
    if to_state not in ALLOWED_TRANSITIONS[current]:
        raise Conflict(
            Msg("err.outbound.bad_transition", id=action.id, current=current.value, to=to_state.value), field="state"
        )
    action.state = to_state.value
    _record(session, action, current, to_state, detail)


def _record(
    session: Session,
    action: OutboundAction,
    from_state: OutboundState | None,
    to_state: OutboundState,
    detail: str,
) -> None:
    now = utcnow()
    action.updated_at = now
    session.add(
        OutboundActionTransition(
            action_id=action.id,
            from_state=from_state.value if from_state is not None else None,
            to_state=to_state.value,
            at=now,
            detail=detail[:2000],
        )
    )
    session.flush()


def request_action(
    session: Session,
    org_id: int,
    platform: str,
    action: ActionKind | str,
    *,
    group_id: int | None = None,
    member_id: int | None = None,
    payload: Mapping[str, Any],
    idempotency_key: str,
    assignee_id: int | None = None,
    run_at: datetime | None = None,
) -> OutboundAction:
    """Record an outbound action once per ``idempotency_key`` and route it: queued with a
    ``connectors.perform`` job, or delegated to a staff task (``assignee_id``, else the group's
    owner) when the platform lacks a capability it needs. The same key returns the same row.

    ``payload`` is the action's fields (see ``qunyun.connectors.actions``) plus an optional
    ``deadline`` (ISO 8601): not performed after it, the action expires. ``run_at`` delays it.
    """
    if not idempotency_key or len(idempotency_key) > 200:
        raise InvalidInput(Msg("err.outbound.key_length", limit=200), field="idempotency_key")
    try:
        kind = ActionKind(action)
    except ValueError as exc:
        raise InvalidInput(Msg("err.outbound.unknown_action", action=repr(action)), field="action") from exc
    existing = _by_key(session, org_id, idempotency_key)
    if existing is not None:
        return _same_request(existing, org_id, platform, kind, group_id, member_id)
    if "assignee_id" in payload:
        raise InvalidInput(Msg("err.outbound.assignee_in_payload"), field="payload.assignee_id")
    capabilities = capabilities_of(platform)  # InvalidInput for an unknown platform
    group = _load_group(session, org_id, platform, group_id)
    member = _load_member(session, org_id, platform, member_id)
    if (
        assignee_id is not None
        and session.scalar(select(Staff.id).where(Staff.id == assignee_id, Staff.org_id == org_id)) is None
    ):
        raise InvalidInput(Msg("err.group.no_staff", id=assignee_id), field="assignee_id")
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
    if assignee_id is not None:
        stored["assignee_id"] = assignee_id

    now = utcnow()
    row = OutboundAction(
        org_id=org_id,
        platform=platform,
        action=kind.value,
        group_id=group_id,
        member_id=member_id,
        payload=stored,
        idempotency_key=idempotency_key,
        state=S.PLANNED.value,
        attempts=0,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # A concurrent request with the same key committed first: that one is the action.
        existing = _by_key(session, org_id, idempotency_key)
        if existing is None:
            raise
        return _same_request(existing, org_id, platform, kind, group_id, member_id)
    _record(session, row, None, S.PLANNED, "requested")

    if deadline is not None and deadline <= _platform_now(platform):
        transition(session, row, S.EXPIRED, f"deadline {deadline.isoformat()} passed before it was queued")
        return row
    missing = missing_capabilities(typed, capabilities)
    if missing:
        _delegate(session, row, typed, _missing_reason(platform, missing), missing=missing)
        return row
    transition(session, row, S.QUEUED)
    enqueue(
        session,
        PERFORM_JOB,
        {"action_id": row.id},
        org_id=org_id,
        run_at=run_at,
        key=f"{PERFORM_JOB}:{row.id}",
    )
    return row


def perform_queued(session: Session, action_id: int) -> OutboundAction | None:
    """Perform a queued action through its connector and record the outcome (the job's body).

    Anything not ``queued`` is left alone, so running the job twice performs the action once;
    the row is locked while it runs, and the connector gets the idempotency key in case an
    earlier run performed it but did not commit.
    """
    row = session.scalar(select(OutboundAction).where(OutboundAction.id == action_id).with_for_update())
    if row is None or row.state != S.QUEUED:
        return row
    try:
        connector = get_connector(row.platform)
    except ConnectorUnavailable as exc:
        _delegate(session, row, None, exc.message)
        return row
    deadline = _deadline(row)
    if deadline is not None and deadline <= connector.now():
        transition(session, row, S.EXPIRED, f"deadline {deadline.isoformat()} passed before it was performed")
        return row
    try:
        typed = _typed_action(session, row)
    except InvalidInput as exc:
        row.last_error = exc.message
        transition(session, row, S.FAILED, exc.message)
        return row
    missing = missing_capabilities(typed, connector.capabilities)
    if missing:
        _delegate(session, row, typed, _missing_reason(row.platform, missing), missing=missing)
        return row

    row.attempts += 1
    try:
        result = connector.perform(typed, row.idempotency_key)
    except UnsupportedAction as exc:
        _delegate(session, row, typed, str(exc))
        return row
    except TransientError as exc:
        _retry_or_fail(session, row, str(exc) or type(exc).__name__)
        return row
    _apply_result(session, row, typed, result)
    return row


def confirm(session: Session, action_id: int, *, detail: str = "") -> OutboundAction:
    """Record that a person completed the action (pressed send on the platform, or did the
    delegated task): → confirmed, and its open staff tasks are done. Idempotent."""
    row = session.scalar(select(OutboundAction).where(OutboundAction.id == action_id).with_for_update())
    if row is None:
        raise NotFound(Msg("err.outbound.not_found", id=action_id), field="action_id")
    if row.state == S.CONFIRMED:
        return row
    if row.state not in CONFIRMABLE:
        raise Conflict(
            Msg("err.outbound.not_confirmable", id=action_id, state=row.state),
            field="state",
        )
    transition(session, row, S.CONFIRMED, detail or "confirmed")
    _close_tasks(session, row, "done")
    return row


def expire_overdue(session: Session, *, now: datetime | None = None, org_id: int | None = None) -> list[int]:
    """Expire actions waiting on a person (awaiting_confirmation, delegated) whose deadline has
    passed, cancelling their open staff tasks. Returns the expired action ids."""
    now = now or utcnow()
    query = select(OutboundAction).where(OutboundAction.state.in_([S.AWAITING_CONFIRMATION, S.DELEGATED]))
    if org_id is not None:
        query = query.where(OutboundAction.org_id == org_id)
    expired = []
    for row in session.scalars(query.order_by(OutboundAction.id).with_for_update()):
        deadline = _deadline(row)
        if deadline is not None and deadline <= now:
            transition(session, row, S.EXPIRED, f"deadline {deadline.isoformat()} passed while waiting")
            _close_tasks(session, row, "cancelled")
            expired.append(row.id)
    return expired


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


def _by_key(session: Session, org_id: int, key: str) -> OutboundAction | None:
    return session.scalar(
        select(OutboundAction).where(OutboundAction.org_id == org_id, OutboundAction.idempotency_key == key)
    )


def _same_request(
    existing: OutboundAction,
    org_id: int,
    platform: str,
    kind: ActionKind,
    group_id: int | None,
    member_id: int | None,
) -> OutboundAction:
    asked = (org_id, platform, kind.value, group_id, member_id)
    if (existing.org_id, existing.platform, existing.action, existing.group_id, existing.member_id) != asked:
        raise Conflict(
            Msg("err.outbound.key_reused", idempotency_key=existing.idempotency_key),
            field="idempotency_key",
        )
    return existing


def _load_group(session: Session, org_id: int, platform: str, group_id: int | None) -> Group | None:
    if group_id is None:
        return None
    group = session.get(Group, group_id)
    if group is None or group.org_id != org_id:
        raise InvalidInput(Msg("err.outbound.no_group", id=group_id), field="group_id")
    if group.platform != platform:
        raise InvalidInput(
            Msg("err.outbound.group_platform", id=group_id, actual=group.platform, platform=platform), field="group_id"
        )
    return group


def _load_member(session: Session, org_id: int, platform: str, member_id: int | None) -> Member | None:
    if member_id is None:
        return None
    member = session.get(Member, member_id)
    if member is None or member.org_id != org_id:
        raise InvalidInput(Msg("err.outbound.no_member", id=member_id), field="member_id")
    if member.platform != platform:
        raise InvalidInput(
            Msg("err.outbound.member_platform", id=member_id, actual=member.platform, platform=platform),
            field="member_id",
        )
    return member


def _typed_action(session: Session, row: OutboundAction) -> Action:
    group = _load_group(session, row.org_id, row.platform, row.group_id)
    member = _load_member(session, row.org_id, row.platform, row.member_id)
    return action_from_payload(
        row.action,
        {k: v for k, v in row.payload.items() if k not in RESERVED_PAYLOAD_KEYS},
        group=group.external_id if group else None,
        member=member.external_id if member else None,
    )


def _deadline(row: OutboundAction) -> datetime | None:
    value = row.payload.get("deadline")
    return parse_instant(value, "payload.deadline") if value else None


def _platform_now(platform: str) -> datetime:
    """The platform's time: the simulator runs on a virtual clock."""
    connector = registered_connector(platform)
    return connector.now() if connector is not None else utcnow()


def _profile_for(platform: str) -> PlatformProfile:
    connector = registered_connector(platform)
    return connector.profile if connector is not None else get_profile(platform)


def _missing_reason(platform: str, missing: frozenset[Capability]) -> str:
    profile = _profile_for(platform)
    notes = [profile.note(c) for c in sorted(missing) if profile.note(c)]
    reason = f"{profile.title} cannot do this by API (missing: {', '.join(sorted(missing))})"
    return reason + (". " + " ".join(notes) if notes else "")


def _retry_or_fail(session: Session, row: OutboundAction, error: str) -> None:
    row.last_error = error
    row.updated_at = utcnow()
    if row.attempts >= MAX_ATTEMPTS:
        transition(session, row, S.FAILED, f"gave up after {row.attempts} attempts: {error}")
        return
    delay = min(RETRY_BASE_SECONDS * 2 ** (row.attempts - 1), RETRY_MAX_SECONDS)
    enqueue(
        session,
        PERFORM_JOB,
        {"action_id": row.id},
        org_id=row.org_id,
        run_at=utcnow() + timedelta(seconds=delay),
        key=f"{PERFORM_JOB}:{row.id}:retry{row.attempts}",
    )


def _apply_result(session: Session, row: OutboundAction, typed: Action, result: ActionResult) -> None:
    row.external_ref = result.external_ref
    if result.status == ResultStatus.DONE:
        row.last_error = None
        transition(session, row, S.SENT, result.detail)
    elif result.status == ResultStatus.AWAITING_CONFIRMATION:
        row.last_error = None
        transition(session, row, S.AWAITING_CONFIRMATION, result.detail)
        _create_task(session, row, typed, TASK_CONFIRM_SEND, result.detail or "the platform holds it for you")
    else:
        row.last_error = result.detail
        transition(session, row, S.FAILED, result.detail)


def _delegate(
    session: Session,
    row: OutboundAction,
    typed: Action | None,
    reason: str,
    *,
    missing: frozenset[Capability] = frozenset(),
) -> None:
    _create_task(session, row, typed, TASK_PLATFORM_ACTION, reason, missing=missing)
    transition(session, row, S.DELEGATED, reason)


def _create_task(
    session: Session,
    row: OutboundAction,
    typed: Action | None,
    kind: str,
    reason: str,
    *,
    missing: frozenset[Capability] = frozenset(),
) -> StaffTask:
    group = session.get(Group, row.group_id) if row.group_id is not None else None
    member = session.get(Member, row.member_id) if row.member_id is not None else None
    assignee = row.payload.get("assignee_id") or (group.owner_id if group else None)
    names = {
        "group": group.name if group else "",
        "member": (member.display_name or member.external_id) if member else "",
        "name": row.payload.get("name", ""),
    }
    title = _TASK_TITLES[ActionKind(row.action)].format(**names)
    if kind == TASK_CONFIRM_SEND:
        title = f"Confirm the send on {_profile_for(row.platform).title}: {title}"
    else:
        title = f"{title} (by hand on {_profile_for(row.platform).title})"
    detail: dict[str, Any] = {
        "action": row.action,
        "platform": row.platform,
        "reason": reason,
        "payload": {k: v for k, v in row.payload.items() if k not in RESERVED_PAYLOAD_KEYS},
    }
    if typed is not None:
        detail["group_external_id"] = getattr(typed, "group", None)
        detail["member_external_id"] = getattr(typed, "member", None)
    if missing:
        detail["missing_capabilities"] = sorted(missing)
    if row.external_ref:
        detail["external_ref"] = row.external_ref
    task = StaffTask(
        org_id=row.org_id,
        group_id=row.group_id,
        assignee_id=assignee,
        kind=kind,
        title=title[:300],
        detail=detail,
        status="open",
        outbound_action_id=row.id,
        due_at=_deadline(row),
        created_at=utcnow(),
    )
    session.add(task)
    session.flush()
    return task


def _close_tasks(session: Session, row: OutboundAction, status: str) -> None:
    now = utcnow()
    for task in session.scalars(
        select(StaffTask).where(StaffTask.outbound_action_id == row.id, StaffTask.status == "open")
    ):
        task.status = status
        task.done_at = now
    session.flush()

"""Append audit records in the caller's transaction, so a change and its record commit together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.auth.address import client_address
from qunyun.errors import NotFound
from qunyun.locale import Msg
from qunyun.models import AuditLog
from qunyun.timeutil import utcnow


def client_ip(request: HTTPConnection | None) -> str | None:
    """The client's address: the peer, or what a proxy in QUNYUN_TRUSTED_PROXIES forwarded."""
    return client_address(request)


def entry(
    *,
    org_id: int,
    staff_id: int | None,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    request: HTTPConnection | None = None,
) -> dict[str, Any]:
    """The column values of one audit entry (see :func:`record`), for :func:`record_all`."""
    user_agent = request.headers.get("user-agent") if request is not None else None
    return {
        "org_id": org_id,
        "staff_id": staff_id,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "detail": detail or {},
        "ip": client_ip(request),
        "user_agent": user_agent[:300] if user_agent else None,
        "at": utcnow(),
    }


def record_all(session: Session, entries: Sequence[dict[str, Any]]) -> None:
    """Insert audit entries made by :func:`entry` in one statement."""
    if entries:
        session.execute(insert(AuditLog), list(entries))


def record(
    session: Session,
    *,
    org_id: int,
    staff_id: int | None,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    request: HTTPConnection | None = None,
) -> AuditLog:
    """Add one audit entry. ``detail`` must not hold secrets or message content: record field
    names and counts, not passwords, tokens or personal values."""
    values = entry(
        org_id=org_id,
        staff_id=staff_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
        request=request,
    )
    row = AuditLog(**values)
    session.add(row)
    session.flush()
    return row


def record_by(
    session: Session,
    scope: Any,
    *,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    detail: dict[str, Any] | None = None,
    request: HTTPConnection | None = None,
) -> AuditLog:
    """:func:`record` for what the staff member behind ``scope`` (org_id, staff_id) did; a scope
    with no staff member (the command line's, staff id 0) is recorded without one."""
    return record(
        session,
        org_id=scope.org_id,
        staff_id=scope.staff_id or None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail,
        request=request,
    )


def apply_changes(
    session: Session,
    scope: Any,
    target: Any,
    changes: dict[str, Any],
    *,
    action: str,
    target_type: str,
    request: HTTPConnection | None = None,
    personal: bool = False,
) -> list[str]:
    """Set ``changes`` on ``target`` and audit what actually changed; returns the changed fields.

    ``scope`` is the acting staff member's scope (org_id, staff_id). With ``personal`` the audit
    entry names the fields only, never their values (member data is personal data).
    """
    diff: dict[str, list[Any]] = {}
    for field, value in changes.items():
        old = getattr(target, field)
        if old != value:
            diff[field] = [old, value]
            setattr(target, field, value)
    session.flush()
    if diff:
        record_by(
            session,
            scope,
            action=action,
            target_type=target_type,
            target_id=target.id,
            detail={"fields": sorted(diff)} if personal else {"changes": diff},
            request=request,
        )
    return sorted(diff)


def list_entries(
    session: Session,
    org_id: int,
    *,
    staff_id: int | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> Sequence[AuditLog]:
    """The organisation's audit entries, newest first; ``before_id`` continues a previous page."""
    query = select(AuditLog).where(AuditLog.org_id == org_id)
    if staff_id is not None:
        query = query.where(AuditLog.staff_id == staff_id)
    if action is not None:
        query = query.where(AuditLog.action == action)
    if target_type is not None:
        query = query.where(AuditLog.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditLog.target_id == target_id)
    if since is not None:
        query = query.where(AuditLog.at >= since)
    if until is not None:
        query = query.where(AuditLog.at < until)
    if before_id is not None:
        query = query.where(AuditLog.id < before_id)
    return session.scalars(query.order_by(AuditLog.id.desc()).limit(limit)).all()


def get_entry(session: Session, org_id: int, entry_id: int) -> AuditLog:
    entry = session.scalar(select(AuditLog).where(AuditLog.id == entry_id, AuditLog.org_id == org_id))
    if entry is None:
        raise NotFound(Msg("err.audit.no_entry", id=entry_id), field="entry_id")
    return entry

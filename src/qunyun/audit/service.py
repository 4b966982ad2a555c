"""Append audit records in the caller's transaction, so a change and its record commit together."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.models import AuditLog
from qunyun.timeutil import utcnow


def client_ip(request: HTTPConnection | None) -> str | None:
    """The peer address. Forwarded headers are not trusted here: behind a proxy, run uvicorn with
    --proxy-headers and --forwarded-allow-ips so that this already is the client's address."""
    if request is None or request.client is None:
        return None
    return request.client.host[:64]


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
    user_agent = request.headers.get("user-agent") if request is not None else None
    entry = AuditLog(
        org_id=org_id,
        staff_id=staff_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail or {},
        ip=client_ip(request),
        user_agent=user_agent[:300] if user_agent else None,
        at=utcnow(),
    )
    session.add(entry)
    session.flush()
    return entry

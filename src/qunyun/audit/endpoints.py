"""REST routes for the audit log: /api/v1/audit (lead only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from qunyun.api.pagination import BigId, Cursor, CursorPage, Id, Limit
from qunyun.audit import service
from qunyun.audit.schemas import AuditOut
from qunyun.auth.deps import DbSession, LeadScope
from qunyun.errors import InvalidInput
from qunyun.locale import Msg

router = APIRouter(prefix="/audit", tags=["audit"])


def aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(Msg("api.needs_time_zone", field=field), field=field)
    return value


@router.get("", response_model=CursorPage[AuditOut], summary="Audit entries, newest first (lead only)")
def list_audit(
    db: DbSession,
    scope: LeadScope,
    staff: Annotated[Id | None, Query(description="Staff id of the actor")] = None,
    action: Annotated[str | None, Query(description="e.g. auth.login, group.update")] = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 with offset")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601 with offset (exclusive)")] = None,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[Limit, Query()] = 50,
) -> CursorPage[AuditOut]:
    rows = service.list_entries(
        db,
        scope.org_id,
        staff_id=staff,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=aware(since, "since"),
        until=aware(until, "until"),
        before_id=cursor,
        limit=limit,
    )
    items = [AuditOut.model_validate(r) for r in rows]
    return CursorPage[AuditOut](items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/{entry_id}", response_model=AuditOut, summary="One audit entry (lead only)")
def get_audit(
    entry_id: Annotated[BigId, Path(description="Audit entry id")], db: DbSession, scope: LeadScope
) -> AuditOut:
    return AuditOut.model_validate(service.get_entry(db, scope.org_id, entry_id))

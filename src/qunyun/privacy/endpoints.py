"""REST routes for a member's personal-data requests (lead only):
``GET /api/v1/members/{id}/export`` and ``POST /api/v1/members/{id}/erase``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from qunyun.api.pagination import Id
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.privacy import service

router = APIRouter(prefix="/members", tags=["privacy"])

MemberId = Annotated[Id, Path(description="Internal member id")]


@router.get("/{member_id}/export", summary="Everything held about one member (lead only)")
def export_member(member_id: MemberId, db: DbSession, scope: CurrentScope) -> dict[str, Any]:
    return service.export_member(db, scope, member_id)


@router.post("/{member_id}/erase", summary="Erase one member's personal data (lead only; cannot be undone)")
def erase_member(member_id: MemberId, db: DbSession, scope: CurrentScope, request: Request) -> dict[str, Any]:
    counts = service.erase_member(db, scope, member_id, request=request)
    return {"member": member_id, "erased": counts}

"""REST routes for join requests: /api/v1/join-requests (list; approve or decline a pending one)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from qunyun.api.pagination import MAX_LIMIT, Id, Offset
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.livecodes import join_requests
from qunyun.models.telegram_state import JoinRequest

router = APIRouter(prefix="/join-requests", tags=["join requests"])

RequestId = Annotated[Id, Path(description="Join request id")]


class JoinRequestOut(BaseModel):
    id: int
    connection_id: int
    group_id: int | None
    chat: str
    user_id: str
    member_id: int | None
    name: str
    username: str
    bio: str
    invite_link: str | None
    live_code_id: int | None
    channel_id: int | None
    requested_at: datetime
    status: str
    decided_by: str | None
    rule: str | None
    decided_by_id: int | None
    decided_at: datetime | None
    action_id: int | None
    task_id: int | None


def _out(row: JoinRequest) -> JoinRequestOut:
    return JoinRequestOut.model_validate(row, from_attributes=True)


@router.get("", response_model=list[JoinRequestOut], summary="Join requests of your groups, newest first")
def list_join_requests(
    db: DbSession,
    scope: CurrentScope,
    status: Annotated[Literal["pending", "approved", "declined", "all"], Query()] = "pending",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[Offset, Query(description="Rows to skip")] = 0,
) -> list[JoinRequestOut]:
    rows = join_requests.list_requests(
        db, scope, status=None if status == "all" else status, limit=limit, offset=offset
    )
    return [_out(r) for r in rows]


@router.post("/{request_id}/approve", response_model=JoinRequestOut, summary="Approve a pending join request")
def approve_join_request(request_id: RequestId, db: DbSession, scope: CurrentScope, request: Request) -> JoinRequestOut:
    return _out(join_requests.decide(db, scope, request_id, approve=True, request=request))


@router.post("/{request_id}/decline", response_model=JoinRequestOut, summary="Decline a pending join request")
def decline_join_request(request_id: RequestId, db: DbSession, scope: CurrentScope, request: Request) -> JoinRequestOut:
    return _out(join_requests.decide(db, scope, request_id, approve=False, request=request))

"""REST routes for connections: /api/v1/connections (leads only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from qunyun.api.pagination import Id
from qunyun.auth.deps import DbSession, LeadScope
from qunyun.connections import service
from qunyun.connections.schemas import ConnectionCreate, ConnectionOut, ConnectionUpdate

router = APIRouter(prefix="/connections", tags=["connections"])

ConnectionId = Annotated[Id, Path(description="Connection id")]


@router.get("", response_model=list[ConnectionOut], summary="The organisation's connections (lead only)")
def list_connections(db: DbSession, scope: LeadScope) -> list[ConnectionOut]:
    return [ConnectionOut.of(row) for row in service.list_connections(db, scope)]


@router.post(
    "",
    response_model=ConnectionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a connection (lead only); stored even when the platform cannot be reached",
)
def add_connection(body: ConnectionCreate, db: DbSession, scope: LeadScope, request: Request) -> ConnectionOut:
    row = service.add_connection(db, scope, body.platform, body.name, body.settings, body.secrets, request=request)
    return ConnectionOut.of(row)


@router.patch(
    "/{connection_id}",
    response_model=ConnectionOut,
    summary="Change a connection's name, settings or secrets (lead only); it is tested again",
)
def update_connection(
    connection_id: ConnectionId, body: ConnectionUpdate, db: DbSession, scope: LeadScope, request: Request
) -> ConnectionOut:
    row = service.update_connection(
        db, scope, connection_id, name=body.name, settings=body.settings, secrets=body.secrets, request=request
    )
    return ConnectionOut.of(row)


@router.post("/{connection_id}/test", response_model=ConnectionOut, summary="Try a connection again (lead only)")
def test_connection(connection_id: ConnectionId, db: DbSession, scope: LeadScope, request: Request) -> ConnectionOut:
    return ConnectionOut.of(service.test_connection(db, scope, connection_id, request=request))


@router.post("/{connection_id}/disable", response_model=ConnectionOut, summary="Turn a connection off (lead only)")
def disable_connection(connection_id: ConnectionId, db: DbSession, scope: LeadScope, request: Request) -> ConnectionOut:
    return ConnectionOut.of(service.disable_connection(db, scope, connection_id, request=request))


@router.post("/{connection_id}/enable", response_model=ConnectionOut, summary="Turn a connection on (lead only)")
def enable_connection(connection_id: ConnectionId, db: DbSession, scope: LeadScope, request: Request) -> ConnectionOut:
    return ConnectionOut.of(service.enable_connection(db, scope, connection_id, request=request))

"""Integration credentials: an account of role ``integration`` and its API token.

A connector, a script or another system that feeds qunyun platform events uses an integration
token, not a person's. A lead creates one (``POST /api/v1/integrations`` or
``qunyun org add-integration SLUG NAME``); the secret is shown once. The account has no password
(it cannot log in), no console, and its token reaches ``POST /api/v1/events`` (events for its
organisation) and ``DELETE /api/v1/auth/tokens/current`` only. Disabling it
(``DELETE /api/v1/integrations/{id}``) revokes its tokens.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.api.pagination import Id
from qunyun.audit.service import record_by
from qunyun.auth.deps import DbSession, LeadScope
from qunyun.auth.tokens import IssuedToken, TokenKind, issue_token, revoke_all_for_staff
from qunyun.errors import InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import Organisation, Role, Staff
from qunyun.models.staff import NO_PASSWORD
from qunyun.timeutil import utcnow


def create_integration(
    session: Session, org: Organisation, name: str, *, now: datetime, expires_in_days: int | None = None
) -> IssuedToken:
    """A new integration account of ``org`` named ``name`` and its API token (secret shown once)."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput(Msg("edge.integration_name"), field="name")
    staff = Staff(
        org_id=org.id,
        # Usernames are unique across the installation and never typed: make one up.
        username=f"integration-{org.slug}-{secrets.token_hex(4)}",
        display_name=name,
        password_hash=NO_PASSWORD,
        role=Role.INTEGRATION.value,
        language="en",
        is_active=True,
        created_at=now,
    )
    session.add(staff)
    session.flush()
    lifetime = timedelta(days=expires_in_days) if expires_in_days is not None else None
    return issue_token(session, staff, TokenKind.API, now=now, name=name, lifetime=lifetime)


def disable_integration(session: Session, org_id: int, staff_id: int, *, now: datetime) -> Staff:
    """Disable an integration account of ``org_id`` and revoke its tokens."""
    staff = session.scalar(
        select(Staff).where(Staff.id == staff_id, Staff.org_id == org_id, Staff.role == Role.INTEGRATION.value)
    )
    if staff is None:
        raise NotFound(Msg("edge.no_integration", id=staff_id), field="integration_id")
    staff.is_active = False
    revoke_all_for_staff(session, staff.id, now=now)
    session.flush()
    return staff


router = APIRouter(prefix="/integrations", tags=["integrations"])


class IntegrationIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What feeds the events, e.g. 企业微信同步")
    expires_in_days: int | None = Field(
        default=None, ge=1, le=3650, description="Token lifetime; QUNYUN_API_TOKEN_MAX_AGE_DAYS by default"
    )


class IntegrationOut(BaseModel):
    id: int = Field(description="The integration account's staff id")
    name: str
    token: str = Field(description="The API token (qya_…): shown this once, keep it secret")
    expires_at: datetime


@router.post(
    "",
    response_model=IntegrationOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create an integration and its API token for posting events (lead)",
)
def post_integration(body: IntegrationIn, db: DbSession, scope: LeadScope, request: Request) -> IntegrationOut:
    org = db.get(Organisation, scope.org_id)
    assert org is not None
    issued = create_integration(db, org, body.name, now=utcnow(), expires_in_days=body.expires_in_days)
    record_by(
        db,
        scope,
        action="integration.create",
        target_type="staff",
        target_id=issued.token.staff_id,
        detail={"name": body.name.strip()},
        request=request,
    )
    return IntegrationOut(
        id=issued.token.staff_id, name=body.name.strip(), token=issued.secret, expires_at=issued.token.expires_at
    )


@router.delete(
    "/{integration_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disable an integration and revoke its tokens (lead)",
)
def delete_integration(
    integration_id: Annotated[Id, Path()], db: DbSession, scope: LeadScope, request: Request
) -> None:
    disable_integration(db, scope.org_id, integration_id, now=utcnow())
    record_by(db, scope, action="integration.disable", target_type="staff", target_id=integration_id, request=request)

"""REST routes for API tokens and the caller's identity: /api/v1/auth/tokens, /api/v1/me."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from qunyun.auth import service
from qunyun.auth.deps import CurrentPrincipal, DbSession
from qunyun.auth.throttle import LoginThrottle
from qunyun.auth.tokens import TokenKind
from qunyun.config import get_settings
from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.timeutil import utcnow

router = APIRouter(tags=["auth"])


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=100, description="A label to recognise the token by")
    expires_in_days: int | None = Field(
        default=None, ge=1, description="Defaults to, and may not exceed, QUNYUN_API_TOKEN_MAX_AGE_DAYS"
    )


class TokenOut(BaseModel):
    id: int
    token: str = Field(description="Shown once; only its hash is stored")
    token_type: str = "bearer"
    expires_at: datetime


class OrganisationOut(BaseModel):
    id: int
    slug: str
    name: str
    time_zone: str


class MeOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    language: str
    organisation: OrganisationOut
    can_write: bool
    whole_organisation: bool = Field(description="true for lead and analyst: every group is visible")
    group_ids: list[int] | None = Field(description="Visible groups (null when the whole organisation is)")


def login_throttle(request: Request) -> LoginThrottle:
    throttle = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        throttle = request.app.state.login_throttle = LoginThrottle()
    return throttle


@router.post(
    "/auth/tokens",
    response_model=TokenOut,
    status_code=status.HTTP_201_CREATED,
    summary="Exchange username and password for an API bearer token",
    responses={401: {"description": "Wrong username or password"}, 429: {"description": "Too many failures"}},
)
def create_token(body: TokenRequest, request: Request) -> TokenOut:
    # No DbSession here: the login runs its own short transactions, so that the password check
    # never holds the database's write lock (see service.login).
    max_days = get_settings().api_token_max_age_days
    if body.expires_in_days is not None and body.expires_in_days > max_days:
        raise InvalidInput(Msg("login.expires_in_days_max", days=max_days), field="expires_in_days")
    issued = service.login(
        username=body.username,
        password=body.password,
        kind=TokenKind.API,
        throttle=login_throttle(request),
        now=utcnow(),
        request=request,
        token_name=body.name,
        lifetime=timedelta(days=body.expires_in_days) if body.expires_in_days else None,
    )
    return TokenOut(id=issued.token.id, token=issued.secret, expires_at=issued.token.expires_at)


@router.delete(
    "/auth/tokens/current",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke the token (or console session) this request is authenticated with",
)
def revoke_current(principal: CurrentPrincipal, db: DbSession, request: Request) -> Response:
    service.logout(db, staff=principal.staff, token=principal.token, now=utcnow(), request=request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=MeOut, summary="Who you are and what you may see")
def me(principal: CurrentPrincipal, db: DbSession) -> MeOut:
    staff, scope = principal.staff, principal.scope
    org, group_ids = service.whoami(db, scope)
    return MeOut(
        id=staff.id,
        username=staff.username,
        display_name=staff.display_name,
        role=staff.role,
        language=staff.language,
        organisation=OrganisationOut(id=org.id, slug=org.slug, name=org.name, time_zone=org.time_zone),
        can_write=scope.can_write,
        whole_organisation=scope.whole_org,
        group_ids=group_ids,
    )

"""FastAPI dependencies: the request's unit of work, the authenticated staff member, the scope."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import BackgroundTasks, Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from qunyun.auth.csrf import CSRF_HEADER, check_csrf, session_csrf_token
from qunyun.auth.scope import Scope, require_lead
from qunyun.auth.tokens import Authenticated, TokenKind, needs_touch, touch_token, verify_token
from qunyun.db.session import get_sessionmaker, unit_of_work
from qunyun.errors import Forbidden, Unauthenticated
from qunyun.locale import Msg
from qunyun.models import AuthToken, Role, Staff
from qunyun.timeutil import utcnow

log = logging.getLogger(__name__)

SESSION_COOKIE = "qunyun_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What an integration token may do: post events, and revoke itself.
INTEGRATION_ROUTES = frozenset({("POST", "/api/v1/events"), ("DELETE", "/api/v1/auth/tokens/current")})


def get_db(request: Request) -> Iterator[Session]:
    """One unit of work per request: committed after the endpoint returns and before the response
    is sent (scope="function" below), rolled back if anything raised."""
    session = get_sessionmaker()()
    if request.method not in SAFE_METHODS and session.get_bind().dialect.name == "sqlite":
        # Writers take SQLite's write lock at BEGIN so two writers never deadlock upgrading locks.
        session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_db, scope="function")]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API token from POST /api/v1/auth/tokens: `Authorization: Bearer qya_…`",
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="The console session cookie; unsafe methods also need the X-CSRF-Token header.",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling, through which credential, and what they may see."""

    staff: Staff
    token: AuthToken
    via: Literal["bearer", "cookie"]
    scope: Scope


def _touch_after_response(token_id: int, now: datetime) -> None:
    try:
        with unit_of_work() as own:
            touch_token(own, token_id, now)
    except SQLAlchemyError:
        # Bookkeeping only: a busy database must not turn a served read into an error.
        log.debug("could not record token use", exc_info=True)


def _record_use(request: Request, db: Session, background: BackgroundTasks | None, auth: Authenticated) -> None:
    now = utcnow()
    if not needs_touch(auth.token, now):
        return
    if request.method in SAFE_METHODS:
        # A read request must not become a writer (on SQLite a read transaction that later writes
        # can fail on a stale snapshot, and waiting for the write lock would delay the answer),
        # so the bookkeeping runs after the response, in its own short transaction.
        if background is not None:
            background.add_task(_touch_after_response, auth.token.id, now)
    else:
        touch_token(db, auth.token.id, now)


def _principal(auth: Authenticated, via: Literal["bearer", "cookie"]) -> Principal:
    staff = auth.staff
    return Principal(
        staff=staff,
        token=auth.token,
        via=via,
        scope=Scope(staff_id=staff.id, org_id=staff.org_id, role=Role(staff.role)),
    )


def current_principal(
    request: Request,
    db: DbSession,
    background: BackgroundTasks,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    """The staff member behind the bearer token or, failing that, the session cookie.

    A present but invalid Authorization header is 401 even when a cookie is present too: the
    caller chose a credential and it is wrong. Cookie-authenticated writes need the CSRF header.
    """
    return authenticate(request, db, background, bearer.credentials if bearer is not None else None, cookie)


def authenticate(
    request: Request, db: Session, background: BackgroundTasks | None, bearer: str | None, cookie: str | None
) -> Principal:
    """:func:`current_principal` for a route that runs its own unit of work (``db``) instead of
    the dependencies: ``bearer`` is the token of a well-formed ``Authorization: Bearer`` header
    (None otherwise), ``cookie`` the session cookie. ``background`` may be None for unsafe methods."""
    now = utcnow()
    if request.headers.get("authorization"):
        if bearer is None:
            raise Unauthenticated(Msg("edge.use_bearer"))
        auth = verify_token(db, bearer, kinds={TokenKind.API}, now=now)
        via: Literal["bearer", "cookie"] = "bearer"
    elif cookie:
        auth = verify_token(db, cookie, kinds={TokenKind.SESSION}, now=now)
        via = "cookie"
        if request.method not in SAFE_METHODS:
            check_csrf(session_csrf_token(auth.token.id), request.headers.get(CSRF_HEADER))
    else:
        raise Unauthenticated(Msg("edge.auth_required"))
    if auth.staff.role == Role.INTEGRATION:
        if via != "bearer":
            raise Unauthenticated(Msg("edge.integration_no_console"))
        if (request.method, request.url.path.rstrip("/")) not in INTEGRATION_ROUTES:
            raise Forbidden(Msg("edge.integration_only_events"))
    _record_use(request, db, background, auth)
    return _principal(auth, via)


def bearer_token(request: Request) -> str | None:
    """The token of the request's ``Authorization: Bearer …`` header, as ``bearer_scheme`` reads it."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def current_scope(principal: CurrentPrincipal) -> Scope:
    return principal.scope


CurrentScope = Annotated[Scope, Depends(current_scope)]


def lead_scope(scope: CurrentScope) -> Scope:
    """The scope of a lead; Forbidden for every other role."""
    require_lead(scope)
    return scope


LeadScope = Annotated[Scope, Depends(lead_scope)]


def console_principal(request: Request, db: DbSession, background: BackgroundTasks) -> Principal | None:
    """The console's logged-in staff member, or None (the page then redirects to /login)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        auth = verify_token(db, cookie, kinds={TokenKind.SESSION}, now=utcnow())
    except Unauthenticated:
        return None
    if auth.staff.role == Role.INTEGRATION:
        return None  # integrations have no console
    _record_use(request, db, background, auth)
    return _principal(auth, "cookie")


ConsolePrincipal = Annotated[Principal | None, Depends(console_principal)]

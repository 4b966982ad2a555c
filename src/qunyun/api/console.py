"""The console's login and logout pages (the other pages live in ``qunyun.console.pages``).

Every unsafe console form carries a CSRF token: the login form a double-submit pair (nonce
cookie + HMAC of it), forms of a logged-in page the HMAC of the session's token id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from qunyun.auth import service
from qunyun.auth.csrf import (
    LOGIN_NONCE_COOKIE,
    check_csrf,
    login_csrf_token,
    new_login_nonce,
    session_csrf_token,
)
from qunyun.auth.deps import SESSION_COOKIE, ConsolePrincipal, DbSession
from qunyun.auth.endpoints import login_throttle
from qunyun.auth.throttle import TooManyAttempts
from qunyun.auth.tokens import TokenKind
from qunyun.config import get_settings
from qunyun.console.web import page_language, render, render_error, secure_cookies
from qunyun.errors import Forbidden, QunyunError, Unauthenticated
from qunyun.locale import Translator
from qunyun.timeutil import utcnow

router = APIRouter(include_in_schema=False)


def console_error_page(request: Request, error: QunyunError, headers: dict[str, str]) -> Response:
    # The page keeps the navigation and the sign-out of a logged-in user (console.web).
    return render_error(request, error, headers)


def _login_page(request: Request, *, error: str = "", username: str = "", status_code: int = 200) -> Response:
    """The login form, with a fresh nonce cookie unless the browser already holds one."""
    nonce = request.cookies.get(LOGIN_NONCE_COOKIE) or new_login_nonce()
    response = render(
        request,
        "login.html",
        {"csrf_token": login_csrf_token(nonce), "error": error, "username": username},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_NONCE_COOKIE,
        nonce,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(),
        path="/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, principal: ConsolePrincipal) -> Response:
    if principal is not None:
        return RedirectResponse("/", status_code=303)
    return _login_page(request)


@router.post("/login")
def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    # No DbSession: the login runs its own short transactions so that the password check never
    # holds the database's write lock (see auth.service.login).
    t = Translator(page_language(request))
    nonce = request.cookies.get(LOGIN_NONCE_COOKIE)
    try:
        check_csrf(login_csrf_token(nonce) if nonce else None, csrf_token)
    except Forbidden:
        return _login_page(request, error=t("csrf_failed"), username=username, status_code=403)
    try:
        result = service.login(
            username=username,
            password=password,
            kind=TokenKind.SESSION,
            throttle=login_throttle(request),
            now=utcnow(),
            request=request,
        )
    except TooManyAttempts as exc:
        page = _login_page(request, error=exc.localized(t.lang), username=username, status_code=exc.status_code)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except Unauthenticated as exc:
        return _login_page(request, error=exc.localized(t.lang), username=username, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        result.secret,
        max_age=get_settings().session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(),
        path="/",
    )
    response.delete_cookie(LOGIN_NONCE_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(
    request: Request,
    db: DbSession,
    principal: ConsolePrincipal,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if principal is None:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    check_csrf(session_csrf_token(principal.token.id), csrf_token)
    service.logout(db, staff=principal.staff, token=principal.token, now=utcnow(), request=request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/logout")
def logout_page() -> Response:
    # Logging out changes state, so it is a POST form on the start page; a GET just goes there.
    return RedirectResponse("/", status_code=303)

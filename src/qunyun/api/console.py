"""The console's login, logout and start pages (server-rendered; the full console comes later).

Every unsafe console form carries a CSRF token: the login form a double-submit pair (nonce
cookie + HMAC of it), forms of a logged-in page the HMAC of the session's token id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

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
from qunyun.auth.scope import group_visible
from qunyun.auth.throttle import TooManyAttempts
from qunyun.auth.tokens import TokenKind
from qunyun.config import get_settings
from qunyun.errors import Forbidden
from qunyun.locale import SUPPORTED, Translator, pick_language
from qunyun.models import Group, Organisation, Staff
from qunyun.timeutil import utcnow

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
STATIC_DIR = CONSOLE_DIR / "static"
templates = Jinja2Templates(directory=CONSOLE_DIR / "templates")

LANG_COOKIE = "lang"
HOME_GROUP_LIMIT = 200

router = APIRouter(include_in_schema=False)


def _secure_cookies() -> bool:
    return get_settings().env == "production"


def page_language(request: Request, staff: Staff | None = None) -> str:
    """?lang= (an explicit switch) → lang cookie → the staff member's setting → the default."""
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get(LANG_COOKIE),
        staff.language if staff is not None else None,
        get_settings().default_language,
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    staff: Staff | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    lang = page_language(request, staff)
    response = templates.TemplateResponse(
        request, template, {"t": Translator(lang), **context}, status_code=status_code, headers=headers
    )
    # Pages show personal data and carry CSRF tokens: never cache them.
    response.headers["Cache-Control"] = "no-store"
    if request.query_params.get("lang") in SUPPORTED:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=_secure_cookies(), httponly=True
        )
    return response


def console_error_page(request: Request, status_code: int, message: str, headers: dict[str, str]) -> Response:
    t = Translator(page_language(request))
    key = f"status_{status_code}"
    status_text = t(key) if key != t(key) else t("error_title")
    return render(
        request,
        "error.html",
        {"status_code": status_code, "status_text": status_text, "message": message},
        status_code=status_code,
        headers=headers,
    )


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
        secure=_secure_cookies(),
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
    db: DbSession,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    t = Translator(page_language(request))
    nonce = request.cookies.get(LOGIN_NONCE_COOKIE)
    try:
        check_csrf(login_csrf_token(nonce) if nonce else None, csrf_token)
    except Forbidden:
        return _login_page(request, error=t("csrf_failed"), username=username, status_code=403)
    try:
        result = service.login(
            db,
            username=username,
            password=password,
            kind=TokenKind.SESSION,
            throttle=login_throttle(request),
            now=utcnow(),
            request=request,
        )
    except TooManyAttempts as exc:
        page = _login_page(
            request, error=t("too_many_attempts", seconds=exc.retry_after), username=username, status_code=429
        )
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    if isinstance(result, service.LoginFailed):
        # Not raised: the failure's audit record must commit with this request.
        return _login_page(request, error=t("login_failed"), username=username, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        result.secret,
        max_age=get_settings().session_max_age_seconds,
        httponly=True,
        samesite="lax",
        secure=_secure_cookies(),
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


@router.get("/")
def home(request: Request, db: DbSession, principal: ConsolePrincipal) -> Response:
    if principal is None:
        response = RedirectResponse("/login", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            # A forged, expired or revoked session: drop it so the browser stops sending it.
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    staff, scope = principal.staff, principal.scope
    organisation = db.scalar(select(Organisation).where(Organisation.id == staff.org_id))
    groups = db.scalars(
        select(Group).where(group_visible(scope)).order_by(Group.name, Group.id).limit(HOME_GROUP_LIMIT + 1)
    ).all()
    return render(
        request,
        "home.html",
        {
            "staff": staff,
            "organisation": organisation,
            "groups": groups[:HOME_GROUP_LIMIT],
            "more": len(groups) > HOME_GROUP_LIMIT,
            "whole_org": scope.whole_org,
            "can_write": scope.can_write,
            "csrf_token": session_csrf_token(principal.token.id),
        },
        staff=staff,
    )

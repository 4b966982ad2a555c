"""What every console page shares: the template environment, the language, the logged-in staff
member, formatting filters and the page frame (navigation, CSRF token for the logout form)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.auth.csrf import session_csrf_token
from qunyun.auth.deps import SESSION_COOKIE, ConsolePrincipal, DbSession, Principal
from qunyun.auth.scope import Scope, visible_group_ids
from qunyun.config import get_settings
from qunyun.locale import SUPPORTED, Translator, pick_language
from qunyun.models import Organisation, Staff

CONSOLE_DIR = Path(__file__).resolve().parent
STATIC_DIR = CONSOLE_DIR / "static"
templates = Jinja2Templates(directory=CONSOLE_DIR / "templates")

LANG_COOKIE = "lang"


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"{fen / 100:,.2f}"


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


templates.env.filters["yuan"] = _yuan
templates.env.filters["percent"] = _percent
templates.env.filters["number"] = _number
templates.env.filters["wrap_braces"] = lambda name: "{" + str(name) + "}"


def secure_cookies() -> bool:
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
            LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=secure_cookies(), httponly=True
        )
    return response


class LoginRequired(Exception):
    """A console page was asked for without a valid session: the handler redirects to /login."""

    def __init__(self, drop_cookie: bool) -> None:
        super().__init__("login required")
        self.drop_cookie = drop_cookie


def console_user(request: Request, principal: ConsolePrincipal) -> Principal:
    if principal is None:
        # A forged, expired or revoked session is dropped so the browser stops sending it.
        raise LoginRequired(drop_cookie=bool(request.cookies.get(SESSION_COOKIE)))
    return principal


async def login_redirect(request: Request, exc: Exception) -> Response:
    response = RedirectResponse("/login", status_code=303)
    if isinstance(exc, LoginRequired) and exc.drop_cookie:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


ConsoleUser = Annotated[Principal, Depends(console_user)]


@dataclass(frozen=True)
class Paging:
    """Page ``number`` (from 1) of ``pages``, ``size`` rows each."""

    number: int
    pages: int
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


@dataclass
class Page:
    """The request's console context: who is looking, in which organisation and time zone."""

    request: Request
    db: Session
    principal: Principal
    organisation: Organisation

    @property
    def staff(self) -> Staff:
        return self.principal.staff

    @property
    def scope(self) -> Scope:
        return self.principal.scope

    @property
    def t(self) -> Translator:
        return Translator(page_language(self.request, self.staff))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.organisation.time_zone)

    def today(self) -> date:
        return datetime.now(self.zone).date()

    def group_ids(self) -> list[int] | None:
        """The visible group ids for scoped staff; None for leads and analysts (everything)."""
        if self.scope.whole_org:
            return None
        return [int(i) for i in self.db.scalars(visible_group_ids(self.scope))]

    def local(self, when: datetime | None) -> str:
        if when is None:
            return "—"
        return when.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def paging(self, total: int, size: int) -> Paging:
        """The ?page= the request asks for (from 1) over ``total`` rows."""
        number = max(1, int_param(self.request.query_params.get("page")) or 1)
        return Paging(number=number, pages=max(1, -(-total // size)), size=size)

    def url(self, path: str, **params: Any) -> str:
        """``path`` with the current query string updated by ``params`` (None drops a key)."""
        query = {k: v for k, v in self.request.query_params.items() if k not in params and k != "lang"}
        query.update({k: v for k, v in params.items() if v is not None and v != ""})
        return f"{path}?{urlencode(query)}" if query else path

    def render(self, template: str, section: str, context: dict[str, Any], status_code: int = 200) -> Response:
        frame = {
            "page": self,
            "staff": self.staff,
            "organisation": self.organisation,
            "section": section,
            "whole_org": self.scope.whole_org,
            "can_write": self.scope.can_write,
            "is_lead": self.scope.is_lead,
            "csrf_token": session_csrf_token(self.principal.token.id),
        }
        return render(self.request, template, {**frame, **context}, staff=self.staff, status_code=status_code)


def console_page(request: Request, db: DbSession, principal: ConsoleUser) -> Page:
    organisation = db.scalar(select(Organisation).where(Organisation.id == principal.staff.org_id))
    assert organisation is not None  # staff rows cascade with their organisation
    return Page(request=request, db=db, principal=principal, organisation=organisation)


ConsolePage = Annotated[Page, Depends(console_page)]


def int_param(value: str | None) -> int | None:
    """A query-string id: blank or non-numeric means "no filter" (forms submit empty selects)."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value)

"""What every console page shares: the template environment, the language, the logged-in staff
member, formatting filters and the page frame (navigation, CSRF token for the logout form)."""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from qunyun.api.pagination import INT32_MAX, INT64_MAX
from qunyun.auth.csrf import check_csrf, session_csrf_token
from qunyun.auth.deps import SESSION_COOKIE, ConsolePrincipal, DbSession, Principal
from qunyun.auth.scope import Scope
from qunyun.auth.tokens import TokenKind, verify_token
from qunyun.config import get_settings
from qunyun.console.labels import platform_name
from qunyun.db.collation import by_pinyin
from qunyun.db.session import unit_of_work
from qunyun.errors import NotFound, QunyunError
from qunyun.locale import SUPPORTED, Msg, Translator, pick_language
from qunyun.models import Organisation, Role, Staff
from qunyun.tasks import service as task_service
from qunyun.timeutil import utcnow

CONSOLE_DIR = Path(__file__).resolve().parent
STATIC_DIR = CONSOLE_DIR / "static"
templates = Jinja2Templates(directory=CONSOLE_DIR / "templates")

LANG_COOKIE = "lang"
log = logging.getLogger(__name__)


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
templates.env.globals["platform_name"] = platform_name  # {{ platform_name(t, group.platform) }}


def secure_cookies() -> bool:
    return get_settings().env == "production"


def page_language(request: Request, staff: Staff | Viewer | None = None) -> str:
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
    staff: Staff | Viewer | None = None,
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
    # Kept for the error page, should the handler fail: it shows the navigation of this user.
    request.state.console_viewer = Viewer.of(principal.staff, principal.token.id)
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


@dataclass(frozen=True)
class Sort:
    """A table's order: column ``key``, ``descending`` or not. Numbers and dates start with the
    largest (``descending_first``), names with A/阿."""

    key: str
    descending: bool
    descending_first: frozenset[str] = frozenset()

    @property
    def dir(self) -> str:
        return "desc" if self.descending else "asc"

    def next_dir(self, key: str) -> str:
        """The direction a click on column ``key``'s header asks for."""
        if key == self.key:
            return "asc" if self.descending else "desc"
        return "desc" if key in self.descending_first else "asc"

    def apply(self, column: Any) -> Any:
        # Blanks (no community, never left…) last either way, on SQLite and PostgreSQL alike.
        return (column.desc() if self.descending else column.asc()).nulls_last()


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

    def local(self, when: datetime | None) -> str:
        if when is None:
            return "—"
        return when.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def paging(self, total: int, size: int) -> Paging:
        """The ?page= the request asks for (from 1) over ``total`` rows."""
        pages = max(1, -(-total // size))
        # Past the end is the last page (a stale link after rows went away; ?page=10**30).
        number = min(max(1, int_param(self.request.query_params.get("page")) or 1), pages)
        return Paging(number=number, pages=pages, size=size)

    def sort(self, columns: Collection[str], default: str, *, descending_first: Collection[str] = ()) -> Sort:
        """The ?sort=&dir= the request asks for, among ``columns`` (a whitelist)."""
        params = self.request.query_params
        key = params.get("sort", "")
        if key not in columns:
            key = default
        direction = params.get("dir", "")
        descending = direction == "desc" if direction in ("asc", "desc") else key in descending_first
        return Sort(key=key, descending=descending, descending_first=frozenset(descending_first))

    def pinyin(self, column: Any) -> Any:
        """``column`` (a name) to sort in pinyin order on this database."""
        return by_pinyin(self.db, column)

    def url(self, path: str, **params: Any) -> str:
        """``path`` with the current query string updated by ``params`` (None drops a key)."""
        query = {k: v for k, v in self.request.query_params.items() if k not in params and k != "lang"}
        query.update({k: v for k, v in params.items() if v is not None and v != ""})
        return f"{path}?{urlencode(query)}" if query else path

    def render(self, template: str, section: str, context: dict[str, Any], status_code: int = 200) -> Response:
        """The page in its frame. The count of the viewer's unseen task notices is looked up here
        unless the page gives it (``task_notices`` in ``context``: the inbox, which shows some)."""
        notices = context.get("task_notices")
        if notices is None:
            notices = task_service.notice_count(self.db, self.scope)
        frame = page_frame(Viewer.of(self.staff, self.principal.token.id), section, notices)
        context = {**frame, "staff": self.staff, "page": self, "organisation": self.organisation, **context}
        return render(self.request, template, context, staff=self.staff, status_code=status_code)


@dataclass(frozen=True)
class Viewer:
    """What the page frame shows of the logged-in staff member, as plain values: an error page
    renders after the request's session was rolled back and closed, when ORM rows are detached."""

    display_name: str
    role: str
    language: str | None
    token_id: int
    scope: Scope

    @classmethod
    def of(cls, staff: Staff, token_id: int) -> Viewer:
        scope = Scope(staff_id=staff.id, org_id=staff.org_id, role=Role(staff.role))
        return cls(staff.display_name, staff.role, staff.language, token_id, scope)


def page_frame(viewer: Viewer, section: str, task_notices: int = 0) -> dict[str, Any]:
    """What base.html needs for the header and the navigation of a logged-in staff member
    (``task_notices``: their tasks reminded or escalated to them and not yet seen)."""
    return {
        "staff": viewer,
        "section": section,
        "task_notices": task_notices,
        "whole_org": viewer.scope.whole_org,
        "can_write": viewer.scope.can_write,
        "is_lead": viewer.scope.is_lead,
        "csrf_token": session_csrf_token(viewer.token_id),
    }


def _error_viewer(request: Request, status_code: int) -> Viewer | None:
    """Who is looking at an error page: the page's user if the failed handler had one, else the
    session cookie's owner (a 404 of an unknown path runs no dependency). Not looked up for a 5xx:
    the database may be why the request failed."""
    viewer = getattr(request.state, "console_viewer", None)
    if isinstance(viewer, Viewer):
        return viewer
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or status_code >= 500:
        return None
    try:
        with unit_of_work(write=False) as session:
            auth = verify_token(session, cookie, kinds={TokenKind.SESSION}, now=utcnow())
            return Viewer.of(auth.staff, auth.token.id)
    except (QunyunError, SQLAlchemyError):
        log.debug("no session for the error page", exc_info=True)
        return None


def _error_notices(viewer: Viewer, status_code: int) -> int:
    """The viewer's unseen task notices for an error page's navigation; not looked up for a 5xx
    (the database may be why the request failed)."""
    if status_code >= 500:
        return 0
    try:
        with unit_of_work(write=False) as session:
            return task_service.notice_count(session, viewer.scope)
    except (QunyunError, SQLAlchemyError):
        log.debug("no task notices for the error page", exc_info=True)
        return 0


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


def render_error(request: Request, error: QunyunError, headers: dict[str, str]) -> Response:
    """A console error page in the reader's language, with the navigation and the sign-out
    when someone is logged in."""
    status_code = error.status_code
    viewer = _error_viewer(request, status_code)
    lang = page_language(request, viewer)
    t = Translator(lang)
    status_text = next(
        (t(key) for key in (f"status_{status_code}", f"tables.status_{status_code}") if t(key) != key),
        t("error_title"),
    )
    message = error.localized(lang)
    if error.msg is None and message in (_phrase(status_code), ""):
        message = ""  # Starlette's English "Not Found": the status text already says it
    context: dict[str, Any] = {"status_code": status_code, "status_text": status_text, "message": message}
    if viewer is not None:
        context.update(page_frame(viewer, section="", task_notices=_error_notices(viewer, status_code)))
    return render(request, "error.html", context, staff=viewer, status_code=status_code, headers=headers)


def console_page(request: Request, db: DbSession, principal: ConsoleUser) -> Page:
    organisation = db.scalar(select(Organisation).where(Organisation.id == principal.staff.org_id))
    assert organisation is not None  # staff rows cascade with their organisation
    return Page(request=request, db=db, principal=principal, organisation=organisation)


ConsolePage = Annotated[Page, Depends(console_page)]


# The largest ids the columns hold (api/pagination.py): groups, members, channels, tags… have
# INTEGER ids on PostgreSQL, the event log BIGINT ones. A bigger number in a URL names nothing, and
# binding it would fail in the driver (OverflowError on SQLite past 2^63, "integer out of range" on
# PostgreSQL).
MAX_ID = INT32_MAX
MAX_BIGINT = INT64_MAX
_DIGITS = re.compile(r"[0-9]+")


def int_param(value: str | None, maximum: int = MAX_ID) -> int | None:
    """A query-string number: blank or non-numeric means "no filter" (forms submit empty selects);
    one past ``maximum`` is clamped to it, so an id matches nothing and a page number ends."""
    if value is None or not _DIGITS.fullmatch(value := value.strip()):
        return None
    # Compared by length first: int() of thousands of digits is slow and then refused by Python.
    return maximum if len(value) > len(str(maximum)) else min(int(value), maximum)


def path_id(value: str, not_found: Msg, maximum: int = MAX_ID) -> int:
    """An id from a console URL (/groups/{id}): anything but a stored id's digits is 404
    (``maximum``: ``MAX_BIGINT`` for a BIGINT key)."""
    number = int_param(value, maximum + 1)
    if number is None or not 0 < number <= maximum:
        raise NotFound(not_found)
    return number


async def form_data(request: Request) -> FormData:
    """A console form's fields (urlencoded or multipart)."""
    return await request.form()


Form = Annotated[FormData, Depends(form_data)]


def check_form(page: Page, form: FormData) -> None:
    """403 unless ``form`` carries the viewer's CSRF token (every console form posts it)."""
    token = form.get("csrf_token")
    check_csrf(session_csrf_token(page.principal.token.id), token if isinstance(token, str) else None)

"""``GET /c/{code}``: the page a visitor sees after scanning a live code (no login, no JavaScript,
mobile-first, Simplified Chinese unless the browser asks for English), its threshold form
(``POST /c/{code}``), the group QR image behind a signed link and the page's stylesheet.

These paths are answered ahead of the application's middleware and router (:class:`ScanPaths`,
installed by :func:`install`): a scan is read and answered on the event loop, with no dependency
stack in between, and its work joins the process's lane (``lane.py``): the scans waiting there
share one transaction in one worker thread. Nothing there waits for admission (a poster at an
event brings hundreds of scans at once, each a fraction of a millisecond of work): waiting in
the lane costs a coroutine, and the lane takes one thread and one database connection at a
time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from qunyun.auth.address import client_address
from qunyun.db.errors import database_unavailable
from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput, NotFound
from qunyun.livecodes import invitations, routing
from qunyun.livecodes.lane import lanes
from qunyun.livecodes.routing import ScanResult, Visit
from qunyun.livecodes.storage import qr_file, sign, signature_ok
from qunyun.livecodes.visitors import VISITOR_COOKIE, VISITOR_COOKIE_MAX_AGE, new_visitor_id, valid_visitor_id
from qunyun.locale import Msg
from qunyun.models import GroupQrImage, LiveCode, ScanOutcome

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
# Threads (and so database connections) the QR image links take at once, per process.
SCAN_THREADS = 4
# A signed image link works this long after the page that showed it.
IMAGE_LINK_SECONDS = 600
MAX_FORM_BYTES = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store"}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, auto_reload=False, enable_async=False
)
_css = (TEMPLATES / "scan.css").read_bytes()


class _Limiters:
    """One thread limiter per event loop (a test client runs a loop of its own)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter: anyio.CapacityLimiter | None = None

    def get(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._loop is not loop:
            self._loop, self._limiter = loop, anyio.CapacityLimiter(SCAN_THREADS)
        return self._limiter


_limiters = _Limiters()


def _language(request: Request) -> str:
    wanted = request.query_params.get("lang") or request.cookies.get("lang")
    if wanted in ("zh", "en"):
        return wanted
    accept = request.headers.get("accept-language", "").strip().lower()
    return "en" if accept.startswith("en") else "zh"


def _visit(request: Request, visitor: str | None = None) -> Visit:
    known = valid_visitor_id(visitor or request.cookies.get(VISITOR_COOKIE))
    region = (request.query_params.get("r") or "").strip()[:64]
    return Visit(
        visitor=known or new_visitor_id(),
        known=known is not None,
        user_agent=request.headers.get("user-agent"),
        ip=client_address(request),
        region=region,
    )


def _unavailable(request: Request) -> Response:
    lang = _language(request)
    return _render(
        "scan_message.html",
        lang,
        503,
        title=Msg("scan.busy_title").render(lang),
        heading=Msg("scan.busy_title").render(lang),
        text=Msg("scan.busy").render(lang),
    )


async def scan_page(request: Request) -> Response:
    if request.method == "HEAD":  # a link checker: nothing is scanned, nothing counted
        return Response(status_code=200, media_type="text/html", headers=_NO_STORE)
    code = request.path_params["code"]
    visit = _visit(request)
    try:
        result = await lanes.get().serve(
            code, lambda session, writes: routing.scan(session, code, visit, writes=writes)
        )
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning("scan of %s: database unavailable: %s", code, exc)
        return _unavailable(request)
    return _respond(request, result, visit)


async def answer_form(request: Request) -> Response:
    code = request.path_params["code"]
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return PlainTextResponse("form too large", status_code=413)
    form = {k: v for k, v in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)}
    visitor = form.pop("_v", "")
    scan_id = form.pop("_s", "")
    signature = form.pop("_sig", "")
    visit = _visit(request, visitor)
    if not scan_id.isdigit() or not signature_ok(signature, "answer", code, scan_id, visit.visitor):
        # A stale or forged form: the visitor starts again from the scan page.
        return RedirectResponse(f"/c/{code}", status_code=303, headers=_NO_STORE)
    try:
        answers = int(scan_id), form
        result = await lanes.get().serve(
            code, lambda session, writes: routing.answer(session, code, visit, *answers, writes=writes)
        )
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning("answer to %s: database unavailable: %s", code, exc)
        return _unavailable(request)
    return _respond(request, result, visit, given=form)


def _render(name: str, lang: str, status: int = 200, **values: Any) -> HTMLResponse:
    def t(key: str, **kw: Any) -> str:
        return Msg(key, **kw).render(lang)

    html = _env.get_template(name).render(lang=lang, t=t, **values)
    return HTMLResponse(html, status_code=status, headers=_NO_STORE)


def _image_url(code: str, kind: str, ref: int | str) -> str:
    until = int(time.time()) + IMAGE_LINK_SECONDS
    return f"/c/{code}/{kind}/{ref}/{until}/{sign(kind, code, ref, until)}"


def _respond(request: Request, result: ScanResult, visit: Visit, given: dict[str, str] | None = None) -> Response:
    lang = _language(request)
    cc = result.code
    if cc is None:
        return _render(
            "scan_message.html",
            lang,
            404,
            title=Msg("scan.not_found_title").render(lang),
            heading=Msg("scan.not_found_title").render(lang),
            text=Msg("scan.not_found").render(lang),
        )
    outcome = result.outcome
    response: Response
    if outcome == ScanOutcome.ROUTED and result.entry is not None:
        link = result.entry.invite_link
        if link and invitations.offers_invitation(result.entry.platform):
            # A join through the link is not attributable there: offer an invitation too.
            response = _invitation_page(lang, cc.code, cc.hook_text, result.entry, visit.visitor)
        elif link and link.startswith(("https://", "http://")):
            response = RedirectResponse(link, status_code=302, headers=_NO_STORE)
        else:
            image = _image_url(cc.code, "qr", result.entry.image_id) if not link and result.entry.image_id else None
            response = _render(
                "scan_group.html",
                lang,
                title=Msg("scan.title").render(lang),
                hook=cc.hook_text,
                group_name=result.entry.group_name,
                image_url=image,
                link=link,
            )
    elif outcome == ScanOutcome.QUESTION and cc.threshold is not None:
        assert result.scan_id is not None
        response = _render(
            "scan_question.html",
            lang,
            title=Msg("scan.question_title").render(lang),
            hook=cc.hook_text,
            action=f"/c/{cc.code}",
            scan_id=result.scan_id,
            visitor=result.visitor,
            signature=sign("answer", cc.code, result.scan_id, result.visitor),
            questions=cc.threshold.questions,
            missing=result.missing,
            given=given or {},
        )
    elif outcome == ScanOutcome.REFUSED:
        refusal = cc.threshold.refusal if cc.threshold is not None else ""
        response = _render(
            "scan_message.html",
            lang,
            title=Msg("scan.refused_title").render(lang),
            heading=Msg("scan.refused_title").render(lang),
            text=refusal or Msg("scan.refused").render(lang),
        )
    elif outcome == ScanOutcome.BLOCKED:
        response = _render(
            "scan_message.html",
            lang,
            title=Msg("scan.refused_title").render(lang),
            heading=Msg("scan.refused_title").render(lang),
            text=Msg("scan.blocked").render(lang),
        )
    else:  # the fallback: every group full or none servable, or the code paused
        paused = outcome == ScanOutcome.PAUSED
        if cc.fallback_url and not cc.fallback_image and not paused:
            response = RedirectResponse(cc.fallback_url, status_code=302, headers=_NO_STORE)
        else:
            heading = Msg("scan.paused" if paused else "scan.fallback_title").render(lang)
            text = cc.fallback_text or (
                "" if cc.fallback_image or cc.fallback_url else Msg("scan.waiting").render(lang)
            )
            response = _render(
                "scan_fallback.html",
                lang,
                title=heading,
                hook="" if paused else cc.hook_text,
                heading=heading,
                text=text,
                image_url=_image_url(cc.code, "fallback", cc.id) if cc.fallback_image else None,
                link=cc.fallback_url or None,
            )
    if not visit.known or visit.visitor != request.cookies.get(VISITOR_COOKIE):
        # Written out (the id is URL-safe base64): Response.set_cookie's SimpleCookie costs more.
        secure = "; Secure" if request.scope.get("scheme") == "https" else ""
        cookie = f"{VISITOR_COOKIE}={visit.visitor}; Max-Age={VISITOR_COOKIE_MAX_AGE}; Path=/c; HttpOnly; SameSite=lax"
        response.raw_headers.append((b"set-cookie", (cookie + secure).encode("latin-1")))
    return response


def _invitation_page(
    lang: str,
    code: str,
    hook: str,
    entry: routing.Entry,
    visitor: str,
    *,
    status: int = 200,
    error: str | None = None,
    given: str = "",
) -> HTMLResponse:
    return _render(
        "scan_group.html",
        lang,
        status,
        title=Msg("scan.title").render(lang),
        hook=hook,
        group_name=entry.group_name,
        image_url=None,
        link=entry.invite_link,
        invite_action=f"/c/{code}/invite",
        entry_id=entry.id,
        visitor=visitor,
        signature=sign("invite", code, entry.id, visitor),
        error=error,
        given=given,
    )


def _invite(code: str, entry_id: int, visitor: str, user_id: str) -> tuple[str, str]:
    with unit_of_work() as session:
        invited = invitations.invite(session, code, entry_id, visitor, user_id)
        return invited.invitation.user_id, invited.group_name


async def invite_form(request: Request) -> Response:
    """``POST /c/{code}/invite``: the visitor's Matrix ID; the bot invites them (the page again
    with 400 naming ``matrix_id`` when it is not one)."""
    code = request.path_params["code"]
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return PlainTextResponse("form too large", status_code=413)
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    visitor = valid_visitor_id(form.get("_v")) or ""
    entry_id = form.get("_e", "")
    signature = form.get("_sig", "")
    if not visitor or not entry_id.isdigit() or not signature_ok(signature, "invite", code, entry_id, visitor):
        return RedirectResponse(f"/c/{code}", status_code=303, headers=_NO_STORE)
    lang = _language(request)
    given = form.get("matrix_id", "")
    try:
        user, group = await anyio.to_thread.run_sync(
            _invite, code, int(entry_id), visitor, given, limiter=_limiters.get()
        )
    except InvalidInput as exc:
        with unit_of_work(write=False) as session:
            cc = routing.cached(session, code)
        entry = cc.entry(int(entry_id)) if cc is not None else None
        if cc is None or entry is None:
            return RedirectResponse(f"/c/{code}", status_code=303, headers=_NO_STORE)
        error = f"{exc.field}: {exc.localized(lang)}"
        return _invitation_page(lang, code, cc.hook_text, entry, visitor, status=400, error=error, given=given[:255])
    except NotFound:
        return RedirectResponse(f"/c/{code}", status_code=303, headers=_NO_STORE)
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        log.warning("invitation from %s: database unavailable: %s", code, exc)
        return _unavailable(request)
    return _render(
        "scan_message.html",
        lang,
        title=Msg("scan.invited_title").render(lang),
        heading=Msg("scan.invited_title").render(lang),
        text=Msg("scan.invited", user=user, group=group).render(lang),
    )


def _image_path(code: str, kind: str, ref: int) -> tuple[Path, str] | None:
    """The file behind a signed link, if it may still be shown: a group image that has not
    expired (nor is about to) and was not withdrawn, or the code's fallback image."""
    from sqlalchemy import select

    from qunyun.timeutil import utcnow

    with unit_of_work(write=False) as session:
        if kind == "qr":
            image = session.get(GroupQrImage, ref)
            if image is None or image.withdrawn_at is not None:
                return None
            if image.expires_at <= utcnow() + routing.SERVE_MARGIN:
                return None
            return qr_file(image.path)
        path = session.scalar(select(LiveCode.fallback_image).where(LiveCode.id == ref, LiveCode.code == code))
        return qr_file(path) if path else None


async def image(request: Request) -> Response:
    code = request.path_params["code"]
    kind = request.path_params["kind"]
    ref = request.path_params["ref"]
    until = request.path_params["until"]
    signature = request.path_params["sig"]
    if kind not in ("qr", "fallback") or until < time.time() or not signature_ok(signature, kind, code, ref, until):
        return PlainTextResponse("not found", status_code=404)
    found = await anyio.to_thread.run_sync(_image_path, code, kind, ref, limiter=_limiters.get())
    if found is None:
        return PlainTextResponse("not found", status_code=404)
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=600"})


async def stylesheet(request: Request) -> Response:
    return Response(_css, media_type="text/css", headers={"Cache-Control": "public, max-age=86400"})


# What SecurityHeaders adds to the console's pages, for a page that loads nothing but its own
# stylesheet and QR image, posts only to itself and runs no script.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
]
Endpoint = Callable[[Request], Awaitable[Response]]


def _match(method: str, path: str) -> tuple[Endpoint | None, dict[str, Any], int]:
    """The endpoint of a /c/ path, its parameters, and the status when there is none."""
    reading = method in ("GET", "HEAD")
    if path == "/c/scan.css":
        return (stylesheet, {}, 200) if reading else (None, {}, 405)
    parts = path[3:].split("/")
    if len(parts) == 2 and parts[0] and parts[1] == "invite":
        return (invite_form, {"code": parts[0]}, 200) if method == "POST" else (None, {}, 405)
    if len(parts) == 1 and parts[0]:
        if reading:
            return scan_page, {"code": parts[0]}, 200
        return (answer_form, {"code": parts[0]}, 200) if method == "POST" else (None, {}, 405)
    if len(parts) == 5 and parts[2].isdigit() and parts[3].isdigit() and reading:
        code, kind, ref, until, sig = parts
        return image, {"code": code, "kind": kind, "ref": int(ref), "until": int(until), "sig": sig}, 200
    return None, {}, 404


class ScanPaths:
    """The ``/c/`` paths, answered before the application's middleware and router.

    A scan needs none of what they do for the console and the API (sessions, credentials, body
    caps, dependencies), and on a burst of scans their cost per request was most of the server's
    (docs/performance.md); so ``/c/…`` is dispatched here, with the security headers the console's
    pages get and errors answered as the server's would be. Every other path goes on as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/c/"):
            await self.app(scope, receive, send)
            return
        endpoint, params, status = _match(scope["method"], scope["path"])
        response: Response
        if endpoint is None:
            response = PlainTextResponse("not found" if status == 404 else "method not allowed", status_code=status)
        else:
            scope["path_params"] = params
            try:
                response = await endpoint(Request(scope, receive))
            except Exception:
                log.exception("%s %s", scope["method"], scope["path"])
                response = PlainTextResponse("internal server error", status_code=500)
        response.raw_headers.extend(SECURITY_HEADERS)
        await response(scope, receive, send)


def install(app: Starlette) -> None:
    """Serve the ``/c/`` paths ahead of ``app``'s middleware stack (see :class:`ScanPaths`)."""
    build = app.build_middleware_stack

    def build_with_scans() -> ASGIApp:
        return ScanPaths(build())

    app.build_middleware_stack = build_with_scans  # type: ignore[method-assign]

"""The edge of the server: who may send a body, how big it may be, how many requests run at once.

``EdgeGuard`` is pure ASGI (it never buffers a body) and runs before routing:

1. A write to the API without any credential is 401 before a byte of its body is read; with a
   credential, the credential is verified (one indexed SELECT) before the body is read, so an
   anonymous or forged caller cannot make the server read and parse megabytes. A credential this
   process verified in the last two seconds is not looked up again here (the request's own
   authentication still checks it), and requests of one credential arriving together share one
   lookup.
2. Every body is capped: ``QUNYUN_MAX_BODY_BYTES`` (1 MiB) by default, ``QUNYUN_MAX_EVENTS_BODY_BYTES``
   (16 MiB) for ``POST /api/v1/events``. A larger Content-Length is 413 at once; a chunked body
   is cut off (413) as soon as the streamed bytes pass the cap.
3. At most ``QUNYUN_MAX_CONCURRENT_REQUESTS`` requests run at once; at most
   ``QUNYUN_ADMISSION_QUEUE`` others wait, each at most ``QUNYUN_ADMISSION_WAIT_SECONDS`` for a
   slot; a request beyond the queue, or one whose wait ends, gets 503 with Retry-After. Waiting here
   costs a coroutine, not one of AnyIO's worker threads or a database connection, so a burst
   cannot starve the pool, and the server answers normally as soon as it ends.
   ``/healthz``, ``/readyz`` and static assets bypass the admission.
4. A database that cannot serve (down, unreachable, full, locked) is 503 with Retry-After.
5. ``POST /api/v1/events`` of a token this process has verified is then answered here, by the
   fast path the application passes in (``ingestion.endpoints.serve_post``), instead of by the
   middleware stack and router; a small post gives its admission slot back while it waits for
   its shared transaction (docs/ingestion.md, "Live posts share transactions"). Such a post
   reaches an edge of its own ahead of the application's middleware stack (``EventsFastPath``).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qunyun.config import get_settings
from qunyun.db.errors import database_unavailable
from qunyun.errors import QunyunError, Unauthenticated
from qunyun.locale import Msg

log = logging.getLogger(__name__)

EVENTS_PATH = "/api/v1/events"
# A task's completion carries an evidence image of up to 5 MiB (qunyun.tasks.storage), base64 in
# JSON or a multipart part: the body may be that much larger; the image's own limit is checked
# after, and names the field.
EVIDENCE_UPLOAD_PATH = re.compile(r"(?:/api/v1)?/tasks/[0-9]+/complete")
EVIDENCE_BODY_BYTES = 8 * 1024 * 1024
# The console's group QR and staff QR uploads of a live code (images of up to 5 MiB as well).
QR_UPLOAD_PATH = re.compile(r"/livecodes/[0-9]+/(?:groups/[0-9]+/qr|fallback-image)")
SESSION_COOKIE = "qunyun_session"
# API routes that take a body from a caller not yet known (the credential is in the body).
PUBLIC_API_WRITES = frozenset({("POST", "/api/v1/auth/tokens")})
UNGUARDED_PATHS = frozenset({"/healthz", "/readyz", "/favicon.ico"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_AFTER_SECONDS = 5


class PayloadTooLarge(QunyunError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(QunyunError):
    """The server cannot serve now (busy or database unavailable); try again after Retry-After."""

    status_code = 503
    code = "unavailable"

    def __init__(self, message: Msg | str, *, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def database_unavailable_error() -> ServiceUnavailable:
    error = ServiceUnavailable(Msg("edge.db_unavailable"))
    error.code = "database_unavailable"
    return error


def body_cap(method: str, path: str) -> int:
    """The largest body accepted for ``method path``."""
    settings = get_settings()
    if method == "POST" and path.rstrip("/") == EVENTS_PATH:
        return settings.max_events_body_bytes
    if method == "POST" and (EVIDENCE_UPLOAD_PATH.fullmatch(path.rstrip("/")) or QR_UPLOAD_PATH.fullmatch(path)):
        return max(settings.max_body_bytes, EVIDENCE_BODY_BYTES)
    return settings.max_body_bytes


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def _answers_json(path: str) -> bool:
    """Paths read by programs (the API, platforms posting webhooks): refusals in JSON."""
    return path.startswith(("/api/", "/hooks/"))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def error_response(error: QunyunError, scope: Scope) -> Response:
    """The answer to an edge rejection: the API's JSON shape, or the console's error page."""
    headers: dict[str, str] = {}
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if error.status_code in (413, 401):
        # The body was not read: the connection cannot be reused for another request.
        headers["Connection"] = "close"
    request = Request(scope)
    if not _answers_json(request.url.path):
        if isinstance(error, ServiceUnavailable):
            # Busy: the answer must cost next to nothing (no template, no database), or a burst of
            # refusals would keep the event loop from serving the requests it admitted.
            return _plain_page(error, request, headers)
        try:
            from qunyun.api.errors import error_response as app_error_response

            response = app_error_response(error, request)
            response.headers.update(headers)
            return response
        except Exception:
            # The console's error page may itself need the database that just failed.
            log.debug("console error page unavailable; plain page instead", exc_info=True)
            return _plain_page(error, request, headers)
    from qunyun.api.errors import api_language

    body = error.as_dict(api_language(request))
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def _plain_page(error: QunyunError, request: Request, headers: dict[str, str]) -> Response:
    """A minimal console page for an edge refusal, in the reader's language."""
    from qunyun.locale import pick_language

    # "lang" is the console's language cookie (console/web.py LANG_COOKIE).
    lang = pick_language(request.cookies.get("lang"), get_settings().default_language)
    text = html.escape(error.localized(lang))
    page = (
        f'<!doctype html><html lang="{lang}"><meta charset="utf-8"><title>{error.status_code}</title>'
        f'<link rel="stylesheet" href="/static/console.css"><main class="error"><h1>{error.status_code}</h1>'
        f'<p>{text}</p><p><a href="">{html.escape(Msg("edge.try_again").render(lang))}</a></p></main></html>'
    )
    return HTMLResponse(page, status_code=error.status_code, headers=headers)


class Admission:
    """A semaphore per event loop (TestClient starts a loop per client) and the number of
    requests waiting for it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: anyio.Semaphore | None = None
        self.waiting = 0

    def semaphore(self) -> anyio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._loop = loop
            self._semaphore = anyio.Semaphore(get_settings().max_concurrent_requests)
            self.waiting = 0
        return self._semaphore

    async def wait(self, semaphore: anyio.Semaphore) -> bool:
        """Wait for a slot, unless the queue is full already; False when no slot came in time.

        The queue is bounded too: a request that would queue behind ``admission_queue`` others
        is refused at once, so that once a burst ends, the requests of clients that gave up meanwhile
        do not hold a newcomer for the whole wait."""
        settings = get_settings()
        if self.waiting >= settings.admission_queue:
            return False
        self.waiting += 1
        try:
            with anyio.move_on_after(settings.admission_wait_seconds):
                await semaphore.acquire()
                return True
            return False
        finally:
            self.waiting -= 1


@dataclass
class _BodyState:
    cap: int
    received: int = 0
    too_large: bool = False
    response_started: bool = False


# The fast path of ``POST /api/v1/events`` (``qunyun.ingestion.endpoints``): which requests it
# serves (None: the application serves it) and how; the server passes them (no import cycle).
FastSelect = Callable[[Scope], Any]
FastServe = Callable[[Scope, Receive, Send, Any, Callable[[], None]], Awaitable[None]]


class EdgeGuard:
    def __init__(
        self, app: ASGIApp, events: tuple[FastSelect, FastServe] | None = None, admission: Admission | None = None
    ) -> None:
        self.app = app
        # Shared with the events fast path's own edge (EventsFastPath), when the app installs one.
        self.admission = admission if admission is not None else Admission()
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        if path in UNGUARDED_PATHS or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        needs_credential = (
            _is_api(path) and method not in SAFE_METHODS and (method, path.rstrip("/")) not in PUBLIC_API_WRITES
        )
        authorization = _header(scope, b"authorization")
        cookie = _cookie(scope, SESSION_COOKIE)
        if needs_credential and not authorization and not cookie:
            await self._reject(Unauthenticated(Msg("edge.auth_required")), scope, send)
            return
        cap = body_cap(method, path)
        length = _header(scope, b"content-length")
        if length is not None and (not length.strip().isdigit() or int(length) > cap):
            await self._reject(_too_large(cap), scope, send)
            return

        semaphore = self.admission.semaphore()
        admitted = self._admit(semaphore)
        if not admitted and not await self.admission.wait(semaphore):
            await self._reject(ServiceUnavailable(Msg("edge.busy")), scope, send)
            return
        held = True

        def hand_over() -> None:
            """Give the admission slot back (once) before the request is answered."""
            nonlocal held
            if held:
                held = False
                semaphore.release()

        try:
            if needs_credential and not _recently_verified.holds(authorization, cookie):
                try:
                    ok = await _recently_verified.verify(authorization, cookie)
                except Exception as exc:
                    if not database_unavailable(exc):
                        raise
                    await self._reject(database_unavailable_error(), scope, send)
                    return
                if not ok:
                    await self._reject(Unauthenticated(Msg("edge.bad_credential")), scope, send)
                    return
            app = self.app
            if self.events is not None and method == "POST" and path.rstrip("/") == EVENTS_PATH:
                select, serve = self.events
                post = select(scope)
                if post is not None:

                    async def app(scope: Scope, receive: Receive, send: Send) -> None:
                        await serve(scope, receive, send, post, hand_over)

            await self._call_capped(app, scope, receive, send, _BodyState(cap=cap))
        finally:
            hand_over()

    @staticmethod
    def _admit(semaphore: anyio.Semaphore) -> bool:
        try:
            semaphore.acquire_nowait()
        except anyio.WouldBlock:
            return False
        return True

    async def _call_capped(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, state: _BodyState) -> None:
        async def capped_receive() -> Message:
            if state.too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state.received += len(message.get("body", b""))
                if state.received > state.cap:
                    # Starlette sees a disconnect and stops reading; the answer is ours.
                    state.too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state.too_large and not state.response_started:
                return  # whatever the app makes of the cut-off body, the answer is 413
            if message["type"] == "http.response.start":
                state.response_started = True
            await send(message)

        try:
            await app(scope, capped_receive, guarded_send)
        except Exception as exc:
            if state.response_started:
                raise
            if state.too_large:
                pass
            elif database_unavailable(exc):
                log.warning("database unavailable on %s %s: %s", scope.get("method"), scope.get("path"), exc)
                await self._reject(database_unavailable_error(), scope, send)
                return
            else:
                raise
        if state.too_large and not state.response_started:
            state.response_started = True
            await error_response(_too_large(state.cap), scope)(scope, receive, send)

    @staticmethod
    async def _reject(error: QunyunError, scope: Scope, send: Send) -> None:
        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await error_response(error, scope)(scope, no_body, send)


def _too_large(cap: int) -> PayloadTooLarge:
    return PayloadTooLarge(Msg("edge.body_too_large", limit=_human_bytes(cap)), field="body", limit=cap)


def _human_bytes(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def _credential_valid(authorization: str | None, cookie: str | None) -> bool:
    """Whether the credential the request will be served with exists and is live (read-only)."""
    from qunyun.auth.tokens import TokenKind, verify_token
    from qunyun.db.session import unit_of_work
    from qunyun.timeutil import utcnow

    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return False
        secret, kinds = secret.strip(), {TokenKind.API}
    else:
        secret, kinds = cookie or "", {TokenKind.SESSION}
    with unit_of_work(write=False) as session:
        try:
            verify_token(session, secret, kinds=kinds, now=utcnow())
        except Unauthenticated:
            return False
    _recently_verified.add(authorization, cookie)
    return True


class _RecentlyVerified:
    """Credentials this process found live in the last ``TTL`` seconds (by digest, never the
    secret itself), so a client posting many small requests is not verified twice per request.

    This only decides whether the edge reads the body: the request itself still verifies the
    credential in its own transaction, so a token revoked a second ago is refused all the same,
    at worst after its (capped) body was read."""

    TTL = 2.0
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._until: dict[bytes, float] = {}
        # Verifications running, per event loop: when a busy client's entry expires, the dozens
        # of its requests arriving meanwhile wait for one lookup instead of each making its own.
        self._running: dict[tuple[int, bytes], asyncio.Future[bool]] = {}

    async def verify(self, authorization: str | None, cookie: str | None) -> bool:
        """:func:`_credential_valid` in a worker thread, once for all the requests of one
        credential that ask at the same time."""
        key = (id(asyncio.get_running_loop()), self._key(authorization, cookie))
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(anyio.to_thread.run_sync(_credential_valid, authorization, cookie))
            self._running[key] = running

            def done(future: asyncio.Future[bool]) -> None:
                self._running.pop(key, None)
                if not future.cancelled():
                    future.exception()  # retrieved, even if every request asking went away

            running.add_done_callback(done)
        # A request that goes away (cancelled) does not cancel the others' lookup.
        return await asyncio.shield(running)

    @staticmethod
    def _key(authorization: str | None, cookie: str | None) -> bytes:
        return hashlib.sha256(f"{authorization or ''}\n{cookie or ''}".encode()).digest()

    def holds(self, authorization: str | None, cookie: str | None) -> bool:
        until = self._until.get(self._key(authorization, cookie))
        return until is not None and until > time.monotonic()

    def add(self, authorization: str | None, cookie: str | None) -> None:
        if len(self._until) >= self.MAX_ENTRIES:
            self._until.clear()
        self._until[self._key(authorization, cookie)] = time.monotonic() + self.TTL


_recently_verified = _RecentlyVerified()


class EventsFastPath:
    """``POST /api/v1/events`` of a token this process has verified, answered ahead of the
    application's whole middleware stack.

    Such a post needs nothing of what the stack does between the server and the edge (FastAPI's
    and Starlette's error and body-limit middleware, the ``/c/`` dispatch), and on a burst of
    single-message posts resuming their coroutines and send wrappers cost about a tenth of the
    server's CPU (docs/performance.md). So it goes straight to an edge of its own: the security
    headers around an :class:`EdgeGuard` sharing the application's admission, which checks it as
    it checks every request and hands it to the fast path. An unexpected error is logged and
    answered 500 in the API's shape, as the application's handler would. Every other request
    goes on to ``app``, the stack."""

    def __init__(
        self,
        app: ASGIApp,
        events: tuple[FastSelect, FastServe],
        admission: Admission,
        headers: Callable[[ASGIApp], ASGIApp],
    ) -> None:
        self.app = app
        self.select = events[0]
        self.headers = headers
        # The post chosen here is the one served: the edge does not choose again.
        self.edge = headers(EdgeGuard(app, events=(_chosen, events[1]), admission=admission))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != EVENTS_PATH:
            await self.app(scope, receive, send)
            return
        post = self.select(scope)
        if post is None:
            await self.app(scope, receive, send)
            return
        scope[_CHOSEN] = post
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.edge(scope, receive, tracked_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if started:
                raise
            error = QunyunError(Msg("err.internal"))
            error.status_code = 500
            error.code = "internal_error"

            async def no_body() -> Message:
                return {"type": "http.disconnect"}

            await self.headers(error_response(error, scope))(scope, no_body, send)


_CHOSEN = "qunyun.events_post"


def _chosen(scope: Scope) -> Any:
    return scope.get(_CHOSEN)


def install_events_fast_path(
    app: Any, events: tuple[FastSelect, FastServe], admission: Admission, headers: Callable[[ASGIApp], ASGIApp]
) -> None:
    """Answer ``app``'s events fast path ahead of its middleware stack (:class:`EventsFastPath`),
    with ``admission`` (the stack's :class:`EdgeGuard`'s) and ``headers`` (the security headers'
    middleware)."""
    build = app.build_middleware_stack

    def build_with_events() -> ASGIApp:
        return EventsFastPath(build(), events, admission, headers)

    app.build_middleware_stack = build_with_events

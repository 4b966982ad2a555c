"""The FastAPI application: /api/v1, /healthz, the console's login pages and static assets."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qunyun.acquisition.endpoints import router as channels_router
from qunyun.api.console import router as console_router
from qunyun.api.docs import install_docs
from qunyun.api.errors import api_language, install_error_handlers
from qunyun.api.limits import RETRY_AFTER_SECONDS, Admission, EdgeGuard, install_events_fast_path
from qunyun.audit.endpoints import router as audit_router
from qunyun.auth.endpoints import router as auth_router
from qunyun.auth.integrations import router as integrations_router
from qunyun.auth.throttle import LoginThrottle
from qunyun.connections.endpoints import router as connections_router
from qunyun.console.pages import router as pages_router
from qunyun.console.web import STATIC_DIR, LoginRequired, login_redirect
from qunyun.crm.endpoints import members as members_router
from qunyun.crm.endpoints import tags as tags_router
from qunyun.db.session import get_engine
from qunyun.groups.endpoints import router as groups_router
from qunyun.hooks.endpoints import router as hooks_router
from qunyun.ingestion.endpoints import fast_post, serve_post
from qunyun.ingestion.endpoints import router as events_router
from qunyun.livecodes.endpoints import router as livecodes_router
from qunyun.livecodes.join_request_endpoints import router as join_requests_router
from qunyun.livecodes.scan import install as install_scan_paths
from qunyun.locale import Msg
from qunyun.moderation.endpoints import router as moderation_router
from qunyun.privacy.endpoints import router as privacy_router
from qunyun.sop.endpoints import router as sop_router
from qunyun.tasks.endpoints import router as tasks_router
from qunyun.team.endpoints import router as staff_router

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
# The console loads nothing from elsewhere (no CDN); /docs has its own 'self'-only policy (api/docs.py).
_CONSOLE_CSP = (
    b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    """Adds the usual hardening headers to every response (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        console = not path.startswith(("/api/", "/docs", "/openapi"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                if console and b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", _CONSOLE_CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _app_version() -> str:
    try:
        return version("qunyun")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def api_router() -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    for sub in (
        auth_router,
        groups_router,
        members_router,
        tags_router,
        channels_router,
        events_router,
        staff_router,
        audit_router,
        integrations_router,
        connections_router,
        tasks_router,
        livecodes_router,
        join_requests_router,
        moderation_router,
        sop_router,
        privacy_router,
    ):
        router.include_router(sub)
    return router


# Readiness probes get threads of their own: during a burst AnyIO's worker threads are busy, and
# "is the database there?" must not queue behind the requests it is asked about.
READINESS_TIMEOUT_SECONDS = 3.0


def database_ok() -> bool:
    """Whether the database answers a query on the schema (alembic_version: the schema exists)."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT version_num FROM alembic_version LIMIT 1"))
        return True
    except Exception:
        log.warning("readiness check: database unavailable", exc_info=True)
        return False


async def database_ready(probes: ThreadPoolExecutor) -> bool:
    """``database_ok`` with a short deadline: an unreachable host must not hang the probe.

    The probe runs in its own small pool, so a hung connection attempt never takes one of the
    request threads."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(loop.run_in_executor(probes, database_ok), timeout=READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("readiness check: no answer from the database within %ss", READINESS_TIMEOUT_SECONDS)
        return False


class _ReadinessProbes:
    """The readiness probe's own small thread pool, made on first use and closed with the app's
    lifespan (a test client may start the same app again afterwards)."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="qunyun-readyz")
            return self._executor

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def create_app(in_process_workers: int = 0) -> FastAPI:
    """Build the application; with ``in_process_workers`` > 0 the lifespan also runs job workers."""

    probes = _ReadinessProbes()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker: Any = None
        if in_process_workers > 0:
            # Imported here: the API must not depend on the worker unless it runs one.
            from qunyun.worker.runner import InProcessWorker

            worker = InProcessWorker(concurrency=in_process_workers)
            worker.start()
        try:
            yield
        finally:
            probes.close()
            if worker is not None:
                await anyio.to_thread.run_sync(worker.stop)

    app = FastAPI(
        title="qunyun",
        summary="Community operations platform (社群运营 / 私域 SCRM)",
        description=(
            "REST API of qunyun. Authenticate with `Authorization: Bearer <token>` (a token from "
            "`POST /api/v1/auth/tokens`). Every list and object is limited to the caller's data scope: "
            "objects outside it answer 404. See docs/api.md and docs/access-control.md."
        ),
        version=_app_version(),
        lifespan=lifespan,
        # /docs is served by qunyun.api.docs from the installed Swagger UI (offline, every env).
        docs_url=None,
        redoc_url=None,
    )
    app.state.login_throttle = LoginThrottle()
    install_error_handlers(app)
    install_docs(app)
    # Outermost last: SecurityHeaders wraps EdgeGuard, so its early answers get the headers too.
    # POST /api/v1/events of a known token is answered by the edge itself (ingestion/endpoints.py).
    admission = Admission()
    app.add_middleware(EdgeGuard, events=(fast_post, serve_post), admission=admission)
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers (no database access)")
    async def healthz() -> JSONResponse:
        # async and database-free on purpose: it answers while every worker thread is busy.
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"], summary="Readiness: the database answers within a few seconds")
    async def readyz(request: Request) -> JSONResponse:
        if await database_ready(probes.executor()):
            return JSONResponse({"status": "ok", "database": "ok"})
        body = {
            "status": "unavailable",
            "database": "unreachable",
            "code": "not_ready",
            "message": Msg("edge.not_ready").render(api_language(request)),
        }
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    app.include_router(api_router())
    app.include_router(hooks_router)  # /hooks/{platform}/{connection_id}: signed, no login
    install_scan_paths(app)  # /c/{code}: live code scans, answered ahead of the middleware, no login
    # and posts of known tokens to /api/v1/events, by an edge of their own sharing the admission
    install_events_fast_path(app, (fast_post, serve_post), admission, SecurityHeaders)
    app.include_router(console_router)
    app.include_router(pages_router)
    app.add_exception_handler(LoginRequired, login_redirect)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app

"""The scan benchmark's baseline: a bare Starlette app answering ``GET /c/{code}`` the way qunyun
answers a scan routed to a group with an invite link (a 302 to the link, not to be cached, with
the visitor cookie), storing nothing. Served by the same uvicorn, with the same options, it is
what the machine, the client and the HTTP stack allow in the same run."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

LINK = "https://t.me/+bench-group-link"


async def scan(request: Request) -> Response:
    response = RedirectResponse(LINK, status_code=302, headers={"Cache-Control": "no-store"})
    if "qy_v" not in request.cookies:
        response.set_cookie("qy_v", secrets.token_urlsafe(16), max_age=365 * 24 * 3600, path="/c", httponly=True)
    return response


async def healthz(request: Request) -> Response:
    return Response(b"ok")


app = Starlette(routes=[Route("/c/{code}", scan), Route("/healthz", healthz)])

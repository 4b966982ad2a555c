"""The live ingest benchmark's baseline: a bare Starlette app answering ``POST /api/v1/events``
the way qunyun does on the wire (read the body, parse the JSON array, answer with the counts),
storing nothing, checking no credential. Served by uvicorn with as many processes as qunyun, it
is what the machine, the client and the HTTP stack allow in the same run."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def post_events(request: Request) -> Response:
    events = orjson.loads(await request.body())
    return Response(orjson.dumps({"stored": len(events), "duplicates": 0}), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response(b"ok")


app = Starlette(routes=[Route("/api/v1/events", post_events, methods=["POST"]), Route("/healthz", healthz)])

"""REST routes for the event log: POST /api/v1/events (ingest) and GET /api/v1/events (read).

POST takes interchange-format v1 events (PRODUCT.md) as a JSON array (``application/json``) or
as JSON Lines (``application/x-ndjson``, ``application/jsonl`` or ``text/plain``). The batch is
all or nothing: the first bad event is reported with its index (and line, for JSON Lines) and
field, and nothing is stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import anyio
import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError
from starlette.responses import Response
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from qunyun.api.errors import error_response, out_of_range
from qunyun.api.limits import PayloadTooLarge
from qunyun.api.pagination import MAX_LIMIT, BigId, Cursor, CursorPage, Id
from qunyun.audit.service import entry
from qunyun.auth.deps import (
    SESSION_COOKIE,
    CurrentScope,
    DbSession,
    authenticate,
    bearer_scheme,
    bearer_token,
    cookie_scheme,
)
from qunyun.auth.scope import Scope
from qunyun.auth.tokens import hash_secret, known_owner
from qunyun.config import get_settings
from qunyun.db.session import unit_of_work
from qunyun.errors import InvalidInput, QunyunError
from qunyun.ingestion import coalesce, log
from qunyun.ingestion.coalesce import check_ingest_scope, live_lanes
from qunyun.ingestion.service import at_line, parse_events
from qunyun.locale import Msg
from qunyun.models import Event, MsgType
from qunyun.models.event import KIND_NAMES, EventKind

router = APIRouter(prefix="/events", tags=["events"])

JSON_LINES_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines", "text/plain"})
# Bodies larger than this are parsed in a worker thread, so the event loop keeps serving.
PARSE_IN_THREAD_BYTES = 256 * 1024


class UnsupportedMediaType(QunyunError):
    status_code = 415
    code = "unsupported_media_type"


@dataclass
class EventBatch:
    events: list[dict[str, Any]]
    # For JSON Lines, the line number of each event (blank lines are skipped); else None.
    lines: list[int] | None
    # The body's size in bytes.
    size: int = 0

    def at_line(self, error: InvalidInput) -> InvalidInput:
        """``error`` of one event (by its index) told at its line, for JSON Lines."""
        index = error.detail.get("index")
        if self.lines is None or not isinstance(index, int) or not 0 <= index < len(self.lines):
            return error
        return at_line(error, self.lines[index])

    def where(self, index: int, reason: Msg) -> Msg:
        """``reason`` told at the event's line (JSON Lines) or index (an array)."""
        if self.lines is not None:
            return Msg("err.event.at_line", line=self.lines[index], reason=reason)
        return Msg("err.event.at_index", index=index, reason=reason)


async def read_event_batch(request: Request) -> EventBatch:
    """Read and split the request body into event objects (validation of the fields is ingest's).

    By the time this runs the caller's credential has been verified and the body is capped
    (``qunyun.api.limits.EdgeGuard``); the cap is checked here too for callers without the guard.
    """
    cap = get_settings().max_events_body_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise PayloadTooLarge(Msg("edge.body_too_large", limit=f"{cap} B"), field="body", limit=cap)
    content_type = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
    if len(body) > PARSE_IN_THREAD_BYTES:
        batch = await anyio.to_thread.run_sync(parse_event_batch, bytes(body), content_type)
    else:
        batch = parse_event_batch(bytes(body), content_type)
    batch.size = len(body)
    return batch


def parse_event_batch(body: bytes, content_type: str) -> EventBatch:
    """Split ``body`` into event objects by its content type (CPU-bound: big bodies run in a thread)."""
    if content_type == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(Msg("edge.body_not_json", detail=str(exc)), field="body") from None
        if not isinstance(data, list):
            raise InvalidInput(Msg("edge.body_not_array"), field="body")
        batch = EventBatch(events=data, lines=None)
    elif content_type in JSON_LINES_TYPES:
        events: list[Any] = []
        lines: list[int] = []
        for number, line in enumerate(body.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                events.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(
                    Msg("err.event.at_line", line=number, reason=Msg("err.event.bad_json", detail=str(exc))),
                    field="body",
                    line=number,
                ) from None
            lines.append(number)
        batch = EventBatch(events=events, lines=lines)
    else:
        raise UnsupportedMediaType(Msg("edge.media_type"), field="content-type")
    if not batch.events:
        raise InvalidInput(Msg("edge.no_events"), field="body")
    for index, event in enumerate(batch.events):
        if not isinstance(event, dict):
            raise InvalidInput(batch.where(index, Msg("edge.not_object")), field="body", index=index)
    return batch


# -- the fast path ---------------------------------------------------------------------------------
#
# A post of a bearer token this process has verified before is answered by ``serve_post``, which
# the edge (``qunyun.api.limits.EdgeGuard``) calls instead of the application's middleware stack
# and router, once it has done its part (credential, body cap, admission, database errors). The
# post waits for its shared transaction as a coroutine (``coalesce.LiveLanes``), not in a
# worker thread of its own. Anything else (a first post, a console session, an odd query string)
# goes to ``post_events`` below, the route: the answers are the same either way.

PLATFORM = re.compile(r"[a-z0-9_-]{1,16}")
# A post whose body is at most this large hands its admission slot over to the lanes while it
# waits there, as long as fewer than LANE_MAX_WAITING posts wait in this process; a larger one
# keeps its slot until it is answered.
LANE_BODY_BYTES = 64 * 1024
LANE_MAX_WAITING = 1024


def _bearer(scope: AsgiScope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" and token else None
    return None


def fast_post(scope: AsgiScope) -> tuple[int, str, str] | None:
    """For a ``POST /api/v1/events`` the fast path serves: (organisation, platform, token hash).
    None sends the request to the route instead."""
    bearer = _bearer(scope)
    if bearer is None:
        return None
    token_hash = hash_secret(bearer)
    org_id = known_owner(token_hash)
    if org_id is None:
        return None
    query = scope.get("query_string", b"")
    if not query:
        return org_id, "api", token_hash
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "platform" or not PLATFORM.fullmatch(pairs[0][1]):
        return None  # the route validates it, and says what is wrong
    return org_id, pairs[0][1], token_hash


async def serve_post(
    scope: AsgiScope, receive: Receive, send: Send, post: tuple[int, str, str], hand_over: Callable[[], None]
) -> None:
    """Answer one ``POST /api/v1/events`` of a known token (see :func:`fast_post`) as the route
    would: the body read (capped by the edge), parsed, ingested in its organisation's lane and
    answered once committed; errors in the API's JSON shape. ``hand_over`` gives the request's
    admission slot back early (a small post waiting in its lane costs a coroutine only)."""
    request = Request(scope, receive)
    org_id, platform, token_hash = post
    try:
        batch = await read_event_batch(request)
        try:
            if batch.size > PARSE_IN_THREAD_BYTES:  # many events: the loop keeps serving meanwhile
                parsed = await anyio.to_thread.run_sync(parse_events, batch.events)
            else:
                parsed = parse_events(batch.events)
        except InvalidInput as exc:
            raise batch.at_line(exc) from None
        lanes = live_lanes.get()
        if batch.size <= LANE_BODY_BYTES and lanes.waiting < LANE_MAX_WAITING:
            hand_over()

        def audit(poster: Scope, stored: int, duplicates: int) -> dict[str, Any]:
            return entry(
                org_id=poster.org_id,
                staff_id=poster.staff_id,
                action="events.ingest",
                target_type="events",
                target_id=platform,
                detail={"platform": platform, "stored": stored, "duplicates": duplicates},
                request=request,
            )

        try:
            counts = await lanes.ingest(org_id, platform, parsed, audit, token_hash=token_hash)
        except InvalidInput as exc:
            raise batch.at_line(exc) from None
        except (OverflowError, DataError) as exc:
            raise out_of_range(exc) from None
    except QunyunError as exc:
        await error_response(exc, request)(scope, receive, send)
        return
    body = orjson.dumps({"stored": counts.stored, "duplicates": counts.duplicates})
    await Response(body, media_type="application/json")(scope, receive, send)


class IngestOut(BaseModel):
    stored: int
    duplicates: int


_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "Interchange-format v1 events: a JSON array, or JSON Lines (one object per line).",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "",
    response_model=IngestOut,
    summary="Ingest events (lead or integration token)",
    openapi_extra=_INGEST_BODY,
    dependencies=[Depends(bearer_scheme), Depends(cookie_scheme)],  # the credentials it takes
)
async def post_events(
    request: Request,
    platform: Annotated[
        str, Query(min_length=1, max_length=16, pattern=r"^[a-z0-9_-]+$", description="Platform of the ids")
    ] = "api",
) -> IngestOut:
    # A route on the hot path of every integration: the body is read here, on the event loop,
    # before any transaction starts (on SQLite a write transaction holds the database lock, which
    # must not wait on a slow upload; the credential was verified before, by EdgeGuard); then one
    # worker thread authenticates, parses and ingests (the dependencies' way would hop threads
    # once per dependency).
    batch = await read_event_batch(request)
    return await anyio.to_thread.run_sync(_post_events, request, batch, platform)


def _post_events(request: Request, batch: EventBatch, platform: str) -> IngestOut:
    try:
        parsed = parse_events(batch.events)
    except InvalidInput as exc:
        raise batch.at_line(exc) from None
    bearer = bearer_token(request)
    token_hash = hash_secret(bearer) if bearer is not None else None
    org_id = known_owner(token_hash) if token_hash is not None else None
    scope = None
    if org_id is None:
        # A credential this process has not seen yet (or a console session): authenticated
        # here, in a transaction of its own. A token seen before goes straight to its
        # organisation's lane, and the ingesting transaction verifies it.
        with unit_of_work() as db:
            scope = authenticate(request, db, None, bearer, request.cookies.get(SESSION_COOKIE)).scope
            check_ingest_scope(scope)
        org_id, token_hash = scope.org_id, None

    def audit(poster: Scope, stored: int, duplicates: int) -> dict[str, Any]:
        return entry(
            org_id=poster.org_id,
            staff_id=poster.staff_id,
            action="events.ingest",
            target_type="events",
            target_id=platform,
            detail={"platform": platform, "stored": stored, "duplicates": duplicates},
            request=request,
        )

    try:
        result = coalesce.post_events(org_id, platform, parsed, audit, scope=scope, token_hash=token_hash)
    except InvalidInput as exc:
        raise batch.at_line(exc) from None
    return IngestOut(stored=result.stored, duplicates=result.duplicates)


class EventOut(BaseModel):
    """One event of the log (message text is never part of it)."""

    id: int
    external_id: str
    kind: str = Field(description="member.joined, message.posted…")
    ts: datetime
    day: int = Field(description="YYYYMMDD in the organisation's time zone")
    group_id: int | None
    group_external_id: str | None
    member_id: int | None
    member_external_id: str | None
    msg_type: str | None
    length: int | None
    scene: str | None
    channel_id: int | None
    inviter_id: int | None
    reason: str | None
    message: str | None = Field(description="The platform's message id (message.posted, message.deleted)")
    source: str


def _event_out(event: Event, group_ext: str | None, member_ext: str | None) -> EventOut:
    try:
        kind = KIND_NAMES[EventKind(event.kind)]
    except ValueError:
        kind = str(event.kind)
    return EventOut(
        id=event.id,
        external_id=event.external_id,
        kind=kind,
        ts=event.ts,
        day=event.day,
        group_id=event.group_id,
        group_external_id=group_ext,
        member_id=event.member_id,
        member_external_id=member_ext,
        msg_type=MsgType(event.msg_type).name.lower() if event.msg_type is not None else None,
        length=event.length,
        scene=event.scene,
        channel_id=event.channel_id,
        inviter_id=event.inviter_id,
        reason=event.reason,
        message=event.message_ref,
        source=event.source,
    )


@router.get("", response_model=CursorPage[EventOut], summary="Read the event log of your scope, oldest first")
def list_events(
    db: DbSession,
    scope: CurrentScope,
    group: Annotated[Id | None, Query(description="Group id")] = None,
    member: Annotated[Id | None, Query(description="Member id")] = None,
    kind: Annotated[str | None, Query(description="e.g. member.joined")] = None,
    since: Annotated[datetime | None, Query(description="Events at or after this instant (with offset)")] = None,
    until: Annotated[datetime | None, Query(description="Events before this instant (with offset)")] = None,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> CursorPage[EventOut]:
    logged = log.list_events(
        db,
        scope,
        group_id=group,
        member_id=member,
        kind=kind,
        since=since,
        until=until,
        after_id=cursor,
        limit=limit,
    )
    items = [_event_out(e.event, e.group_external_id, e.member_external_id) for e in logged]
    return CursorPage[EventOut](items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/{event_id}", response_model=EventOut, summary="One event")
def get_event(event_id: Annotated[BigId, Path(description="Event id")], db: DbSession, scope: CurrentScope) -> EventOut:
    logged = log.get_event(db, scope, event_id)
    return _event_out(logged.event, logged.group_external_id, logged.member_external_id)

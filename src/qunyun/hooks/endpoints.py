"""``/hooks/{platform}/{connection_id}``: where platforms deliver webhooks (outside /api/v1).

No login: the request's signature (checked by the platform's verifier against the connection's
secret) is its credential. The edge still caps the body and admits it like any request. An
accepted request is stored and answered 200 at once; its processing is a job. Refusals are 4xx
JSON ``{"code", "message"}``, counted per connection and reason and logged without content.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from qunyun.api.errors import api_language
from qunyun.api.pagination import INT32_MAX
from qunyun.auth.deps import DbSession
from qunyun.config import get_settings
from qunyun.connectors.registry import config_of
from qunyun.connectors.webhooks import RejectReason, WebhookRejected, WebhookRequest, verify_request
from qunyun.errors import QunyunError
from qunyun.hooks import jobs  # noqa: F401  (registers hooks.process: enqueue validates its payload)
from qunyun.hooks.service import receive, record_rejection
from qunyun.locale import Msg
from qunyun.models import Connection, ConnectionStatus
from qunyun.timeutil import utcnow

log = logging.getLogger(__name__)

router = APIRouter(prefix="/hooks", tags=["webhooks"])

_ID = re.compile(r"[1-9][0-9]{0,9}")


async def raw_body(request: Request) -> bytes:
    """The request body as sent (signatures are over these bytes); the edge has capped it."""
    return await request.body()


Body = Annotated[bytes, Depends(raw_body)]


class MethodNotAllowed(QunyunError):
    status_code = 405
    code = "method_not_allowed"


def _connection(db: Session, platform: str, raw_id: str) -> Connection | None:
    if not _ID.fullmatch(raw_id) or int(raw_id) > INT32_MAX:
        return None
    connection = db.get(Connection, int(raw_id))
    if connection is None or connection.platform != platform:
        return None
    return connection


def _refuse(
    db: Session, request: Request, connection: Connection | None, error: WebhookRejected, size: int
) -> Response:
    record_rejection(db, connection, error.reason, now=utcnow())
    log.warning(
        "webhook refused: connection=%s reason=%s size=%d",
        connection.id if connection is not None else "-",
        error.reason,
        size,
    )
    return JSONResponse(error.as_dict(api_language(request)), status_code=error.status_code)


def _handle(db: Session, request: Request, platform: str, connection_id: str, body: bytes, path: str = "") -> Response:
    connection = _connection(db, platform, connection_id)
    if connection is None:
        return _refuse(db, request, None, WebhookRejected(RejectReason.NOT_FOUND), len(body))
    if connection.status == ConnectionStatus.DISABLED:
        return _refuse(db, request, connection, WebhookRejected(RejectReason.DISABLED), len(body))
    inbound = WebhookRequest(
        method=request.method,
        headers={name.lower(): value for name, value in request.headers.items()},
        query=dict(request.query_params),
        body=body,
        path=path,
    )
    now = utcnow()
    try:
        verified = verify_request(inbound, config_of(connection), now, get_settings().webhook_max_age)
    except WebhookRejected as error:
        return _refuse(db, request, connection, error, len(body))
    if request.method == "GET":
        if verified.reply is None:
            refusal = MethodNotAllowed(Msg("hooks.get_not_handshake"))
            return JSONResponse(refusal.as_dict(api_language(request)), status_code=refusal.status_code)
        reply = verified.reply
        return Response(reply.body, status_code=reply.status, media_type=reply.media_type)
    receipt = receive(db, connection, verified, body, now=now)
    log.info(
        "webhook %s: connection=%s delivery=%s size=%d",
        "received" if receipt.created else "redelivered",
        connection.id,
        receipt.delivery_id,
        len(body),
    )
    if verified.reply is not None:
        reply = verified.reply
        return Response(reply.body, status_code=reply.status, media_type=reply.media_type)
    return JSONResponse({"status": "received" if receipt.created else "duplicate"})


@router.post("/{platform}/{connection_id}", summary="Receive a platform's webhook (signed; no login)")
def receive_webhook(platform: str, connection_id: str, request: Request, body: Body, db: DbSession) -> Response:
    return _handle(db, request, platform, connection_id, body)


@router.get("/{platform}/{connection_id}", summary="A platform's webhook handshake (signed; no login)")
def webhook_handshake(platform: str, connection_id: str, request: Request, db: DbSession) -> Response:
    return _handle(db, request, platform, connection_id, b"")


@router.put(
    "/{platform}/{connection_id}/{subpath:path}",
    summary="A platform's PUT under the webhook's URL (Matrix application-service transactions)",
)
def receive_webhook_put(
    platform: str, connection_id: str, subpath: str, request: Request, body: Body, db: DbSession
) -> Response:
    return _handle(db, request, platform, connection_id, body, "/" + subpath)


@router.post(
    "/{platform}/{connection_id}/{subpath:path}",
    summary="A platform's POST under the webhook's URL (a Matrix homeserver's ping)",
)
def receive_webhook_post(
    platform: str, connection_id: str, subpath: str, request: Request, body: Body, db: DbSession
) -> Response:
    return _handle(db, request, platform, connection_id, body, "/" + subpath)

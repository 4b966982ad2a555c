"""The webhook inbox (leads only: payloads are personal data): deliveries newest first, filtered by
status and connection; refusals per connection and reason; a delivery's payload, and replay of a
failed one."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from qunyun.auth.csrf import check_csrf, session_csrf_token
from qunyun.auth.scope import require_lead
from qunyun.console.web import ConsolePage, Form, int_param, path_id
from qunyun.hooks import jobs  # noqa: F401  (registers hooks.process: a replay enqueues it)
from qunyun.hooks.service import connection_names, get_delivery, list_deliveries, rejection_counts, replay_delivery
from qunyun.locale import Msg
from qunyun.models import DeliveryStatus
from qunyun.timeutil import utcnow

router = APIRouter()

PAGE_SIZE = 50
STATUSES = tuple(s.value for s in DeliveryStatus)


@router.get("/inbox")
def inbox(page: ConsolePage) -> Response:
    require_lead(page.scope)
    params = page.request.query_params
    status = params.get("status", "")
    status = status if status in STATUSES else ""
    connection = int_param(params.get("connection"))
    names = connection_names(page.db, page.scope.org_id)
    _, total = list_deliveries(page.db, page.scope, status=status or None, connection_id=connection, limit=0)
    paging = page.paging(total, PAGE_SIZE)
    deliveries, _ = list_deliveries(
        page.db,
        page.scope,
        status=status or None,
        connection_id=connection,
        limit=paging.size,
        offset=paging.offset,
    )
    t = page.t
    return page.render(
        "inbox.html",
        "inbox",
        {
            "deliveries": deliveries,
            "total": total,
            "paging": paging,
            "names": names,
            "rejections": rejection_counts(page.db, page.scope, now=utcnow()),
            "filters": {"status": status or None, "connection": connection},
            "options": {
                "statuses": [(s, t(f"inbox.status_{s}")) for s in STATUSES],
                "connections": list(names.items()),
            },
        },
    )


@router.get("/inbox/{delivery_id}")
def delivery_detail(page: ConsolePage, delivery_id: str) -> Response:
    require_lead(page.scope)
    delivery = get_delivery(page.db, page.scope, path_id(delivery_id, Msg("hooks.no_delivery", id=delivery_id)))
    payload = None
    if delivery.payload is not None:
        payload = json.dumps(delivery.payload, ensure_ascii=False, indent=2, sort_keys=True)
    return page.render(
        "inbox_delivery.html",
        "inbox",
        {
            "delivery": delivery,
            "connection_name": connection_names(page.db, page.scope.org_id).get(delivery.connection_id, ""),
            "payload": payload,
            "notice": page.request.query_params.get("done", ""),
        },
    )


@router.post("/inbox/{delivery_id}/replay")
def delivery_replay(page: ConsolePage, delivery_id: str, form: Form) -> Response:
    require_lead(page.scope)
    token = form.get("csrf_token")
    check_csrf(session_csrf_token(page.principal.token.id), token if isinstance(token, str) else None)
    number = path_id(delivery_id, Msg("hooks.no_delivery", id=delivery_id))
    replay_delivery(page.db, page.scope, number, request=page.request)
    return RedirectResponse(f"/inbox/{number}?done=replayed", status_code=303)

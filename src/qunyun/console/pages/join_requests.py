"""Join requests (Telegram links that create join requests): the pending ones of the viewer's
groups with approve / decline, or all of them with their decision (livecodes/join_requests.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from qunyun.console.web import ConsolePage, Form, check_form, path_id
from qunyun.livecodes import join_requests
from qunyun.locale import Msg

router = APIRouter()

PAGE_SIZE = 100


@router.get("/join-requests")
def join_request_list(page: ConsolePage) -> Response:
    show_all = page.request.query_params.get("all") == "1"
    rows = join_requests.list_requests(
        page.db, page.scope, status=None if show_all else join_requests.PENDING, limit=PAGE_SIZE
    )
    groups, codes = join_requests.names_for(page.db, page.scope, rows)
    return page.render(
        "join_requests.html",
        "livecodes",
        {"rows": rows, "groups": groups, "codes": codes, "show_all": show_all, "can_write": page.scope.can_write},
    )


def _decide(page: ConsolePage, request_id: str, form: Form, approve: bool) -> Response:
    check_form(page, form)
    number = path_id(request_id, Msg("err.join_request.not_found", id=request_id))
    join_requests.decide(page.db, page.scope, number, approve=approve, request=page.request)
    return RedirectResponse("/join-requests", status_code=303)


@router.post("/join-requests/{request_id}/approve")
def join_request_approve(page: ConsolePage, request_id: str, form: Form) -> Response:
    return _decide(page, request_id, form, True)


@router.post("/join-requests/{request_id}/decline")
def join_request_decline(page: ConsolePage, request_id: str, form: Form) -> Response:
    return _decide(page, request_id, form, False)

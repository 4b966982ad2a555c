"""Join requests (Telegram links that create join requests): the pending ones of the viewer's
groups with approve / decline, or all of them with their decision (livecodes/join_requests.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from qunyun.console.web import ConsolePage, Form, check_form, path_id
from qunyun.livecodes import join_requests
from qunyun.locale import Msg
from qunyun.models import Group, LiveCode

router = APIRouter()

PAGE_SIZE = 100


@router.get("/join-requests")
def join_request_list(page: ConsolePage) -> Response:
    show_all = page.request.query_params.get("all") == "1"
    rows = join_requests.list_requests(
        page.db, page.scope, status=None if show_all else join_requests.PENDING, limit=PAGE_SIZE
    )
    group_ids = {r.group_id for r in rows if r.group_id is not None}
    code_ids = {r.live_code_id for r in rows if r.live_code_id is not None}
    groups = (
        dict(page.db.execute(select(Group.id, Group.name).where(Group.id.in_(group_ids))).all()) if group_ids else {}
    )
    codes = (
        dict(page.db.execute(select(LiveCode.id, LiveCode.name).where(LiveCode.id.in_(code_ids))).all())
        if code_ids
        else {}
    )
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

"""A community's new-member benefit: its playbook's coupon pool (codes to give, given, missed,
the latest grants with their codes masked) and, for a lead, the import of codes from a file or
pasted text."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from qunyun.api.pagination import Id
from qunyun.auth.csrf import check_csrf, session_csrf_token
from qunyun.auth.scope import require_lead
from qunyun.community.service import playbook_of, require_community
from qunyun.console.web import ConsolePage
from qunyun.errors import InvalidInput
from qunyun.models import Community
from qunyun.onboarding.benefits import import_codes, pool_status

router = APIRouter()
# What the edge lets a console form carry is 1 MiB; a file of codes is read up to that.
MAX_FILE_BYTES = 1024 * 1024


class CodesForm:
    """The import form as submitted: the file's bytes (else the pasted text) and the token."""

    def __init__(self, data: bytes, csrf_token: str | None) -> None:
        self.data = data
        self.csrf_token = csrf_token


async def codes_form(request: Request) -> CodesForm:
    form = await request.form(max_files=1, max_fields=4)
    try:
        data = b""
        upload = form.get("file")
        if isinstance(upload, UploadFile) and (upload.filename or upload.size):
            data = await upload.read(MAX_FILE_BYTES + 1)
        if not data.strip():
            pasted = form.get("codes")
            data = pasted.encode() if isinstance(pasted, str) else b""
        token = form.get("csrf_token")
        return CodesForm(data, token if isinstance(token, str) else None)
    finally:
        await form.close()


def _page(
    page: ConsolePage, community: Community, *, error: str = "", status_code: int = 200, pasted: str = ""
) -> Response:
    playbook = playbook_of(page.db, community)
    pool = pool_status(page.db, page.scope, playbook.id) if playbook is not None else None
    imported = {k: page.request.query_params.get(k, "") for k in ("added", "duplicates", "free")}
    return page.render(
        "onboarding_benefit.html",
        "communities",
        {
            "community": community,
            "playbook": playbook,
            "pool": pool,
            "error": error,
            "imported": imported if all(v.isdigit() for v in imported.values()) else None,
            "pasted": pasted,
        },
        status_code=status_code,
    )


@router.get("/communities/{community_id}/benefit")
def benefit(page: ConsolePage, community_id: Id) -> Response:
    return _page(page, require_community(page.db, page.scope, community_id))


@router.post("/communities/{community_id}/benefit")
def benefit_import(page: ConsolePage, community_id: Id, form: Annotated[CodesForm, Depends(codes_form)]) -> Response:
    check_csrf(session_csrf_token(page.principal.token.id), form.csrf_token)
    community = require_community(page.db, page.scope, community_id)
    require_lead(page.scope)
    playbook = playbook_of(page.db, community)
    if playbook is None:
        return _page(page, community, status_code=404)
    try:
        report = import_codes(page.db, page.scope, playbook.id, form.data)
    except InvalidInput as exc:
        page.db.rollback()
        pasted = form.data.decode(errors="replace") if len(form.data) < 20_000 else ""
        return _page(page, community, error=exc.localized(page.t.lang), status_code=exc.status_code, pasted=pasted)
    return RedirectResponse(
        f"/communities/{community.id}/benefit?added={report.added}&duplicates={report.duplicates}&free={report.free}",
        status_code=303,
    )

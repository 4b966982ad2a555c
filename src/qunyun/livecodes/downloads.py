"""Downloads of a live code for staff in the console: its QR as PNG or SVG, a poster (PNG), and
the group QR images uploaded for its pool.

Whoever sees a code may download its files (the service's scope: 404 otherwise). The QR encodes
the code's absolute scan URL on the host the console was reached at, with ``?r=REGION`` when
asked for (a poster per city for the ``region`` policy). The poster's title, subtitle and hook
default to the code's name, the organisation's name and the code's hook text, and can be changed
for one download (``?title=&subtitle=&hook=``) without touching the code.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from qunyun.api.pagination import Id
from qunyun.console.web import ConsolePage, page_language
from qunyun.errors import InvalidInput, NotFound
from qunyun.livecodes import posters, service
from qunyun.livecodes.storage import qr_file
from qunyun.locale import Msg
from qunyun.models import LiveCode

router = APIRouter(include_in_schema=False)

MAX_TITLE = 60
MAX_SUBTITLE = 60
MAX_HOOK = 300
MAX_REGION = 64
# The files are the organisation's, fetched by a logged-in person: their browser may keep them a
# little, nothing in between may.
PRIVATE_CACHE = "private, max-age=300"

Scale = Annotated[int, Query(ge=1, le=posters.MAX_SCALE)]
Region = Annotated[str, Query(max_length=MAX_REGION)]


def scan_url(page: ConsolePage, row: LiveCode, region: str = "") -> str:
    """The absolute URL a printed QR of ``row`` opens: ``/c/{code}`` on the host the console was
    reached at, ``?r=`` for a region."""
    url = service.public_url(row.code, str(page.request.base_url))
    region = region.strip()
    return f"{url}?{urlencode({'r': region})}" if region else url


def _attachment(data: bytes, media_type: str, filename: str) -> Response:
    stem, _, extension = filename.rpartition(".")
    ascii_name = "".join(c for c in stem if c.isascii()).rstrip("-") + "." + extension
    return Response(
        data,
        media_type=media_type,
        headers={
            # RFC 6266 / 5987: an ASCII name for old clients, the exact one for the others.
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": PRIVATE_CACHE,
        },
    )


def _suffix(region: str) -> str:
    # The region goes into the file name as typed (Chinese included) but never a path separator.
    cleaned = "".join(c for c in region.strip() if c.isalnum() or c in "-_")
    return f"-{cleaned}" if cleaned else ""


@router.get("/livecodes/{live_code_id}/qr.png")
def qr_png(page: ConsolePage, live_code_id: Id, scale: Scale = posters.DEFAULT_SCALE, r: Region = "") -> Response:
    row = service.get_live_code(page.db, page.scope, live_code_id)
    data = posters.qr_png(scan_url(page, row, r), scale=scale)
    return _attachment(data, "image/png", f"livecode-{row.code}{_suffix(r)}.png")


@router.get("/livecodes/{live_code_id}/qr.svg")
def qr_svg(page: ConsolePage, live_code_id: Id, r: Region = "") -> Response:
    row = service.get_live_code(page.db, page.scope, live_code_id)
    data = posters.qr_svg(scan_url(page, row, r))
    return _attachment(data, "image/svg+xml", f"livecode-{row.code}{_suffix(r)}.svg")


def _text(value: str | None, default: str, field: str, limit: int) -> str:
    """What the download asked for (422 naming ``field`` past ``limit``), else the code's own
    text, cut to the limit (the poster ends it with "…" where it does not fit)."""
    if value is None or not value.strip():
        return default.strip()[:limit]
    if len(value.strip()) > limit:
        raise InvalidInput(Msg("err.poster.too_long", field=field, limit=limit), field=field)
    return value.strip()


@router.get("/livecodes/{live_code_id}/poster.png")
def poster_png(
    page: ConsolePage,
    live_code_id: Id,
    title: str | None = None,
    subtitle: str | None = None,
    hook: str | None = None,
    r: Region = "",
) -> Response:
    row = service.get_live_code(page.db, page.scope, live_code_id)
    data = posters.poster_png(
        _text(title, row.name, "title", MAX_TITLE),
        _text(hook, row.hook_text, "hook", MAX_HOOK),
        scan_url(page, row, r),
        subtitle=_text(subtitle, page.organisation.name, "subtitle", MAX_SUBTITLE) or None,
        lang=page_language(page.request, page.staff),
    )
    return _attachment(data, "image/png", f"poster-{row.code}{_suffix(r)}.png")


def _image(relative: str | None, not_found: Msg) -> Response:
    found = qr_file(relative) if relative else None
    if found is None:
        raise NotFound(not_found, field="image_id")
    path, media_type = found
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, no-store"})


@router.get("/livecodes/{live_code_id}/fallback-image")
def fallback_image(page: ConsolePage, live_code_id: Id) -> Response:
    """The staff QR image a code falls back to."""
    row = service.get_live_code(page.db, page.scope, live_code_id)
    return _image(row.fallback_image, Msg("err.livecode.not_found", id=live_code_id))


@router.get("/livecodes/groups/{group_id}/qr-images/{image_id}")
def group_qr_image(page: ConsolePage, group_id: Id, image_id: Id) -> Response:
    """A group QR image as uploaded (for the pool's thumbnails): staff who see the group."""
    image = next((i for i in service.qr_images(page.db, page.scope, group_id) if i.id == image_id), None)
    return _image(image.path if image is not None else None, Msg("err.livecode.no_image", id=image_id))

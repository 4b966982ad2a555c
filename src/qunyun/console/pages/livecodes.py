"""Live codes (活码) in the console: the list (scans, visitors, joins, fallbacks, paused); a code's
page (its funnel, its pool with scan limits, group QR images and their expiry, pause, the
downloads); the create and edit forms; the pool's and the images' forms.

Who may do what is the service's to decide (livecodes/service.py): leads manage every code,
other writers the codes whose whole pool is theirs, and anyone who may write a group uploads its
QR image; analysts read. The page only hides the forms a reader could not use.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from qunyun.acquisition.report import channel_report
from qunyun.acquisition.service import list_channels
from qunyun.api.errors import validation_error
from qunyun.api.pagination import Id
from qunyun.connections.service import list_connections
from qunyun.console.web import MAX_ID, ConsolePage, Page, check_form, int_param
from qunyun.errors import Conflict, Forbidden, InvalidInput, NotFound, QunyunError
from qunyun.groups.service import GroupFilter, group_rows
from qunyun.livecodes import downloads, service
from qunyun.livecodes.schemas import LiveCodeCreate, LiveCodeUpdate, PoolEntryIn, PoolEntryUpdate
from qunyun.livecodes.service import PoolItem
from qunyun.locale import Msg
from qunyun.models import LiveCode, RoutingPolicy
from qunyun.tasks.storage import MAX_IMAGE_BYTES
from qunyun.timeutil import utcnow

router = APIRouter()
router.include_router(downloads.router)

PAGE_SIZE = 50
MAX_GROUP_CHOICES = 500
MAX_CHANNELS = 500
FUNNEL_DAYS = 30
EXPIRY_CHOICES = (1, 2, 3, 5, 7)  # days a group QR image is good for (WeChat's: 7)
FORM_FIELDS = 2 * MAX_GROUP_CHOICES + 50
# The ?done= notices a code's page shows after a form (anything else in the URL shows none).
NOTICES = frozenset(
    {
        "created",
        "saved",
        "paused",
        "resumed",
        "group_added",
        "group_updated",
        "group_removed",
        "qr_uploaded",
        "qr_withdrawn",
        "fallback_image",
    }
)


async def form_data(request: Request) -> AsyncIterator[FormData]:
    form = await request.form(max_files=1, max_fields=FORM_FIELDS)
    try:
        yield form
    finally:
        await form.close()  # an uploaded file's spooled temporary file


Form = Annotated[FormData, Depends(form_data)]


async def image_bytes(form: Form) -> bytes | None:
    """The bytes of the file chosen in the form's ``image`` field (None when none was chosen),
    at most one more than the image limit: the service refuses a larger one naming the field."""
    upload = form.get("image")
    # A form submitted without choosing a file still sends an empty, nameless part.
    if not isinstance(upload, UploadFile) or not (upload.filename or upload.size):
        return None
    return await upload.read(MAX_IMAGE_BYTES + 1)


Image = Annotated[bytes | None, Depends(image_bytes)]


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _number(form: FormData, key: str, field: str | None = None, *, maximum: int = 100_000) -> int | None:
    """A whole number typed into ``key`` (blank: None); anything else is 422 naming the field."""
    text = _text(form, key)
    if not text:
        return None
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)) or int(text) > maximum:
        name = field or key
        raise InvalidInput(
            Msg("api.invalid_field", field=name, problem=Msg("lcp.err.whole_number", max=maximum)), field=name
        )
    return int(text)


def _invalid(exc: ValidationError) -> QunyunError:
    """A pydantic error of a form's values as the API reports it: 422 naming the first field."""
    return validation_error(RequestValidationError(exc.errors()))


# --- the list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeRow:
    live_code: LiveCode
    channel: str | None
    groups: int
    scans: int
    visitors: int
    joined: int
    fallback: int


@router.get("/livecodes")
def livecode_list(page: ConsolePage) -> Response:
    db, scope = page.db, page.scope
    _, total = service.list_live_codes(db, scope, limit=0)
    paging = page.paging(total, PAGE_SIZE)
    codes, total = service.list_live_codes(db, scope, limit=paging.size, offset=paging.offset)
    figures = service.counts(db, [c.id for c in codes])
    channels = _channel_names(page)
    pools = service.list_figures(db, scope, [c.id for c in codes])
    rows = [
        CodeRow(
            live_code=code,
            channel=channels.get(code.channel_id) if code.channel_id is not None else None,
            groups=pools[code.id][0],
            scans=figures[code.id].scans,
            visitors=figures[code.id].visitors,
            joined=pools[code.id][1],
            fallback=figures[code.id].fallback,
        )
        for code in codes
    ]
    return page.render(
        "livecodes.html",
        "livecodes",
        {"rows": rows, "total": total, "paging": paging},
    )


def _channel_names(page: Page) -> dict[int, str]:
    channels, _ = list_channels(page.db, page.scope, limit=MAX_CHANNELS)
    return {c.id: c.name for c in channels}


# --- create and edit (before /livecodes/{id}, where "new" is no id) ---------------------------------


def _group_choices(page: Page) -> list[Any]:
    """The active groups the reader sees, by name (pinyin order), for the pool."""
    return group_rows(page.db, page.scope, GroupFilter(status="active"), sort="name", limit=MAX_GROUP_CHOICES)


def _threshold_from_form(form: FormData) -> dict[str, Any] | None:
    """The entry threshold as entered: the JSON of an advanced one, or the one question of the
    simple form (its text, its choices and the accepted answers one per line, the refusal)."""
    if "threshold_json" in form:
        text = _text(form, "threshold_json")
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(Msg("lcp.err.threshold_json"), field="threshold") from exc
        return value if isinstance(value, dict) else {"questions": value}
    question = _text(form, "threshold_question")
    if not question:
        return None
    # The stored question's key is kept: the answers on earlier scans are filed under it.
    key = _text(form, "threshold_key") or "q1"
    entry: dict[str, Any] = {"key": key, "text": question}
    choices = [line.strip() for line in _text(form, "threshold_choices").splitlines() if line.strip()]
    accept = [line.strip() for line in _text(form, "threshold_accept").splitlines() if line.strip()]
    if choices:
        entry["choices"] = choices
    if accept:
        entry["accept"] = accept
    threshold: dict[str, Any] = {"questions": [entry]}
    if refusal := _text(form, "threshold_refusal"):
        threshold["refusal"] = refusal
    return threshold


def _simple_threshold(threshold: dict[str, Any] | None) -> bool:
    """Whether the simple form can show ``threshold`` (one question, no region routing)."""
    if not threshold:
        return True
    questions = threshold.get("questions") or []
    return len(questions) == 1 and not questions[0].get("region")


def _settings(form: FormData, *, lead: bool) -> dict[str, Any]:
    """The code's settings as submitted (validated by the schema after)."""
    hours = _number(form, "qr_alert_hours", "qr_alert_minutes", maximum=30 * 24)
    values: dict[str, Any] = {
        "name": _text(form, "name"),
        "channel_id": _number(form, "channel_id", maximum=MAX_ID),
        "policy": _text(form, "policy") or RoutingPolicy.FILL.value,
        "default_limit": _number(form, "default_limit"),
        "hook_text": _text(form, "hook_text"),
        "fallback_url": _text(form, "fallback_url"),
        "fallback_text": _text(form, "fallback_text"),
        "threshold": _threshold_from_form(form),
        "qr_alert_minutes": hours * 60 if hours is not None else 24 * 60,
        "join_request_policy": _text(form, "join_request_policy") or "direct",
    }
    if lead:  # connections are the lead's to see
        values["connection_id"] = _number(form, "connection_id", maximum=MAX_ID)
    return values


def _form_values(row: LiveCode | None) -> dict[str, Any]:
    """What the form shows for ``row`` (or a new code)."""
    if row is None:
        return {"policy": RoutingPolicy.FILL.value, "qr_alert_hours": "24", "join_request_policy": "direct"}
    values: dict[str, Any] = {
        "name": row.name,
        "channel_id": str(row.channel_id or ""),
        "connection_id": str(row.connection_id or ""),
        "policy": row.policy,
        "default_limit": str(row.default_limit or ""),
        "hook_text": row.hook_text,
        "fallback_url": row.fallback_url,
        "fallback_text": row.fallback_text,
        "qr_alert_hours": str(row.qr_alert_minutes // 60),
        "join_request_policy": row.join_request_policy,
    }
    threshold = row.threshold
    if threshold and _simple_threshold(threshold):
        question = threshold["questions"][0]
        values.update(
            threshold_key=question.get("key", "q1"),
            threshold_question=question.get("text", ""),
            threshold_choices="\n".join(question.get("choices") or []),
            threshold_accept="\n".join(question.get("accept") or []),
            threshold_refusal=threshold.get("refusal", ""),
        )
    elif threshold:
        values["threshold_json"] = json.dumps(threshold, ensure_ascii=False, indent=2)
    return values


def _form_page(
    page: Page,
    row: LiveCode | None,
    values: dict[str, Any],
    *,
    picked: dict[int, str] | None = None,
    error: QunyunError | None = None,
) -> Response:
    channels, _ = list_channels(page.db, page.scope, limit=MAX_CHANNELS)
    connections = list_connections(page.db, page.scope) if page.scope.is_lead else []
    return page.render(
        "livecodes_form.html",
        "livecodes",
        {
            "code": row,
            "values": values,
            "channels": channels,
            "connections": connections,
            "policies": [p.value for p in RoutingPolicy],
            # The pool is chosen when the code is made; afterwards on the code's page.
            "groups": _group_choices(page) if row is None else [],
            "picked": picked or {},
            "advanced_threshold": "threshold_json" in values,
            "error": error.localized(page.t.lang) if error is not None else "",
            "error_field": (error.field or "") if error is not None else "",
        },
        status_code=error.status_code if error is not None else 200,
    )


def _submitted(form: FormData) -> dict[str, Any]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/livecodes/new")
def livecode_new(page: ConsolePage) -> Response:
    if not page.scope.can_write:
        raise Forbidden(Msg("api.read_only"))
    return _form_page(page, None, _form_values(None))


@router.post("/livecodes/new")
def livecode_create(page: ConsolePage, form: Form) -> Response:
    check_form(page, form)
    if not page.scope.can_write:
        raise Forbidden(Msg("api.read_only"))
    picked: dict[int, str] = {}
    for value in form.getlist("group"):
        # An id past the column's range names no group: clamped, it is refused as not found.
        if isinstance(value, str) and (group_id := int_param(value)) is not None:
            picked[group_id] = _text(form, f"limit.{value.strip()}")
    try:
        values = _settings(form, lead=page.scope.is_lead)
        try:
            data = LiveCodeCreate.model_validate({**values, "group_ids": list(picked)})
        except ValidationError as exc:
            raise _invalid(exc) from exc
        row = service.create_live_code(page.db, page.scope, data, request=page.request)
        for group_id, limit in picked.items():
            if limit:  # else the default: the code's, or the group's room
                try:
                    entry = PoolEntryUpdate(scan_limit=_number(form, f"limit.{group_id}", "scan_limit"))
                except ValidationError as exc:
                    raise _invalid(exc) from exc
                service.update_group(page.db, page.scope, row.id, group_id, entry.model_dump(exclude_none=True))
    except (InvalidInput, Conflict, NotFound) as exc:
        page.db.rollback()
        return _form_page(page, None, _submitted(form), picked=picked, error=exc)
    return RedirectResponse(f"/livecodes/{row.id}?done=created", status_code=303)


@router.get("/livecodes/{live_code_id}/edit")
def livecode_edit(page: ConsolePage, live_code_id: Id) -> Response:
    row = service.get_live_code(page.db, page.scope, live_code_id, write=True)
    return _form_page(page, row, _form_values(row))


@router.post("/livecodes/{live_code_id}/edit")
def livecode_edit_submit(page: ConsolePage, live_code_id: Id, form: Form) -> Response:
    check_form(page, form)
    row = service.get_live_code(page.db, page.scope, live_code_id, write=True)
    try:
        values = _settings(form, lead=page.scope.is_lead)
        if values["qr_alert_minutes"] == row.qr_alert_minutes // 60 * 60:
            values["qr_alert_minutes"] = row.qr_alert_minutes  # the form shows whole hours
        try:
            changes = LiveCodeUpdate.model_validate(values).model_dump(include=set(values))
        except ValidationError as exc:
            raise _invalid(exc) from exc
        service.update_live_code(page.db, page.scope, row.id, changes, request=page.request)
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        return _form_page(page, row, _submitted(form), error=exc)
    return RedirectResponse(f"/livecodes/{row.id}?done=saved", status_code=303)


# --- a code's page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolRow:
    """A pool entry as the page shows it, with what needs attention."""

    item: PoolItem
    fill: float  # routed / limit
    expires_soon: bool  # the image shown now expires within the alert time
    no_way_in: bool  # neither an invite link nor a current image: visitors are not sent here

    @property
    def full(self) -> bool:
        return self.item.entry.routed >= self.item.entry.scan_limit


def _pool_rows(row: LiveCode, items: list[PoolItem], now: datetime) -> list[PoolRow]:
    alert = timedelta(minutes=row.qr_alert_minutes)
    out = []
    for item in items:
        image = item.qr_image
        out.append(
            PoolRow(
                item=item,
                fill=item.entry.routed / item.entry.scan_limit if item.entry.scan_limit else 1.0,
                expires_soon=image is not None and image.expires_at - now <= alert,
                no_way_in=item.entry.active and item.invite_link is None and image is None,
            )
        )
    return out


def _may_manage(page: Page, live_code_id: int) -> bool:
    """Whether the reader may change the code itself (settings, pool, pause)."""
    try:
        service.get_live_code(page.db, page.scope, live_code_id, write=True)
    except Forbidden:
        return False
    return True


def _funnel(page: Page, row: LiveCode) -> dict[str, Any]:
    """The code's funnel over the last FUNNEL_DAYS days (the channel report's definitions):
    scanned (distinct visitors) → joined → active within 7 days → converted (paying)."""
    today = page.today()
    first = today - timedelta(days=FUNNEL_DAYS - 1)
    report = channel_report(page.db, page.scope, first, today, channel_id=row.channel_id, by_day=True)
    figures = next((r for r in report.live_codes if r.live_code_id == row.id), None)
    stages = []
    if figures is not None:
        values = [
            ("scanned", figures.visitors),
            ("joined", figures.joins),
            ("active", figures.actives_7d),
            ("converted", figures.paying),
        ]
        top = max(values[0][1], 1)
        previous: int | None = None
        for stage, value in values:
            rate = value / previous if previous else None
            stages.append({"stage": stage, "count": value, "share": value / top, "rate": rate})
            previous = value
    return {"from": first, "to": today, "figures": figures, "stages": stages}


@router.get("/livecodes/{live_code_id}")
def livecode_detail(page: ConsolePage, live_code_id: Id) -> Response:
    return _detail(page, live_code_id)


def _detail(
    page: Page, live_code_id: int, *, error: QunyunError | None = None, error_group: int | None = None
) -> Response:
    db, scope = page.db, page.scope
    row = service.get_live_code(db, scope, live_code_id)
    now = utcnow()
    items = service.pool(db, scope, row.id, now=now)
    figures = service.counts(db, [row.id])[row.id]
    in_pool = {item.group.id for item in items if item.entry.active}
    manage = _may_manage(page, row.id)
    addable = [g for g in _group_choices(page) if g.group.id not in in_pool] if manage else []
    regions = sorted({item.entry.region for item in items if item.entry.region})
    channels = _channel_names(page)
    return page.render(
        "livecodes_detail.html",
        "livecodes",
        {
            "code": row,
            "scan_url": downloads.scan_url(page, row),
            "channel": channels.get(row.channel_id) if row.channel_id is not None else None,
            "pool": _pool_rows(row, items, now),
            "counts": figures,
            "routed": sum(item.entry.routed for item in items),
            "joined": sum(item.joined for item in items),
            "funnel": _funnel(page, row),
            "manage": manage,
            "addable": addable,
            "regions": regions,
            "expiry_choices": EXPIRY_CHOICES,
            "default_expiry": service.QR_DEFAULT_DAYS,
            "threshold": row.threshold,
            "error": error.localized(page.t.lang) if error is not None else "",
            "error_field": (error.field or "") if error is not None else "",
            "error_group": error_group,
            "notice": notice if (notice := page.request.query_params.get("done", "")) in NOTICES else "",
        },
        status_code=error.status_code if error is not None else 200,
    )


def _after(row_id: int, done: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/livecodes/{row_id}?done={done}{anchor}", status_code=303)


def _on_detail(page: Page, live_code_id: int, action: Any, done: str, *, group_id: int | None = None) -> Response:
    """Run a pool or image form's ``action``; a refusal of the input (422, 409) shows the code's
    page again with the message next to the form, nothing written."""
    try:
        action()
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        return _detail(page, live_code_id, error=exc, error_group=group_id)
    anchor = f"#pool-{group_id}" if group_id is not None else ""
    return _after(live_code_id, done, anchor)


@router.post("/livecodes/{live_code_id}/pause")
def livecode_pause(page: ConsolePage, live_code_id: Id, form: Form) -> Response:
    check_form(page, form)
    paused = _text(form, "paused") == "1"
    service.set_paused(page.db, page.scope, live_code_id, paused, request=page.request)
    return _after(live_code_id, "paused" if paused else "resumed")


@router.post("/livecodes/{live_code_id}/groups")
def pool_add(page: ConsolePage, live_code_id: Id, form: Form) -> Response:
    check_form(page, form)

    def add() -> None:
        group_id = _number(form, "group_id", maximum=MAX_ID)
        if group_id is None:
            raise InvalidInput(Msg("lcp.err.choose_group"), field="group_id")
        try:
            data = PoolEntryIn(
                group_id=group_id, scan_limit=_number(form, "scan_limit"), region=_text(form, "region") or None
            )
        except ValidationError as exc:
            raise _invalid(exc) from exc
        service.add_group(page.db, page.scope, live_code_id, data, request=page.request)

    return _on_detail(page, live_code_id, add, "group_added")


@router.post("/livecodes/{live_code_id}/groups/{group_id}")
def pool_update(page: ConsolePage, live_code_id: Id, group_id: Id, form: Form) -> Response:
    check_form(page, form)

    def update() -> None:
        try:
            submitted = {
                "scan_limit": _number(form, "scan_limit"),
                "region": _text(form, "region") if "region" in form else None,
                "position": _number(form, "position", maximum=10_000),
            }
            # A blank field is left as it is (the schema refuses an explicit null).
            changes = PoolEntryUpdate.model_validate({k: v for k, v in submitted.items() if v is not None})
        except ValidationError as exc:
            raise _invalid(exc) from exc
        values = changes.model_dump(exclude_unset=True)
        service.update_group(page.db, page.scope, live_code_id, group_id, values, request=page.request)

    return _on_detail(page, live_code_id, update, "group_updated", group_id=group_id)


@router.post("/livecodes/{live_code_id}/groups/{group_id}/remove")
def pool_remove(page: ConsolePage, live_code_id: Id, group_id: Id, form: Form) -> Response:
    check_form(page, form)
    service.remove_group(page.db, page.scope, live_code_id, group_id, request=page.request)
    return _after(live_code_id, "group_removed")


@router.post("/livecodes/{live_code_id}/groups/{group_id}/qr")
def qr_upload(page: ConsolePage, live_code_id: Id, group_id: Id, form: Form, image: Image) -> Response:
    check_form(page, form)

    def upload() -> None:
        # A group of the pool as the reader sees it (404 for one that is not in it).
        if not any(i.group.id == group_id and i.entry.active for i in service.pool(page.db, page.scope, live_code_id)):
            raise NotFound(Msg("err.livecode.not_in_pool", id=group_id), field="group_id")
        if image is None:
            raise InvalidInput(Msg("lcp.err.choose_image"), field="image")
        days = _number(form, "expires_in_days", "expires_at", maximum=365) or service.QR_DEFAULT_DAYS
        expires_at = utcnow() + timedelta(days=days)
        service.upload_qr_image(page.db, page.scope, group_id, image, expires_at=expires_at, request=page.request)

    return _on_detail(page, live_code_id, upload, "qr_uploaded", group_id=group_id)


@router.post("/livecodes/{live_code_id}/qr-images/{image_id}/withdraw")
def qr_withdraw(page: ConsolePage, live_code_id: Id, image_id: Id, form: Form) -> Response:
    check_form(page, form)
    service.get_live_code(page.db, page.scope, live_code_id)
    image = service.withdraw_qr_image(page.db, page.scope, image_id, request=page.request)
    return _after(live_code_id, "qr_withdrawn", f"#pool-{image.group_id}")


@router.post("/livecodes/{live_code_id}/fallback-image")
def fallback_upload(page: ConsolePage, live_code_id: Id, form: Form, image: Image) -> Response:
    check_form(page, form)
    remove = _text(form, "remove") == "1"

    def change() -> None:
        if image is None and not remove:
            raise InvalidInput(Msg("lcp.err.choose_image"), field="image")
        data = None if remove else image
        service.set_fallback_image(page.db, page.scope, live_code_id, data, request=page.request)

    return _on_detail(page, live_code_id, change, "fallback_image")

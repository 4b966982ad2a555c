"""REST routes for staff tasks: /api/v1/tasks (list, one, complete with evidence)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from qunyun.api.errors import api_language
from qunyun.api.pagination import BigId, Id, Page, Paging
from qunyun.auth.deps import CurrentScope, DbSession
from qunyun.auth.scope import Scope
from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.tasks import notices, service
from qunyun.tasks.schemas import CompleteIn, NoticesOut, SeenIn, TaskOut
from qunyun.tasks.service import View
from qunyun.tasks.storage import MAX_IMAGE_BYTES, EvidenceTooLarge
from qunyun.timeutil import utcnow

router = APIRouter(prefix="/tasks", tags=["tasks"])
IMAGE_FIELD = "evidence_image"
FORM_FIELDS = 12  # the evidence fields, the console's CSRF token and return view, with room


@dataclass(frozen=True)
class Completion:
    """A completion request's evidence, read from JSON or multipart/form-data."""

    evidence_text: str | None = None
    evidence_link: str | None = None
    evidence_image: bytes | None = None
    confirm_action: bool = True
    note: str | None = None

    def complete(self, session: Session, scope: Scope, task_id: int) -> None:
        """Complete task ``task_id`` with this evidence (``service.complete``: the API's and the
        console's completion alike)."""
        service.complete(
            session,
            scope,
            task_id,
            evidence_text=self.evidence_text,
            evidence_link=self.evidence_link,
            evidence_image=self.evidence_image,
            confirm_action=self.confirm_action,
            note=self.note,
        )


def _too_large() -> EvidenceTooLarge:
    return EvidenceTooLarge(Msg("err.task.image_too_large", limit="5 MiB"), field=IMAGE_FIELD, limit=MAX_IMAGE_BYTES)


async def read_completion(request: Request) -> Completion:
    """The evidence of ``POST /tasks/{id}/complete``; read before the unit of work starts so that
    an upload never holds a transaction open (the body is capped by the edge guard)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _from_form(request)
    if content_type in ("application/json", ""):
        raw = await request.body()
        try:
            body = CompleteIn.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False)]
            ) from None
        image = None
        if body.evidence_image_base64:
            if len(body.evidence_image_base64) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:
                raise _too_large()
            try:
                image = base64.b64decode(body.evidence_image_base64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput(Msg("err.task.bad_base64"), field="evidence_image_base64") from None
        return Completion(body.evidence_text, body.evidence_link, image, body.confirm_action, body.note)
    raise InvalidInput(Msg("err.task.bad_body"), field="body")


async def _from_form(request: Request) -> Completion:
    form = await request.form(max_files=1, max_fields=FORM_FIELDS)
    try:
        return await completion_from_form(form)
    finally:
        await form.close()


async def completion_from_form(form: FormData) -> Completion:
    """The evidence of a multipart/form-data completion (the API's and the console's form)."""
    uploads = [v for v in form.getlist(IMAGE_FIELD) if isinstance(v, UploadFile)]
    if len(uploads) > 1:
        raise InvalidInput(Msg("err.task.one_image"), field=IMAGE_FIELD)
    image = None
    # A form submitted without choosing a file still sends an empty, nameless part.
    if uploads and (uploads[0].filename or uploads[0].size):
        image = await uploads[0].read(MAX_IMAGE_BYTES + 1)
        if len(image) > MAX_IMAGE_BYTES:
            raise _too_large()

    def text(name: str) -> str | None:
        value = form.get(name)
        return value if isinstance(value, str) else None

    confirm = text("confirm_action")
    return Completion(
        evidence_text=text("evidence_text"),
        evidence_link=text("evidence_link"),
        evidence_image=image,
        confirm_action=confirm is None or confirm.strip().lower() not in ("0", "false", "no", "off"),
        note=text("note"),
    )


_COMPLETE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Evidence of the work, all optional: JSON, or multipart/form-data with a file field "
        "`evidence_image` (PNG, JPEG or WebP, at most 5 MiB).",
        "content": {
            "application/json": {"schema": CompleteIn.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "evidence_text": {"type": "string"},
                        "evidence_link": {"type": "string"},
                        "evidence_image": {"type": "string", "format": "binary"},
                        "confirm_action": {"type": "boolean", "default": True},
                        "note": {"type": "string"},
                    },
                }
            },
        },
    }
}


@router.get("", response_model=Page[TaskOut], summary="Tasks you may see")
def list_tasks(
    db: DbSession,
    scope: CurrentScope,
    request: Request,
    paging: Paging,
    view: Annotated[
        View,
        Query(description="today, overdue, done, open, or new (a reminder or escalation to you not yet seen)"),
    ] = "open",
    assignee: Annotated[Id | None, Query(description="Only tasks assigned to this staff member")] = None,
) -> Page[TaskOut]:
    now = utcnow()
    items, total = service.list_tasks(
        db, scope, view=view, now=now, assignee_id=assignee, limit=paging.limit, offset=paging.offset
    )
    return Page[TaskOut](
        items=_out(db, scope, request, items, now), total=total, limit=paging.limit, offset=paging.offset
    )


@router.get("/notices", response_model=NoticesOut, summary="How many of your tasks were reminded or escalated to you")
def get_notices(db: DbSession, scope: CurrentScope) -> NoticesOut:
    return NoticesOut(unseen=service.notice_count(db, scope))


@router.post("/notices/seen", response_model=NoticesOut, summary="Mark your task notices as seen")
def mark_notices_seen(db: DbSession, scope: CurrentScope, body: SeenIn | None = None) -> NoticesOut:
    notices.mark_seen(db, scope, body.task_ids if body is not None else None, utcnow())
    return NoticesOut(unseen=service.notice_count(db, scope))


@router.get("/{task_id}", response_model=TaskOut, summary="One task")
def get_task(
    task_id: Annotated[BigId, Path(description="Task id")], db: DbSession, scope: CurrentScope, request: Request
) -> TaskOut:
    return _out(db, scope, request, [service.get_item(db, scope, task_id)], utcnow())[0]


def _out(db: Session, scope: Scope, request: Request, items: list[service.TaskItem], now: datetime) -> list[TaskOut]:
    """The tasks as the API shows them to the caller: in their language, with their notices."""
    lang = api_language(request)
    kinds = notices.unseen_kinds(db, scope, [i.task.id for i in items])
    return [TaskOut.of(i, lang, now, notice=kinds.get(i.task.id)) for i in items]


@router.get("/{task_id}/evidence", summary="The task's evidence image", response_class=FileResponse)
def get_evidence_image(
    task_id: Annotated[BigId, Path(description="Task id")], db: DbSession, scope: CurrentScope
) -> FileResponse:
    path, media_type = service.evidence_image(db, scope, task_id)
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, no-store"})


@router.post(
    "/{task_id}/complete",
    response_model=TaskOut,
    summary="Complete a task with evidence; confirms the outbound action behind it",
    openapi_extra=_COMPLETE_BODY,
)
def complete_task(
    # First: the body is read before the unit of work starts (see read_completion).
    body: Annotated[Completion, Depends(read_completion)],
    task_id: Annotated[BigId, Path(description="Task id")],
    db: DbSession,
    scope: CurrentScope,
    request: Request,
) -> TaskOut:
    body.complete(db, scope, task_id)
    return _out(db, scope, request, [service.get_item(db, scope, task_id)], utcnow())[0]

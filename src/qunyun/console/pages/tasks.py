"""The task inbox: today's tasks, the overdue ones and the done ones, each with what to copy and a
form to complete it with evidence. Made for a phone: one column, big tap targets; it works without
script, and static/copy.js adds one-tap copy buttons."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from qunyun.api.pagination import BigId
from qunyun.auth.csrf import check_csrf, session_csrf_token
from qunyun.console.web import ConsolePage, int_param
from qunyun.errors import QunyunError
from qunyun.tasks import notices, service
from qunyun.tasks.endpoints import FORM_FIELDS, Completion, completion_from_form
from qunyun.tasks.service import VIEWS, TaskItem, View
from qunyun.tasks.titles import render_stored, render_title, task_reason
from qunyun.timeutil import utcnow

router = APIRouter()
PAGE_SIZE = 30


class SubmittedForm:
    """A completion form as submitted: its evidence, or the error reading it (too large an
    image…) to show on the page rather than on an error page; and its other fields."""

    def __init__(self, completion: Completion | None, error: QunyunError | None, fields: dict[str, str]) -> None:
        self.completion = completion
        self.error = error
        self.fields = fields


async def submitted_form(request: Request) -> SubmittedForm:
    form = await request.form(max_files=1, max_fields=FORM_FIELDS)
    try:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            return SubmittedForm(await completion_from_form(form), None, fields)
        except QunyunError as exc:
            return SubmittedForm(None, exc, fields)
    finally:
        await form.close()


def _view(value: str | None) -> View:
    return next((v for v in VIEWS if v == value), "today")


def _payload_text(item: TaskItem) -> str:
    """What a person copies to do the task: a message's text as it is, other payloads as JSON."""
    payload = item.task.detail.get("payload")
    if not isinstance(payload, dict) or not payload:
        return ""
    text = payload.get("text")
    if isinstance(text, str) and len(payload) == 1:
        return text
    return json.dumps(payload, ensure_ascii=False, indent=2)


MATERIAL_KINDS = ("image", "link", "miniprogram", "file")  # an SOP step's materials shown beside its text


def _sop_step(item: TaskItem) -> dict[str, Any] | None:
    """An SOP step's instructions (详情) and the materials its text does not hold (images,
    mini-programs, files; links again, to open): what the person needs besides what they copy.
    A material's value is a link only when it is a web address."""
    if item.task.kind != "sop_step":
        return None
    detail = item.task.detail or {}
    materials = []
    for material in detail.get("materials") or []:
        if not isinstance(material, dict) or material.get("kind") not in MATERIAL_KINDS:
            continue
        value, title = str(material.get("value") or ""), str(material.get("title") or "")
        web = value.startswith(("http://", "https://")) and not any(c.isspace() for c in value)
        materials.append({"kind": material["kind"], "title": title, "value": value, "href": value if web else ""})
    instructions = detail.get("detail")
    return {"detail": instructions if isinstance(instructions, str) else "", "materials": materials}


def _inbox(
    page: ConsolePage,
    *,
    view: View,
    error: QunyunError | None = None,
    error_task: int | None = None,
    submitted: dict[str, str] | None = None,
    background: BackgroundTasks | None = None,
) -> Response:
    scope = page.scope
    now = utcnow()
    assignee = int_param(page.request.query_params.get("assignee")) if scope.whole_org else None
    tabs = service.view_counts(page.db, scope, now=now, assignee_id=assignee)
    paging = page.paging(tabs[view], PAGE_SIZE)
    items, _ = service.list_tasks(
        page.db, scope, view=view, now=now, assignee_id=assignee, limit=paging.size, offset=paging.offset
    )
    lang = page.t.lang
    # The viewer's own unseen reminders and escalations among these tasks: marked on the cards,
    # and seen once the page has been sent (never anyone else's).
    noticed = notices.unseen_kinds(page.db, scope, [i.task.id for i in items])
    if background is not None and noticed:
        background.add_task(notices.mark_seen_after, scope, sorted(noticed), now)
    history = service.action_history(
        page.db, scope, [i.task.outbound_action_id for i in items if i.task.outbound_action_id is not None]
    )
    tasks: list[dict[str, Any]] = [
        {
            "item": item,
            "task": item.task,
            "title": render_title(item.task, lang),
            "reason": task_reason(item.task, lang),
            "overdue": item.task.status == "open" and item.task.due_at is not None and item.task.due_at < now,
            "copy_text": _payload_text(item),
            "sop": _sop_step(item),
            "notice": noticed.get(item.task.id),
            "history": [
                {
                    "at": page.local(change.at),
                    "from": change.from_state,
                    "to": change.to_state,
                    "detail": render_stored(change.detail_key, change.detail_values, change.detail, lang),
                }
                for change in history.get(item.task.outbound_action_id or 0, [])
            ],
        }
        for item in items
    ]
    completed = int_param(page.request.query_params.get("completed"))
    context = {
        "view": view,
        "views": VIEWS,
        "tabs": tabs,
        "tasks": tasks,
        "paging": paging,
        "assignee": assignee,
        "people": service.assignees(page.db, scope) if scope.whole_org else [],
        "error": error.localized(lang) if error is not None else "",
        "error_field": error.field if error is not None else "",
        "error_task": error_task,
        "submitted": submitted or {},
        "completed": completed,
        # The count in the navigation leaves out the tasks this page marks seen.
        "task_notices": max(0, service.notice_count(page.db, scope) - (len(noticed) if background else 0)),
    }
    return page.render("tasks.html", "tasks", context, status_code=error.status_code if error is not None else 200)


@router.get("/tasks")
def task_inbox(page: ConsolePage, background: BackgroundTasks) -> Response:
    return _inbox(page, view=_view(page.request.query_params.get("view")), background=background)


@router.post("/tasks/{task_id}/complete")
def task_complete(
    page: ConsolePage, task_id: BigId, form: Annotated[SubmittedForm, Depends(submitted_form)]
) -> Response:
    check_csrf(session_csrf_token(page.principal.token.id), form.fields.get("csrf_token"))
    view = _view(form.fields.get("view"))
    error = form.error
    if error is None and form.completion is not None:
        try:
            form.completion.complete(page.db, page.scope, task_id)
        except QunyunError as exc:
            if exc.status_code in (403, 404):
                raise  # the error page: the task is not the caller's to complete
            page.db.rollback()
            error = exc
    if error is not None:
        return _inbox(page, view=view, error=error, error_task=task_id, submitted=form.fields)
    return RedirectResponse(page.url("/tasks", view=view, completed=task_id, page=None), status_code=303)


@router.get("/tasks/{task_id}/evidence")
def task_evidence(page: ConsolePage, task_id: BigId) -> Response:
    path, media_type = service.evidence_image(page.db, page.scope, task_id)
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, no-store"})

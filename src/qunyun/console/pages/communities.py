"""Communities: the list, a community's positioning and playbook, the full edit form, and the
guided 0→1 setup (positioning → persona → value → naming → rules → welcome)."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from qunyun.api.pagination import Id
from qunyun.auth.scope import require_lead
from qunyun.community.service import (
    ALL_FIELDS,
    COMMUNITY_FIELDS,
    COMMUNITY_TYPES,
    NAMING_FIELDS,
    ORGANISATION_MODELS,
    PLAYBOOK_FIELDS,
    SETUP_STEPS,
    STEP_KEYS,
    VALUES_OFFERED,
    Step,
    clean,
    community_groups,
    create_community,
    example_region,
    group_counts,
    group_name,
    list_communities,
    playbook_of,
    playbooks_of,
    require_community,
    setup_progress,
    step,
    update_community,
)
from qunyun.console.web import ConsolePage, Form, check_form
from qunyun.errors import Conflict, InvalidInput, QunyunError
from qunyun.models import Community

router = APIRouter()


def _form_values(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    values["value_offered"] = [v for v in form.getlist("value_offered") if isinstance(v, str)]
    return values


def _choices(page: ConsolePage) -> dict[str, Any]:
    t = page.t
    return {
        "types": [(k, t(f"ctype_{k}")) for k in COMMUNITY_TYPES],
        "values_offered": [(k, t(f"value_{k}")) for k in VALUES_OFFERED],
        "models": [(k, t(f"orgmodel_{k}")) for k in ORGANISATION_MODELS],
        "naming_fields": NAMING_FIELDS,
    }


def _example_region(page: ConsolePage, community: Community | None) -> str:
    return example_region(page.db, community)


@router.get("/communities")
def community_list(page: ConsolePage) -> Response:
    db, scope = page.db, page.scope
    communities = list_communities(db, scope)
    ids = [c.id for c in communities]
    counts = group_counts(db, scope, ids)
    playbooks = playbooks_of(db, ids)
    progress = {c.id: setup_progress(c, playbooks.get(c.id)) for c in communities}
    return page.render(
        "communities.html",
        "communities",
        {"communities": communities, "counts": counts, "progress": progress, "steps": STEP_KEYS},
    )


@router.get("/communities/{community_id}")
def community_detail(page: ConsolePage, community_id: Id) -> Response:
    community = require_community(page.db, page.scope, community_id)
    playbook = playbook_of(page.db, community)
    groups = community_groups(page.db, page.scope, community)
    preview = ""
    if playbook and playbook.naming_template:
        # A template stored before placeholders were checked is shown as is, without a preview.
        with contextlib.suppress(InvalidInput):
            preview = group_name(
                playbook.naming_template, brand=page.organisation.name, region=_example_region(page, community)
            )
    return page.render(
        "community_detail.html",
        "communities",
        {
            "community": community,
            "playbook": playbook,
            "groups": groups,
            "preview": preview,
            "progress": setup_progress(community, playbook),
            "steps": STEP_KEYS,
            **_choices(page),
        },
    )


# -- the full edit form ------------------------------------------------------------------------


def _edit_page(
    page: ConsolePage, community: Community, values: dict[str, Any], error: str = "", field: str = "", status: int = 200
) -> Response:
    return page.render(
        "community_edit.html",
        "communities",
        {"community": community, "values": values, "error": error, "error_field": field, **_choices(page)},
        status_code=status,
    )


def _current_values(page: ConsolePage, community: Community | None) -> dict[str, Any]:
    values: dict[str, Any] = {f: getattr(community, f) if community else "" for f in COMMUNITY_FIELDS}
    if community is None:
        values.update(community_type="local", organisation_model="lead-owner-admin", value_offered=[])
    playbook = playbook_of(page.db, community) if community else None
    values.update({f: getattr(playbook, f) if playbook else "" for f in PLAYBOOK_FIELDS})
    return values


def _lead_community(page: ConsolePage, community_id: Id, form: FormData | None = None) -> Community:
    """The community to change: the form's CSRF token checked, in scope (else 404), lead only."""
    if form is not None:
        check_form(page, form)
    community = require_community(page.db, page.scope, community_id)
    require_lead(page.scope)
    return community


def _save(page: ConsolePage, community: Community, submitted: dict[str, Any], fields: Step) -> QunyunError | None:
    """Validate and store ``fields`` of the submitted form; the error to show, if any (then
    nothing is written)."""
    try:
        update_community(
            page.db,
            page.scope,
            community,
            clean(submitted, fields.community_fields),
            clean(submitted, fields.playbook_fields),
            request=page.request,
        )
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        return exc
    return None


@router.get("/communities/{community_id}/edit")
def community_edit(page: ConsolePage, community_id: Id) -> Response:
    community = _lead_community(page, community_id)
    return _edit_page(page, community, _current_values(page, community))


@router.post("/communities/{community_id}/edit")
def community_edit_submit(page: ConsolePage, community_id: Id, form: Form) -> Response:
    community = _lead_community(page, community_id, form)
    submitted = _form_values(form)
    error = _save(page, community, submitted, ALL_FIELDS)
    if error is not None:
        return _edit_page(
            page, community, submitted, error.localized(page.t.lang), error.field or "", error.status_code
        )
    return RedirectResponse(f"/communities/{community.id}", status_code=303)


# -- the guided 0→1 setup ------------------------------------------------------------------------


def _setup_page(
    page: ConsolePage,
    community: Community | None,
    key: str,
    values: dict[str, Any],
    error: str = "",
    field: str = "",
    status: int = 200,
) -> Response:
    preview = ""
    template = values.get("naming_template") or ""
    if key == "naming" and template and not error:
        preview = group_name(template, brand=page.organisation.name, region=_example_region(page, community))
    return page.render(
        "community_setup.html",
        "communities",
        {
            "community": community,
            "step": key,
            "steps": STEP_KEYS,
            "index": STEP_KEYS.index(key),
            "values": values,
            "error": error,
            "error_field": field,
            "preview": preview,
            **_choices(page),
        },
        status_code=status,
    )


@router.get("/communities/setup/start")
def setup_start(page: ConsolePage) -> Response:
    require_lead(page.scope)
    return _setup_page(page, None, "positioning", _current_values(page, None))


@router.post("/communities/setup/start")
def setup_start_submit(page: ConsolePage, form: Form) -> Response:
    check_form(page, form)
    require_lead(page.scope)
    submitted = _form_values(form)
    try:
        community = create_community(
            page.db, page.scope, clean(submitted, step("positioning").community_fields), request=page.request
        )
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        return _setup_page(
            page, None, "positioning", submitted, exc.localized(page.t.lang), exc.field or "", exc.status_code
        )
    return RedirectResponse(f"/communities/{community.id}/setup/{STEP_KEYS[1]}", status_code=303)


@router.get("/communities/{community_id}/setup/{key}")
def setup_step(page: ConsolePage, community_id: Id, key: str) -> Response:
    community = _lead_community(page, community_id)
    step(key)
    return _setup_page(page, community, key, _current_values(page, community))


@router.post("/communities/{community_id}/setup/{key}")
def setup_step_submit(page: ConsolePage, community_id: Id, key: str, form: Form) -> Response:
    community = _lead_community(page, community_id, form)
    submitted = _form_values(form)
    error = _save(page, community, submitted, step(key))
    if error is not None:
        merged = {**_current_values(page, community), **submitted}
        return _setup_page(
            page, community, key, merged, error.localized(page.t.lang), error.field or "", error.status_code
        )
    index = STEP_KEYS.index(key)
    if submitted.get("back") and index > 0:
        return RedirectResponse(f"/communities/{community.id}/setup/{STEP_KEYS[index - 1]}", status_code=303)
    if index + 1 < len(SETUP_STEPS):
        return RedirectResponse(f"/communities/{community.id}/setup/{STEP_KEYS[index + 1]}", status_code=303)
    return RedirectResponse(f"/communities/{community.id}?setup=done", status_code=303)

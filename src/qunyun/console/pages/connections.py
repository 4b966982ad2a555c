"""Connections (leads only): each connection's platform, name, status, last error and the
callback URL to give the platform; a form per platform to add one (secrets are password inputs,
never filled in again), and test / disable / enable buttons."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from qunyun.auth.scope import require_lead
from qunyun.connections import service
from qunyun.connections.platforms import PLATFORMS, platform_names
from qunyun.connections.schemas import ConnectionOut
from qunyun.console.web import ConsolePage, Form, check_form, path_id
from qunyun.errors import Conflict, InvalidInput, NotFound
from qunyun.locale import Msg

router = APIRouter()

ACTIONS = {
    "test": service.test_connection,
    "disable": service.disable_connection,
    "enable": service.enable_connection,
}


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _part(form: FormData, prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v for k, v in form.items() if k.startswith(prefix) and isinstance(v, str)}


def _page(
    page: ConsolePage,
    *,
    platform: str = "",
    values: dict[str, str] | None = None,
    error: str = "",
    error_field: str = "",
    status: int = 200,
) -> Response:
    rows = [ConnectionOut.of(row) for row in service.list_connections(page.db, page.scope)]
    base = str(page.request.base_url).rstrip("/")
    platforms = [PLATFORMS[name] for name in platform_names() if name in PLATFORMS]
    return page.render(
        "connections.html",
        "connections",
        {
            "connections": rows,
            "base_url": base,
            "platforms": platforms,
            "open_platform": platform,
            # What the failed form had, settings and name only: secrets are never sent back.
            "values": values or {},
            "error": error,
            "error_field": error_field,
            "notice": page.request.query_params.get("done", ""),
        },
        status_code=status,
    )


@router.get("/connections")
def connection_list(page: ConsolePage) -> Response:
    require_lead(page.scope)
    return _page(page)


@router.post("/connections")
def connection_add(page: ConsolePage, form: Form) -> Response:
    check_form(page, form)
    require_lead(page.scope)
    platform = _text(form, "platform")
    settings = _part(form, "settings.")
    secrets = _part(form, "secrets.")
    try:
        row = service.add_connection(
            page.db, page.scope, platform, _text(form, "name"), settings, secrets, request=page.request
        )
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        values = {"name": _text(form, "name"), **{f"settings.{k}": v for k, v in settings.items()}}
        return _page(
            page,
            platform=platform,
            values=values,
            error=exc.localized(page.t.lang),
            error_field=exc.field or "",
            status=exc.status_code,
        )
    return RedirectResponse(f"/connections?done=added#connection-{row.id}", status_code=303)


@router.post("/connections/{connection_id}/{action}")
def connection_action(page: ConsolePage, connection_id: str, action: str, form: Form) -> Response:
    check_form(page, form)
    require_lead(page.scope)
    operation = ACTIONS.get(action)
    if operation is None:
        raise NotFound(Msg("err.connection.not_found", id=connection_id))
    number = path_id(connection_id, Msg("err.connection.not_found", id=connection_id))
    row = operation(page.db, page.scope, number, request=page.request)
    return RedirectResponse(f"/connections?done={action}#connection-{row.id}", status_code=303)

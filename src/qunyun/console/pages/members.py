"""Members: the filterable list and one member's page (persona, tags, memberships, orders)."""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from qunyun.acquisition.service import channel_names
from qunyun.analytics.portrait import age_band, member_tiers
from qunyun.console.pages.moderation import member_section
from qunyun.console.web import ConsolePage, Form, check_form, int_param, path_id
from qunyun.crm.service import (
    MemberFilter,
    count_members,
    get_member,
    groups_now,
    has_members,
    member_filter_options,
    member_orders,
    member_rows,
)
from qunyun.errors import InvalidInput
from qunyun.groups.service import group_names, list_memberships
from qunyun.locale import Msg
from qunyun.privacy.service import erase_member, export_member

router = APIRouter()
PAGE_SIZE = 50
# The member list's sortable columns (?sort=, crm.service.MEMBER_SORTS): names and regions in
# pinyin order, age youngest first, "first_seen" (the default) newest first.
SORTS = ("name", "region", "age", "first_seen")
HISTORY_LIMIT = 200


def _filters(page: ConsolePage) -> tuple[MemberFilter, dict[str, object]]:
    """The filter form's values: what the list is narrowed to, and what the form shows."""
    params = page.request.query_params
    shown: dict[str, object] = {}
    for name in ("group", "tag", "channel"):
        if (number := int_param(params.get(name))) is not None:
            shown[name] = number
    for name in ("gender", "region", "q"):
        if value := params.get(name, "").strip():
            shown[name] = value
    filters = MemberFilter(
        # The form's group is one the member is in now; a group, tag or channel out of sight
        # matches nobody rather than revealing anything.
        group_id=int_param(params.get("group")),
        current_only=True,
        tag_id=int_param(params.get("tag")),
        channel_id=int_param(params.get("channel")),
        gender=params.get("gender", "").strip() or None,
        region=params.get("region", "").strip() or None,
        q=params.get("q", "").strip() or None,
        include_erased=False,
        strict=False,
    )
    return filters, shown


@router.get("/members")
def member_list(page: ConsolePage) -> Response:
    db, scope = page.db, page.scope
    filters, shown = _filters(page)
    sort = page.sort(SORTS, "first_seen", descending_first=("first_seen",))
    # The total first: the page asked for is clamped to the pages there are.
    total = count_members(db, scope, filters)
    paging = page.paging(total, PAGE_SIZE)
    members = member_rows(
        db, scope, filters, sort=sort.key, descending=sort.descending, limit=paging.size, offset=paging.offset
    )
    # "No matches" (filters hide everyone) differs from "no members yet".
    any_member = bool(total) or has_members(db, scope, include_erased=False)
    ids = [m.id for m in members]
    t = page.t
    options = member_filter_options(db, scope)
    return page.render(
        "members.html",
        "members",
        {
            "members": members,
            "total": total,
            "filters": shown,
            "options": {
                **options,
                "genders": [("male", t("gender_male")), ("female", t("gender_female"))],
                "regions": [(r, r) for r in options["regions"]],
            },
            "in_groups": groups_now(db, scope, ids),
            "tiers": member_tiers(db, scope, ids),
            "ages": {m.id: age_band(m.birth_year, page.today()) for m in members},
            "paging": paging,
            "sort": sort,
            "any_member": any_member,
        },
    )


@router.get("/members/{member_id}")
def member_detail(page: ConsolePage, member_id: str) -> Response:
    db, scope = page.db, page.scope
    member = get_member(db, scope, path_id(member_id, Msg("tables.no_member", id=member_id)))
    memberships, span_total = list_memberships(db, scope, member_id=member.id, limit=HISTORY_LIMIT)
    # Newest first, and per group whether the member is in it now (an open span) or left.
    memberships.sort(key=lambda s: (s.joined_at, s.id), reverse=True)
    in_now = {s.group_id for s in memberships if s.left_at is None}
    orders, refunded = member_orders(db, scope, member.id, HISTORY_LIMIT)
    return page.render(
        "member_detail.html",
        "members",
        {
            "member": member,
            "age": age_band(member.birth_year, page.today()),
            "tags": member.tags,
            "memberships": memberships,
            "span_total": span_total,
            "group_names": group_names(db, scope, {s.group_id for s in memberships}),
            "in_now": in_now,
            "channels": channel_names(db, scope, {s.channel_id for s in memberships if s.channel_id is not None}),
            "orders": orders,
            "refunded": refunded,
            "tier": member_tiers(db, scope, [member.id])[member.id],
            "moderation": member_section(page, member.id),
            "erased": page.request.query_params.get("done") == "erased",
        },
    )


@router.get("/members/{member_id}/export")
def member_export(page: ConsolePage, member_id: str) -> Response:
    """The member's data as a JSON download (lead only, like the API)."""
    data = export_member(page.db, page.scope, path_id(member_id, Msg("tables.no_member", id=member_id)))
    body = json.dumps(data, ensure_ascii=False, indent=2)
    headers = {"Content-Disposition": f'attachment; filename="member-{data["member"]["id"]}.json"'}
    return Response(body, media_type="application/json; charset=utf-8", headers=headers)


@router.post("/members/{member_id}/erase")
def member_erase(page: ConsolePage, member_id: str, form: Form) -> Response:
    check_form(page, form)
    member = path_id(member_id, Msg("tables.no_member", id=member_id))
    if form.get("confirm") != "1":  # erasure cannot be undone: the box must be ticked
        raise InvalidInput(Msg("privacy.err.unconfirmed"), field="confirm")
    erase_member(page.db, page.scope, member, request=page.request)  # committed at the edge
    return RedirectResponse(f"/members/{member}?done=erased", status_code=303)

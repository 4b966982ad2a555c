"""Groups: the filterable list, and one group's page (members, timeline, daily chart, portrait)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import Response

from qunyun.analytics import stats
from qunyun.analytics.portrait import group_portrait, member_classes, member_tiers
from qunyun.console.charts import Series, bar_chart, line_chart
from qunyun.console.web import MAX_BIGINT, ConsolePage, int_param, path_id
from qunyun.groups.service import (
    GROUP_SORTS,
    MEMBER_STATUSES,
    NAME_SORTS,
    GroupFilter,
    count_group_members,
    count_groups,
    get_group,
    group_filter_options,
    group_has_members,
    group_member_rows,
    group_people,
    group_rows,
    group_timeline,
    has_groups,
)
from qunyun.locale import Msg
from qunyun.models import GroupStatus

router = APIRouter()
PAGE_SIZE = 30
# The group list's sortable columns (?sort=, groups.service.GROUP_SORTS); names in pinyin order.
# Numbers and dates start with the largest.
SORTS = tuple(key for key in GROUP_SORTS if key != "id")
NUMBER_SORTS = tuple(key for key in SORTS if key not in NAME_SORTS)
MEMBER_SORTS = ("name", "joined", "left")


@router.get("/groups")
def group_list(page: ConsolePage) -> Response:
    db, scope, params = page.db, page.scope, page.request.query_params
    filters: dict[str, object] = {}
    if (community := int_param(params.get("community"))) is not None:
        filters["community"] = community
    for name in ("tier", "region", "status", "q"):
        if value := params.get(name, "").strip():
            filters[name] = value
    if (owner := int_param(params.get("owner"))) is not None:
        filters["owner"] = owner
    narrowed = GroupFilter(
        community_id=community,
        tier=params.get("tier", "").strip() or None,
        region=params.get("region", "").strip() or None,
        owner_id=owner,
        status=params.get("status", "").strip() or None,
        q=params.get("q", "").strip() or None,
    )
    sort = page.sort(SORTS, "name", descending_first=NUMBER_SORTS)
    total = count_groups(db, scope, narrowed)
    paging = page.paging(total, PAGE_SIZE)
    rows = group_rows(
        db,
        scope,
        narrowed,
        sort=sort.key,
        descending=sort.descending,
        actives_on=page.today(),
        limit=paging.size,
        offset=paging.offset,
    )
    # "No matches" (filters hide every group) differs from "no groups yet" (an empty organisation).
    any_group = bool(total) or has_groups(db, scope)
    t = page.t
    options = group_filter_options(db, scope)
    return page.render(
        "groups.html",
        "groups",
        {
            "rows": rows,
            "total": total,
            "filters": filters,
            "options": {
                "communities": options["communities"],
                "regions": [(r, r) for r in options["regions"]],
                "tiers": [(r, t(f"tier_{r}")) for r in options["tiers"]],
                "owners": options["owners"],
                "statuses": [(s.value, t(f"status_{s.value}")) for s in GroupStatus],
            },
            "sort": sort,
            "any_group": any_group,
            "paging": paging,
        },
    )


@router.get("/groups/{group_id}")
def group_detail(page: ConsolePage, group_id: str) -> Response:
    db, scope = page.db, page.scope
    group = get_group(db, scope, path_id(group_id, Msg("tables.no_group", id=group_id)))
    params = page.request.query_params
    today = page.today()
    community, owner = group_people(db, scope, group)

    # The group's members (now in it, gone, or both), with the channel they joined through.
    status = params.get("status", "")
    if status not in MEMBER_STATUSES:
        status = "current"
    q = params.get("q", "").strip()
    member_total = count_group_members(db, scope, group.id, status=status, q=q)
    # With a search that finds nobody, "no matches" differs from a group with nobody in it.
    any_member = bool(member_total) or (bool(q) and group_has_members(db, scope, group.id, status))
    sort = page.sort(MEMBER_SORTS, "joined", descending_first=("joined", "left"))
    paging = page.paging(member_total, PAGE_SIZE)
    member_rows = group_member_rows(
        db,
        scope,
        group.id,
        status=status,
        q=q,
        sort=sort.key,
        descending=sort.descending,
        limit=paging.size,
        offset=paging.offset,
    )
    ids = [row.member.id for row in member_rows]

    # Daily stats of the last 30 days, as `qunyun stats daily --group` reports them.
    daily = stats.daily(db, scope, today - timedelta(days=29), today, [group.id], include_total=False)
    labels = [r["date"][5:] for r in daily]
    t = page.t
    charts = {
        "members": line_chart(labels, [Series(t("m_members"), [r["members"] for r in daily])], title=t("m_members")),
        "activity": bar_chart(
            labels,
            [
                Series(t("m_joins"), [r["joins"] for r in daily], "s1"),
                Series(t("m_left"), [r["left"] for r in daily], "s3"),
                Series(t("m_actives"), [r["actives"] for r in daily], "s2"),
            ],
            title=t("chart_group_daily"),
        ),
    }
    return page.render(
        "group_detail.html",
        "groups",
        {
            "group": group,
            "community": community,
            "owner": owner,
            "members": member_rows,
            "member_total": member_total,
            "classes": member_classes(db, scope, group.id, today, ids),
            "tiers": member_tiers(db, scope, ids),
            "paging": paging,
            "q": q,
            "status": status,
            "statuses": MEMBER_STATUSES,
            "sort": sort,
            "any_member": any_member,
            "daily": list(reversed(daily)),
            "charts": charts,
            "portrait": group_portrait(db, scope, group.id, today),
            "timeline": group_timeline(db, scope, group.id, int_param(params.get("before"), MAX_BIGINT)),
        },
    )

"""Groups: the filterable list, and one group's page (members, timeline, daily chart, portrait)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import String, case, cast, func, select
from sqlalchemy.orm import aliased

from qunyun.analytics.portrait import member_classes, member_tiers, portrait
from qunyun.analytics.stats import StatsQuery, daily_stats
from qunyun.auth.scope import group_visible, require_group
from qunyun.console.charts import Series, bar_chart, line_chart
from qunyun.console.web import ConsolePage, int_param
from qunyun.groups.service import count_rows
from qunyun.models import (
    Channel,
    Community,
    Event,
    EventKind,
    Group,
    GroupDaily,
    GroupStatus,
    Member,
    MembershipSpan,
    MessageText,
    MsgType,
    Staff,
)
from qunyun.timeutil import day_key

router = APIRouter()
PAGE_SIZE = 30
TIMELINE_SIZE = 30
# The timeline walks the event log backwards from the newest id; each page looks at most this
# many ids so a quiet group never turns into a scan of the whole log (there is deliberately no
# (group, ts) index on events, see docs/performance.md).
TIMELINE_WINDOW = 200_000
SORTS = {
    "name": Group.name,
    "members": Group.member_count,
    "fill": Group.member_count * 1.0 / func.nullif(Group.capacity, 0),
    "created": Group.created_at,
}


@router.get("/groups")
def group_list(page: ConsolePage) -> Response:
    params = page.request.query_params
    scope = page.scope
    query = (
        select(Group, Community.name, Staff.display_name, GroupDaily.actives)
        .outerjoin(Community, Community.id == Group.community_id)
        .outerjoin(Staff, Staff.id == Group.owner_id)
        .outerjoin(GroupDaily, (GroupDaily.group_id == Group.id) & (GroupDaily.day == day_key(page.today())))
        .where(Group.org_id == scope.org_id, group_visible(scope))
    )
    filters: dict[str, Any] = {}
    if (community := int_param(params.get("community"))) is not None:
        query = query.where(Group.community_id == community)
        filters["community"] = community
    for name in ("tier", "region", "status"):
        if value := params.get(name, "").strip():
            query = query.where(getattr(Group, name) == value)
            filters[name] = value
    if (owner := int_param(params.get("owner"))) is not None:
        query = query.where(Group.owner_id == owner)
        filters["owner"] = owner
    if q := params.get("q", "").strip():
        query = query.where(Group.name.icontains(q, autoescape=True))
        filters["q"] = q
    sort = params.get("sort", "name")
    if sort not in SORTS:
        sort = "name"
    descending = params.get("dir", "desc" if sort in ("members", "fill") else "asc") == "desc"
    column = SORTS[sort]
    total = count_rows(page.db, query)
    paging = page.paging(total, PAGE_SIZE)
    rows = page.db.execute(
        query.order_by(column.desc() if descending else column.asc(), Group.id).limit(paging.size).offset(paging.offset)
    ).all()
    visible = select(Group.id).where(group_visible(scope))
    t = page.t
    options = {
        "communities": page.db.execute(
            select(Community.id, Community.name)
            .where(
                Community.org_id == scope.org_id,
                Community.id.in_(select(Group.community_id).where(Group.id.in_(visible))),
            )
            .order_by(Community.name)
        ).all(),
        "regions": [(r, r) for r in _distinct(page, Group.region, visible)],
        "tiers": [(r, t(f"tier_{r}")) for r in _distinct(page, Group.tier, visible)],
        "owners": page.db.execute(
            select(Staff.id, Staff.display_name)
            .where(Staff.org_id == scope.org_id, Staff.id.in_(select(Group.owner_id).where(Group.id.in_(visible))))
            .order_by(Staff.display_name)
        ).all(),
        "statuses": [(s.value, t(f"status_{s.value}")) for s in GroupStatus],
    }
    return page.render(
        "groups.html",
        "groups",
        {
            "rows": rows,
            "total": total,
            "filters": filters,
            "options": options,
            "sort": sort,
            "descending": descending,
            "paging": paging,
        },
    )


def _distinct(page: ConsolePage, column: Any, visible: Any) -> list[str]:
    return [v for v in page.db.scalars(select(column).where(Group.id.in_(visible)).distinct().order_by(column)) if v]


@router.get("/groups/{group_id}")
def group_detail(page: ConsolePage, group_id: int) -> Response:
    db, scope = page.db, page.scope
    group = require_group(db, scope, group_id)
    params = page.request.query_params
    today = page.today()
    community = db.get(Community, group.community_id) if group.community_id else None
    owner = db.get(Staff, group.owner_id) if group.owner_id else None

    # Members now in the group, with the channel they joined through.
    join_event = aliased(Event)
    in_group = [
        MembershipSpan.org_id == scope.org_id,
        MembershipSpan.group_id == group.id,
        MembershipSpan.left_at.is_(None),
    ]
    if q := params.get("q", "").strip():
        in_group.append(Member.display_name.icontains(q, autoescape=True) | (Member.external_id == q))
    members_query = (
        select(Member, MembershipSpan.joined_at, Channel.name, join_event.scene)
        .join(MembershipSpan, MembershipSpan.member_id == Member.id)
        .outerjoin(join_event, join_event.id == MembershipSpan.join_event_id)
        .outerjoin(Channel, Channel.id == join_event.channel_id)
        .where(*in_group)
    )
    # Counted without the joins that only decorate the rows.
    member_total = count_rows(
        db, select(MembershipSpan.id).join(Member, Member.id == MembershipSpan.member_id).where(*in_group)
    )
    paging = page.paging(member_total, PAGE_SIZE)
    member_rows = db.execute(
        members_query.order_by(MembershipSpan.joined_at.desc(), Member.id).limit(paging.size).offset(paging.offset)
    ).all()
    ids = [m.id for m, *_ in member_rows]
    classes = member_classes(db, scope.org_id, group.id, today, ids)
    tiers = member_tiers(db, scope.org_id, ids)

    # Daily stats of the last 30 days, as `qunyun stats daily --group` reports them.
    first = today - timedelta(days=29)
    daily = daily_stats(db, StatsQuery(scope.org_id, first, today, group_ids=[group.id], include_total=False))
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
    current = select(MembershipSpan.member_id).where(
        MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id == group.id, MembershipSpan.left_at.is_(None)
    )
    return page.render(
        "group_detail.html",
        "groups",
        {
            "group": group,
            "community": community,
            "owner": owner,
            "members": member_rows,
            "member_total": member_total,
            "classes": classes,
            "tiers": tiers,
            "paging": paging,
            "q": q,
            "daily": list(reversed(daily)),
            "charts": charts,
            "portrait": portrait(db, current, today),
            "timeline": timeline(page, group.id, int_param(params.get("before"))),
        },
    )


def timeline(page: ConsolePage, group_id: int, before: int | None) -> dict[str, Any]:
    """The group's latest joins, leaves and messages, newest first, from event id ``before`` down."""
    db = page.db
    # The newest id of the whole log (one B-tree lookup); the org filter is in the query below.
    top = before if before is not None else (db.scalar(select(func.max(Event.id))) or 0) + 1
    kinds = (int(EventKind.MEMBER_JOINED), int(EventKind.MEMBER_LEFT), int(EventKind.MESSAGE_POSTED))
    msg_type = case({int(t): t.name.lower() for t in MsgType}, value=Event.msg_type, else_=cast(None, String))
    rows = db.execute(
        select(
            Event.id,
            Event.kind,
            Event.ts,
            Event.scene,
            Event.reason,
            msg_type,
            Member.id,
            Member.display_name,
            Channel.name,
            MessageText.text,
        )
        .outerjoin(Member, Member.id == Event.member_id)
        .outerjoin(Channel, Channel.id == Event.channel_id)
        .outerjoin(MessageText, MessageText.event_id == Event.id)
        .where(
            # "+ 0": SQLite would otherwise walk the (org_id, external_id) index over the whole
            # organisation and sort; the id window is the range to walk, newest first.
            Event.org_id + 0 == page.scope.org_id,
            Event.group_id == group_id,
            Event.kind.in_(kinds),
            Event.id < top,
            Event.id >= top - TIMELINE_WINDOW,
        )
        .order_by(Event.id.desc())
        .limit(TIMELINE_SIZE)
    ).all()
    items = [
        {
            "id": r[0],
            "kind": {2: "join", 3: "leave", 4: "message"}[r[1]],
            "at": page.local(r[2]),
            "scene": r[3],
            "reason": r[4],
            "msg_type": r[5],
            "member_id": r[6],
            "member": r[7],
            "channel": r[8],
            "text": (r[9] or "")[:120],
        }
        for r in rows
    ]
    # Older entries: from the last one shown, or from the bottom of an empty window.
    older = (
        items[-1]["id"] if len(items) == TIMELINE_SIZE else (top - TIMELINE_WINDOW if top > TIMELINE_WINDOW else None)
    )
    return {"items": items, "older": older}

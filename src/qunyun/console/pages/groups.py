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
from qunyun.console.web import MAX_BIGINT, ConsolePage, int_param, path_id
from qunyun.groups.service import count_rows
from qunyun.locale import Msg
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
# The group list's sortable columns (?sort=); names in pinyin order. Numbers and dates start
# with the largest.
SORTS: dict[str, Any] = {
    "name": Group.name,
    "community": Community.name,
    "region": Group.region,
    "owner": Staff.display_name,
    "members": Group.member_count,
    "fill": Group.member_count * 1.0 / func.nullif(Group.capacity, 0),
    "actives": func.coalesce(GroupDaily.actives, 0),
    "created": Group.created_at,
}
NAME_SORTS = ("name", "community", "region", "owner")
NUMBER_SORTS = ("members", "fill", "actives", "created")
# The member list of one group: who is in it now, who left, or both (each member's latest span).
MEMBER_STATUSES = ("current", "left", "all")
MEMBER_SORTS = ("name", "joined", "left")


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
    sort = page.sort(SORTS, "name", descending_first=NUMBER_SORTS)
    column = SORTS[sort.key]
    if sort.key in NAME_SORTS:
        column = page.pinyin(column)
    total = count_rows(page.db, query)
    paging = page.paging(total, PAGE_SIZE)
    rows = page.db.execute(query.order_by(sort.apply(column), Group.id).limit(paging.size).offset(paging.offset)).all()
    # "No matches" (filters hide every group) differs from "no groups yet" (an empty organisation).
    any_group = (
        bool(total)
        or page.db.scalar(select(Group.id).where(Group.org_id == scope.org_id, group_visible(scope)).limit(1))
        is not None
    )
    visible = select(Group.id).where(group_visible(scope))
    t = page.t
    options = {
        "communities": page.db.execute(
            select(Community.id, Community.name)
            .where(
                Community.org_id == scope.org_id,
                Community.id.in_(select(Group.community_id).where(Group.id.in_(visible))),
            )
            .order_by(page.pinyin(Community.name))
        ).all(),
        "regions": [(r, r) for r in _distinct(page, Group.region, visible)],
        "tiers": [(r, t(f"tier_{r}")) for r in _distinct(page, Group.tier, visible)],
        "owners": page.db.execute(
            select(Staff.id, Staff.display_name)
            .where(Staff.org_id == scope.org_id, Staff.id.in_(select(Group.owner_id).where(Group.id.in_(visible))))
            .order_by(page.pinyin(Staff.display_name))
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
            "any_group": any_group,
            "paging": paging,
        },
    )


def _distinct(page: ConsolePage, column: Any, visible: Any) -> list[str]:
    # The collated expression is selected too: PostgreSQL orders a DISTINCT by selected values only.
    collated = page.pinyin(column)
    query = select(collated).where(Group.id.in_(visible)).distinct().order_by(collated)
    return [v for v in page.db.scalars(query) if v]


@router.get("/groups/{group_id}")
def group_detail(page: ConsolePage, group_id: str) -> Response:
    db, scope = page.db, page.scope
    group = require_group(db, scope, path_id(group_id, Msg("tables.no_group", id=group_id)))
    params = page.request.query_params
    today = page.today()
    community = db.get(Community, group.community_id) if group.community_id else None
    owner = db.get(Staff, group.owner_id) if group.owner_id else None

    # The group's members (now in it, gone, or both), with the channel they joined through.
    join_event = aliased(Event)
    status = params.get("status", "")
    if status not in MEMBER_STATUSES:
        status = "current"
    spans = [MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id == group.id]
    if status == "current":
        spans.append(MembershipSpan.left_at.is_(None))
    else:
        # One row per member: their latest span here (someone who left and came back is "in").
        latest = (
            select(func.max(MembershipSpan.id))
            .where(MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id == group.id)
            .group_by(MembershipSpan.member_id)
        )
        spans.append(MembershipSpan.id.in_(latest))
        if status == "left":
            spans.append(MembershipSpan.left_at.is_not(None))
    matching = list(spans)
    if q := params.get("q", "").strip():
        matching.append(Member.display_name.icontains(q, autoescape=True) | (Member.external_id == q))
    members_query = (
        select(Member, MembershipSpan.joined_at, Channel.name, join_event.scene, MembershipSpan.left_at)
        .join(MembershipSpan, MembershipSpan.member_id == Member.id)
        .outerjoin(join_event, join_event.id == MembershipSpan.join_event_id)
        .outerjoin(Channel, Channel.id == join_event.channel_id)
        .where(*matching)
    )
    # Counted without the joins that only decorate the rows.
    member_total = count_rows(
        db, select(MembershipSpan.id).join(Member, Member.id == MembershipSpan.member_id).where(*matching)
    )
    # With a search that finds nobody, "no matches" differs from a group with nobody in it.
    any_member = bool(member_total) or (
        bool(q)
        and db.scalar(
            select(MembershipSpan.id).join(Member, Member.id == MembershipSpan.member_id).where(*spans).limit(1)
        )
        is not None
    )
    sort = page.sort(MEMBER_SORTS, "joined", descending_first=("joined", "left"))
    order = {
        "name": page.pinyin(func.coalesce(func.nullif(Member.display_name, ""), Member.external_id)),
        "joined": MembershipSpan.joined_at,
        "left": MembershipSpan.left_at,
    }[sort.key]
    paging = page.paging(member_total, PAGE_SIZE)
    member_rows = db.execute(
        members_query.order_by(sort.apply(order), Member.id).limit(paging.size).offset(paging.offset)
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
            "status": status,
            "statuses": MEMBER_STATUSES,
            "sort": sort,
            "any_member": any_member,
            "daily": list(reversed(daily)),
            "charts": charts,
            "portrait": portrait(db, current, today),
            "timeline": timeline(page, group.id, int_param(params.get("before"), MAX_BIGINT)),
        },
    )


def timeline(page: ConsolePage, group_id: int, before: int | None) -> dict[str, Any]:
    """The group's latest joins, leaves and messages, newest first, from event id ``before`` down."""
    db = page.db
    # The newest id of the whole log (one B-tree lookup); the org filter is in the query below.
    newest = (db.scalar(select(func.max(Event.id))) or 0) + 1
    # A ?before= past the newest event (a hand-made URL) starts at the newest.
    top = min(before, newest) if before is not None else newest
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

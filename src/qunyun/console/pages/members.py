"""Members: the filterable list and one member's page (persona, tags, memberships, orders)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import func, select

from qunyun.analytics.portrait import age_band, member_tiers
from qunyun.auth.scope import group_id_visible, group_visible, member_visible, require_member
from qunyun.console.web import ConsolePage, int_param, path_id
from qunyun.crm.service import tags_of
from qunyun.groups.service import count_rows, list_memberships
from qunyun.locale import Msg
from qunyun.models import Channel, Event, EventKind, Group, Member, MembershipSpan, Order, Refund, Tag, Tagging

router = APIRouter()
PAGE_SIZE = 50
# The member list's sortable columns (?sort=): names and regions in pinyin order, age youngest
# first, "first_seen" (the default) newest first.
SORTS: dict[str, Any] = {
    "name": func.coalesce(func.nullif(Member.display_name, ""), Member.external_id),
    "region": func.nullif(Member.region, ""),
    "age": -Member.birth_year,
    "first_seen": Member.first_seen_at,
}
HISTORY_LIMIT = 200


@router.get("/members")
def member_list(page: ConsolePage) -> Response:
    db, scope, params = page.db, page.scope, page.request.query_params
    query = select(Member).where(Member.org_id == scope.org_id, member_visible(scope), Member.erased_at.is_(None))
    filters: dict[str, object] = {}
    if (group_id := int_param(params.get("group"))) is not None:
        # Only a visible group filters; another id matches nobody rather than revealing anything.
        spans = select(MembershipSpan.member_id).where(
            MembershipSpan.org_id == scope.org_id,
            MembershipSpan.group_id == group_id,
            MembershipSpan.left_at.is_(None),
            group_id_visible(MembershipSpan.group_id, scope),
        )
        query = query.where(Member.id.in_(spans))
        filters["group"] = group_id
    if (tag_id := int_param(params.get("tag"))) is not None:
        query = query.where(Member.id.in_(select(Tagging.member_id).where(Tagging.tag_id == tag_id)))
        filters["tag"] = tag_id
    if (channel_id := int_param(params.get("channel"))) is not None:
        joined = select(Event.member_id).where(
            Event.org_id == scope.org_id, Event.kind == int(EventKind.MEMBER_JOINED), Event.channel_id == channel_id
        )
        query = query.where(Member.id.in_(joined))
        filters["channel"] = channel_id
    for name in ("gender", "region"):
        if value := params.get(name, "").strip():
            query = query.where(getattr(Member, name) == value)
            filters[name] = value
    if q := params.get("q", "").strip():
        query = query.where(Member.display_name.icontains(q, autoescape=True) | (Member.external_id == q))
        filters["q"] = q
    total = count_rows(db, query)
    # "No matches" (filters hide everyone) differs from "no members yet".
    any_member = bool(total) or (
        db.scalar(
            select(Member.id)
            .where(Member.org_id == scope.org_id, member_visible(scope), Member.erased_at.is_(None))
            .limit(1)
        )
        is not None
    )
    sort = page.sort(SORTS, "first_seen", descending_first=("first_seen",))
    paging = page.paging(total, PAGE_SIZE)
    order = SORTS[sort.key]
    if sort.key in ("name", "region"):
        order = page.pinyin(order)
    members = db.scalars(
        query.order_by(sort.apply(order), Member.id.desc()).limit(paging.size).offset(paging.offset)
    ).all()
    ids = [m.id for m in members]
    in_groups = (
        dict(
            db.execute(
                select(MembershipSpan.member_id, func.count())
                .where(
                    MembershipSpan.member_id.in_(ids),
                    MembershipSpan.left_at.is_(None),
                    group_id_visible(MembershipSpan.group_id, scope),
                )
                .group_by(MembershipSpan.member_id)
            ).all()
        )
        if ids
        else {}
    )
    t = page.t
    region = page.pinyin(Member.region)  # selected as ordered: PostgreSQL's DISTINCT needs that
    options = {
        "groups": db.execute(
            select(Group.id, Group.name).where(group_visible(scope)).order_by(page.pinyin(Group.name))
        ).all(),
        "tags": db.execute(
            select(Tag.id, Tag.name).where(Tag.org_id == scope.org_id).order_by(page.pinyin(Tag.name))
        ).all(),
        "channels": db.execute(
            select(Channel.id, Channel.name).where(Channel.org_id == scope.org_id).order_by(Channel.id)
        ).all(),
        "genders": [("male", t("gender_male")), ("female", t("gender_female"))],
        "regions": [
            (r, r)
            for r in db.scalars(
                select(region)
                .where(Member.org_id == scope.org_id, member_visible(scope), Member.region != "")
                .distinct()
                .order_by(region)
            )
        ],
    }
    return page.render(
        "members.html",
        "members",
        {
            "members": members,
            "total": total,
            "filters": filters,
            "options": options,
            "tags": tags_of(db, ids),
            "in_groups": in_groups,
            "tiers": member_tiers(db, scope.org_id, ids),
            "ages": {m.id: age_band(m.birth_year, page.today()) for m in members},
            "paging": paging,
            "sort": sort,
            "any_member": any_member,
        },
    )


@router.get("/members/{member_id}")
def member_detail(page: ConsolePage, member_id: str) -> Response:
    db, scope = page.db, page.scope
    member = require_member(db, scope, path_id(member_id, Msg("tables.no_member", id=member_id)))
    memberships, span_total = list_memberships(db, scope, member_id=member.id, limit=HISTORY_LIMIT)
    # Newest first, and per group whether the member is in it now (an open span) or left.
    memberships.sort(key=lambda s: (s.joined_at, s.id), reverse=True)
    in_now = {s.group_id for s in memberships if s.left_at is None}
    channel_ids = {s.channel_id for s in memberships if s.channel_id is not None}
    channels = (
        dict(db.execute(select(Channel.id, Channel.name).where(Channel.id.in_(channel_ids))).all())
        if channel_ids
        else {}
    )
    names = dict(db.execute(select(Group.id, Group.name).where(Group.id.in_({m.group_id for m in memberships}))).all())
    orders_query = select(Order).where(Order.org_id == scope.org_id, Order.member_id == member.id)
    if not scope.whole_org:
        # Scoped staff see the orders placed in their groups.
        orders_query = orders_query.where(group_id_visible(Order.group_id, scope))
    orders = db.scalars(orders_query.order_by(Order.paid_at.desc()).limit(HISTORY_LIMIT)).all()
    refunded = (
        dict(
            db.execute(
                select(Refund.order_ref, func.sum(Refund.amount_fen))
                .where(Refund.org_id == scope.org_id, Refund.order_ref.in_([o.external_id for o in orders]))
                .group_by(Refund.order_ref)
            ).all()
        )
        if orders
        else {}
    )
    return page.render(
        "member_detail.html",
        "members",
        {
            "member": member,
            "age": age_band(member.birth_year, page.today()),
            "tags": tags_of(db, [member.id]).get(member.id, []),
            "memberships": memberships,
            "span_total": span_total,
            "group_names": names,
            "in_now": in_now,
            "channels": channels,
            "orders": orders,
            "refunded": refunded,
            "tier": member_tiers(db, scope.org_id, [member.id])[member.id],
        },
    )

"""Staff and assignments: who runs which groups, and each person's workload."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import case, func, select

from qunyun.console.collation import pinyin_key
from qunyun.console.web import ConsolePage
from qunyun.models import Group, GroupDaily, Staff, StaffGroupAssignment, StaffTask
from qunyun.timeutil import day_key, utcnow

router = APIRouter()
# 004 §三.2: a full-time operator runs 5-10 groups.
GROUPS_PER_OPERATOR = (5, 10)
NUMBER_SORTS = ("groups", "members", "actives", "tasks", "overdue")
SORTS = ("name", "role", *NUMBER_SORTS)
# The role column sorts by rank, not by the codes' spelling.
ROLE_ORDER = {role: rank for rank, role in enumerate(("lead", "owner", "admin", "operator", "analyst"))}


@router.get("/staff")
def staff_list(page: ConsolePage) -> Response:
    db, scope = page.db, page.scope
    query = select(Staff).where(Staff.org_id == scope.org_id)
    if not scope.whole_org:
        query = query.where(Staff.id == scope.staff_id)  # scoped staff see their own workload
    people = db.scalars(query).all()
    ids = [p.id for p in people]
    # Groups per person: owned, or assigned (as admin/operator).
    links: dict[int, dict[int, str]] = {i: {} for i in ids}
    for group_id, owner_id in db.execute(
        select(Group.id, Group.owner_id).where(Group.org_id == scope.org_id, Group.owner_id.in_(ids))
    ):
        if owner_id is not None:
            links[owner_id][group_id] = "owner"
    for staff_id, group_id, role in db.execute(
        select(StaffGroupAssignment.staff_id, StaffGroupAssignment.group_id, StaffGroupAssignment.role).where(
            StaffGroupAssignment.staff_id.in_(ids)
        )
    ):
        links[staff_id].setdefault(group_id, role)
    group_ids = {g for per in links.values() for g in per}
    groups = (
        {g.id: g for g in db.scalars(select(Group).where(Group.org_id == scope.org_id, Group.id.in_(group_ids)))}
        if group_ids
        else {}
    )
    actives = (
        dict(
            db.execute(
                select(GroupDaily.group_id, GroupDaily.actives).where(
                    GroupDaily.org_id == scope.org_id,
                    GroupDaily.day == day_key(page.today()),
                    GroupDaily.group_id.in_(group_ids),
                )
            ).all()
        )
        if group_ids
        else {}
    )
    # Open tasks per person, and how many of them are past due: one pass over the open tasks.
    tasks = {
        assignee: (int(n), int(late or 0))
        for assignee, n, late in db.execute(
            select(StaffTask.assignee_id, func.count(), func.sum(case((StaffTask.due_at < utcnow(), 1), else_=0)))
            .where(StaffTask.org_id == scope.org_id, StaffTask.status == "open", StaffTask.assignee_id.in_(ids))
            .group_by(StaffTask.assignee_id)
        )
    }
    rows: list[dict[str, Any]] = []
    lo, hi = GROUPS_PER_OPERATOR
    for person in people:
        mine = [groups[g] for g in links[person.id] if g in groups]
        owned = sum(1 for g in links[person.id].values() if g == "owner")
        runs_groups = person.role in ("owner", "admin", "operator")
        load = "" if not runs_groups else "under" if len(mine) < lo else "over" if len(mine) > hi else "ok"
        rows.append(
            {
                "staff": person,
                "groups": sorted(mine, key=lambda g: pinyin_key(g.name)),
                "owned": owned,
                "members": sum(g.member_count for g in mine),
                "actives": sum(actives.get(g.id, 0) for g in mine),
                "tasks": tasks.get(person.id, (0, 0))[0],
                "overdue": tasks.get(person.id, (0, 0))[1],
                "load": load,
                "roles": links[person.id],
            }
        )
    # Sorted here, not in SQL: the figures are sums over several queries, and the list is one
    # organisation's staff (unpaged). Names in pinyin order, figures largest first.
    sort = page.sort(SORTS, "role", descending_first=NUMBER_SORTS)
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "name": lambda r: pinyin_key(r["staff"].display_name),
        "role": lambda r: (ROLE_ORDER.get(r["staff"].role, len(ROLE_ORDER)), pinyin_key(r["staff"].display_name)),
        "groups": lambda r: len(r["groups"]),
        **{key: itemgetter(key) for key in ("members", "actives", "tasks", "overdue")},
    }
    rows.sort(key=lambda r: r["staff"].id)
    rows.sort(key=keys[sort.key], reverse=sort.descending)
    return page.render("staff.html", "staff", {"rows": rows, "range": GROUPS_PER_OPERATOR, "sort": sort})

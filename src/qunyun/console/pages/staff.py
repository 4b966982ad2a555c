"""Staff and assignments: who runs which groups, and each person's workload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from qunyun.console.web import ConsolePage
from qunyun.db.collation import pinyin_key
from qunyun.team.service import GROUPS_PER_OPERATOR, WorkloadRow, workload

router = APIRouter()
NUMBER_SORTS = ("groups", "members", "actives", "tasks", "overdue")
SORTS = ("name", "role", *NUMBER_SORTS)
# The role column sorts by rank, not by the codes' spelling.
ROLE_ORDER = {role: rank for rank, role in enumerate(("lead", "owner", "admin", "operator", "analyst"))}


@router.get("/staff")
def staff_list(page: ConsolePage) -> Response:
    rows = workload(page.db, page.scope, page.today())
    for row in rows:
        row.groups.sort(key=lambda g: pinyin_key(g.name))
    # Sorted here, not in SQL: the figures are sums over several queries, and the list is one
    # organisation's staff (unpaged). Names in pinyin order, figures largest first.
    sort = page.sort(SORTS, "role", descending_first=NUMBER_SORTS)
    keys: dict[str, Callable[[WorkloadRow], Any]] = {
        "name": lambda r: pinyin_key(r.staff.display_name),
        "role": lambda r: (ROLE_ORDER.get(r.staff.role, len(ROLE_ORDER)), pinyin_key(r.staff.display_name)),
        "groups": lambda r: len(r.groups),
        "members": lambda r: r.members,
        "actives": lambda r: r.actives,
        "tasks": lambda r: r.tasks,
        "overdue": lambda r: r.overdue,
    }
    rows.sort(key=lambda r: r.staff.id)
    rows.sort(key=keys[sort.key], reverse=sort.descending)
    return page.render("staff.html", "staff", {"rows": rows, "range": GROUPS_PER_OPERATOR, "sort": sort})

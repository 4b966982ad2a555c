"""The stats services narrow by the caller's scope themselves (issue 9, point 8): a group owner
gets their groups and a total over them, never another group's rows, and asking for a group out
of sight is NotFound; callers without a person read the organisation through Scope.organisation."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from qunyun.analytics import stats
from qunyun.analytics.intraday import today_and_yesterday
from qunyun.analytics.overview import trend
from qunyun.auth.scope import Scope, require_write
from qunyun.errors import Forbidden, NotFound
from qunyun.models import Group, Role, Staff
from tests.api.conftest import World, password_hash, world
from tests.console.helpers import qiji_organisation

__all__ = ["password_hash", "world"]
ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 22, 0, tzinfo=ZONE)


def _at(hour: int) -> str:
    return datetime(2026, 3, 2, hour, 0, tzinfo=ZONE).isoformat()


def _events() -> list[dict[str, object]]:
    """Three groups: a in r1 and r2, b in r2 (posts, pays), c in r3 only (posts, pays)."""
    out: list[dict[str, object]] = [
        {"id": f"c-{g}", "ts": _at(8), "kind": "group.created", "group": g, "name": f"群 {g}"}
        for g in ("r1", "r2", "r3")
    ]
    for i, (group, member) in enumerate((("r1", "a"), ("r2", "a"), ("r2", "b"), ("r3", "c"))):
        out.append({"id": f"j{i}", "ts": _at(9), "kind": "member.joined", "group": group, "member": member})
    out += [
        {"id": "p-b", "ts": _at(10), "kind": "message.posted", "group": "r2", "member": "b", "msg_type": "text"},
        {"id": "p-c", "ts": _at(10), "kind": "message.posted", "group": "r3", "member": "c", "msg_type": "text"},
        {"id": "o-b", "ts": _at(11), "kind": "order.paid", "order": "o-b", "member": "b", "amount": "30.00"},
        {"id": "o-c", "ts": _at(11), "kind": "order.paid", "order": "o-c", "member": "c", "amount": "70.00"},
    ]
    return out


def _arrange(world: World, password_hash: str) -> tuple[int, dict[str, int], Scope, Scope]:
    """The qiji organisation with r1 and r2 owned by a group owner: (org id, group ids by
    external id, the owner's scope, the lead's scope)."""
    org_id = qiji_organisation(world, password_hash, _events())
    with world.db() as s:
        lead = s.scalar(select(Staff).where(Staff.username == "qiji-lead"))
        assert lead is not None
        owner = Staff(
            org_id=org_id,
            username="qiji-owner",
            display_name="Owner",
            password_hash=password_hash,
            role="owner",
            created_at=NOW,
        )
        s.add(owner)
        s.flush()
        s.execute(
            update(Group).where(Group.org_id == org_id, Group.external_id.in_(["r1", "r2"])).values(owner_id=owner.id)
        )
        groups = {e: int(i) for i, e in s.execute(select(Group.id, Group.external_id).where(Group.org_id == org_id))}
        s.commit()
        return (
            org_id,
            groups,
            Scope(staff_id=owner.id, org_id=org_id, role=Role.OWNER),
            Scope(staff_id=lead.id, org_id=org_id, role=Role.LEAD),
        )


def test_an_owner_gets_their_groups_and_a_total_over_them(world: World, password_hash: str) -> None:
    org_id, groups, owner, lead = _arrange(world, password_hash)
    with world.db() as s:
        rows = stats.daily(s, owner, DAY, DAY)
        assert [r["group"] for r in rows] == [None, "r1", "r2"]
        # a (in r1 and r2) counts once; c, in r3 only, not at all.
        total = rows[0]
        assert (total["joins"], total["members"], total["actives"]) == (2, 2, 1)
        # The same as the organisation's figures over those two groups, asked for by a system caller.
        system = Scope.organisation(org_id)
        assert rows == stats.daily(s, system, DAY, DAY, [groups["r1"], groups["r2"]])
        # The lead's total is the organisation's: three members.
        assert stats.daily(s, lead, DAY, DAY, per_group=False)[0]["members"] == 3
        assert [r["group"] for r in stats.weekly(s, owner, DAY, DAY)] == [None, "r1", "r2"]
        week = stats.weekly(s, owner, DAY, DAY, per_group=False)[0]
        assert (week["converted"], week["gmv"]) == (1, "30.00")  # b's order; c's is not theirs
        assert stats.orders_by_day(s, owner, DAY, DAY) == [(1, 3000)]
        assert stats.orders_by_day(s, lead, DAY, DAY) == [(2, 10000)]
        today, _ = today_and_yesterday(s, owner, NOW, ZONE)
        assert (today["members"], today["orders"], today["gmv_fen"]) == (2, 1, 3000)
        assert trend(s, owner, DAY, days=1)[0]["gmv_fen"] == 3000


@pytest.mark.parametrize("read", ["daily", "weekly", "orders_by_day", "today_and_yesterday"])
def test_a_group_out_of_sight_is_not_found(world: World, password_hash: str, read: str) -> None:
    _, groups, owner, lead = _arrange(world, password_hash)
    with world.db() as s:

        def call(scope: Scope, ids: list[int]) -> object:
            if read == "today_and_yesterday":
                return today_and_yesterday(s, scope, NOW, ZONE, ids)
            return getattr(stats, read)(s, scope, DAY, DAY, ids)

        with pytest.raises(NotFound) as raised:
            call(owner, [groups["r1"], groups["r3"]])
        assert raised.value.status_code == 404 and raised.value.field == "group_id"
        call(lead, [groups["r3"]])  # the lead sees it
        # Another organisation's group is not found for anyone.
        other = world.groups["g1"]
        with pytest.raises(NotFound):
            call(lead, [other])


def test_the_organisation_scope_reads_everything_and_writes_nothing(world: World) -> None:
    scope = Scope.organisation(world.org_a)
    assert scope.whole_org and scope.system and not scope.can_write and not scope.is_lead
    with pytest.raises(Forbidden):
        require_write(scope)

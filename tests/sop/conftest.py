"""An organisation running SOP plans on a simulated platform bound in this process: a lead, an
admin, a group owner and an operator; groups S1 and S2 (owned by the owner, the operator and
the admin assigned to S1), all on the simulator connection; a playbook and a community."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.connections.service import default_connection
from qunyun.connectors.base import PlatformProfile, get_profile
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector, VirtualClock
from qunyun.db.session import unit_of_work
from qunyun.models import Community, Group, Playbook, Role, SopRun, StaffGroupAssignment
from qunyun.sop.types import Executor, Material, MaterialKind, Phase, StepSpec
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from qunyun.worker.runner import Worker, load_handler_modules

ZONE = ZoneInfo("Asia/Shanghai")

__all__ = ["SopWorld", "campaign_steps", "daily_steps", "sop_world"]


@dataclass
class SopWorld:
    db: sessionmaker[Session]
    org_id: int
    staff: dict[str, int]
    groups: dict[str, int]
    playbook_id: int
    community_id: int
    connection_id: int
    sim: SimulatorConnector
    platform: str = "simulator"
    extra: dict[str, int] = field(default_factory=dict)

    def scope(self, who: str = "lead") -> Scope:
        roles = {"lead": Role.LEAD, "admin": Role.ADMIN, "owner": Role.OWNER, "operator": Role.OPERATOR}
        if who == "analyst":
            return Scope(staff_id=self.staff["analyst"], org_id=self.org_id, role=Role.ANALYST)
        return Scope(staff_id=self.staff[who], org_id=self.org_id, role=roles[who])

    def add_group(
        self, key: str, *, playbook: bool = False, community: bool = False, owner: str | None = "owner"
    ) -> int:
        self.sim.sim.create_group(f"{key} 群", group_id=key)
        with unit_of_work(self.db) as s:
            group = Group(
                org_id=self.org_id,
                platform=self.platform,
                external_id=key,
                name=f"{key} 群",
                connection_id=self.connection_id,
                playbook_id=self.playbook_id if playbook else None,
                community_id=self.community_id if community else None,
                owner_id=self.staff[owner] if owner else None,
                member_count=42,
                status="active",
                created_at=utcnow(),
            )
            s.add(group)
            s.flush()
            self.groups[key] = group.id
            return group.id

    def runs(self, **where: int) -> list[SopRun]:
        with self.db() as s:
            query = select(SopRun).order_by(SopRun.due_at, SopRun.id)
            for key, value in where.items():
                query = query.where(getattr(SopRun, key) == value)
            return list(s.scalars(query))

    def run_jobs(self, now: datetime | None = None) -> int:
        """Run every job due (by ``now``, default the wall clock), and those they queue."""
        clock = (lambda: int(now.timestamp() * 1_000_000)) if now is not None else None
        worker = Worker("sop-test", factory=self.db, **({"clock": clock} if clock else {}))
        ran = 0
        while True:
            jobs = worker.claim_batch(50)
            if not jobs:
                return ran
            worker.execute_batch(jobs)
            ran += len(jobs)


def daily_steps(executor: Executor = Executor.BOT) -> list[StepSpec]:
    """The seeds' rhythm in three slots: 早安语 08:00, 活跃活动 12:00 (assisted by default), 晚安语 20:00."""
    return [
        StepSpec(
            at=time(8, 0), category="早安语", title="早安", script="{group_name}的朋友们早上好！今天是{date}{weekday}"
        ),
        StepSpec(
            at=time(12, 0),
            category="活跃活动",
            title="午间抽奖",
            script="今天的抽奖开始啦，群里现有{member_count}位小伙伴",
            prompt="回复 1 参与",
            executor=executor,
            evidence_required=executor != Executor.BOT,
            materials=(Material(MaterialKind.IMAGE, "https://example.com/lottery.png", "抽奖海报"),),
        ),
        StepSpec(at=time(20, 0), category="晚安语", title="晚安", script="晚安，{group_name}，明天见"),
    ]


def campaign_steps() -> list[StepSpec]:
    return [
        StepSpec(at=time(9, 0), category="新品预告", script="下周新品预告（{day}）", phase=Phase.BEFORE, day=-7),
        StepSpec(at=time(10, 0), category="活跃活动", script="活动开始！", phase=Phase.DURING, day=0),
        StepSpec(
            at=time(19, 30),
            category="内容推送",
            script="复盘：{plan_name}",
            phase=Phase.AFTER,
            day=14,
            executor=Executor.OPERATOR,
        ),
    ]


def local(d: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(d, time(hh, mm), ZONE)


def tomorrow() -> date:
    return datetime.now(UTC).astimezone(ZONE).date() + timedelta(days=1)


@pytest.fixture
def sop_world(db: sessionmaker[Session]) -> Iterator[SopWorld]:
    yield from make_world(db, get_profile("simulator"))


def make_world(db: sessionmaker[Session], profile: PlatformProfile) -> Iterator[SopWorld]:
    load_handler_modules()
    connector = SimulatorConnector(clock=VirtualClock(utcnow()), profile=profile, seed=3)
    with unit_of_work(db) as s:
        org = create_organisation(s, name="骑迹单车", slug="qiji")
        staff = {}
        for key, role in (
            ("lead", "lead"),
            ("admin", "admin"),
            ("owner", "owner"),
            ("operator", "operator"),
            ("analyst", "analyst"),
        ):
            staff[key] = create_staff(
                s, org.id, username=key, password="password-1", role=role, display_name=f"{key}老师"
            ).id
        community = Community(org_id=org.id, name="骑友会", created_at=utcnow())
        s.add(community)
        s.flush()
        book = Playbook(org_id=org.id, name="地方骑友群", community_id=community.id, settings={}, created_at=utcnow())
        s.add(book)
        s.flush()
        connection = default_connection(s, org.id, profile.platform)
        ids = (org.id, book.id, community.id, connection.id)
    world = SopWorld(
        db,
        ids[0],
        staff,
        {},
        playbook_id=ids[1],
        community_id=ids[2],
        connection_id=ids[3],
        sim=connector,
        platform=profile.platform,
    )
    with bind(ids[3], connector):
        world.add_group("S1")
        world.add_group("S2")
        with unit_of_work(db) as s:
            for key, role in (("operator", "operator"), ("admin", "admin")):
                s.add(
                    StaffGroupAssignment(
                        staff_id=staff[key], group_id=world.groups["S1"], role=role, created_at=utcnow()
                    )
                )
        yield world

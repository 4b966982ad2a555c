"""The demo community: the bicycle brand of seed 004, simulated over the last 28 days.

An invented brand (骑迹单车) with a lead, group owners running 5 groups each, an admin and an
analyst; a regional community (地方群: 华东, 华南, 华北, 东北…) and a core community (核心群)
for high-value members, both positioned (M1) and with playbooks (naming template, rules,
welcome); the seed's channels with their costs. The last simulated day ends at ``end`` (now by
default) so that "today" in the console has data.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope
from qunyun.community.service import (
    COMMUNITY_FIELDS,
    PLAYBOOK_FIELDS,
    clean,
    create_community,
    playbook_of,
    update_community,
)
from qunyun.db.session import get_sessionmaker, unit_of_work
from qunyun.errors import Conflict
from qunyun.locale import Msg
from qunyun.models import Group, Organisation, Role, Staff
from qunyun.onboarding.benefits import import_codes
from qunyun.simulate.runner import SimulationResult, run_scenario
from qunyun.simulate.scenario import CORE_NAMING, REGIONAL_NAMING, Scenario, StaffSpec, build_groups
from qunyun.simulate.sop_rhythm import SopReplay, setup_sop
from qunyun.simulate.sop_rhythm import finish as finish_sop
from qunyun.team.service import assign_group
from qunyun.timeutil import utcnow

ORG_NAME = "骑迹单车"
ORG_SLUG = "qiji"
BRAND = "骑迹"
DEFAULT_MEMBERS = 1500
OWNERS = ("阿强", "小林", "大鹏", "晓峰", "木木")
GROUPS_PER_OWNER = 5

LOCAL_RULES = (
    "【我们是谁】骑迹单车官方骑友群，由品牌群主和管理员服务大家。\n"
    "【入群能得到什么】本地骑行活动、新品尝鲜、骑行知识、群友专享福利。\n"
    "【群名片】请改为：城市-昵称-车型，例如 上海-阿杰-公路车。\n"
    "【禁止事项】广告、链接、二维码、拉人刷单、攻击谩骂、发布违法信息；违者警告一次，再犯移出。"
)
CORE_RULES = (
    "【我们是谁】骑迹核心骑友群，成员为品牌的老朋友和高价值用户，由总群主直接服务。\n"
    "【入群能得到什么】新品优先体验、线下活动优先报名、专属客服、共创产品建议。\n"
    "【群名片】城市-昵称。\n"
    "【禁止事项】广告、外部链接、泄露未发布的新品信息。"
)


@dataclass
class DemoResult:
    """What ``load_demo`` created, and the logins to try it with."""

    org_id: int
    org_slug: str
    org_name: str
    lead_username: str
    lead_password: str
    owner_username: str
    owner_password: str
    passwords: dict[str, str]  # every staff account created → its password
    roles: dict[str, str]  # every staff account created → its role
    counts: dict[str, int]
    simulation: SimulationResult = field(repr=False)


def demo_scenario(
    *, seed: int = 4, days: int = 28, members: int | None = None, end: datetime | None = None
) -> Scenario:
    """The demo's scenario: 5 owners × 5 groups (22 regional, 3 core), ending at ``end``."""
    end = (end or utcnow()).replace(microsecond=0)
    owners = [f"owner{i + 1}" for i in range(len(OWNERS))]
    staff = [StaffSpec("lead", "lead", "总群主·老周")]
    staff += [StaffSpec(username, "owner", f"群主·{name}") for username, name in zip(owners, OWNERS, strict=True)]
    staff += [StaffSpec("admin1", "admin", "管理员·小雨"), StaffSpec("analyst", "analyst", "数据分析·Coco")]
    return Scenario(
        seed=seed,
        start=end - timedelta(days=days),
        days=days,
        members=members if members is not None else DEFAULT_MEMBERS,
        groups=build_groups(len(owners) * GROUPS_PER_OWNER, brand=BRAND, owners=owners, core=3),
        staff=staff,
        brand=BRAND,
        moderation=True,
    )


LOCAL = dict(
    name="骑迹地方骑友群",
    community_type="local",
    purpose="沉淀天猫/淘宝和线下赛事的骑行用户，按地区组织线下骑行，增强粘性并带动复购。",
    target_persona="25-45 岁的骑行爱好者，以公路车和山地车用户为主，一二线城市，已购或关注骑迹产品。",
    value_offered=["social", "product", "content", "service", "welfare"],
    channels_plan="线下赛事赞助拉种子用户；短信引流（8%）和包裹卡（10%）沉淀电商用户；小红书、抖音、知乎内容引流。",
    rhythm=(
        "每日 08:00-20:00 每 1-2 小时一条内容；每周固定活动（车手介绍、视频分享、新品尝鲜、邀请奖励）；"
        "每月一次本地线下骑行。"
    ),
    division_of_labour=(
        "总群主负责整体数据与活动策划；每位群主负责 5-10 个群的日常运营；每群 1-3 名管理员负责群管理和答疑。"
    ),
    values="以内容和服务为主，不天天发广告；先在一个群测试，数据稳定后再复制。",
    rules=LOCAL_RULES,
    organisation_model="lead-owner-admin",
    goals="建设 10 个 400 人以上的地方群；沉淀 50 个地方 KOC。",
)
CORE = dict(
    name="骑迹核心骑友群",
    community_type="core",
    purpose="服务高价值、高认同、高活跃的用户，优先提供服务和运营资源，培养品牌 KOC。",
    target_persona="按订单频次和客单价识别的高价值用户（累计 3 单或消费 2000 元以上），经客服电话回访后邀请入群。",
    value_offered=["product", "service", "social"],
    channels_plan="只通过客服回访邀请，不公开二维码。",
    rhythm="每周一次新品共创话题；线下活动优先报名；节日关怀。",
    division_of_labour="总群主亲自运营，群主协助；专属客服答疑。",
    values="尊重老用户，先听意见再做决定。",
    rules=CORE_RULES,
    organisation_model="lead-owner-admin",
    goals="核心群成员月活跃率 60% 以上；复购率 40% 以上。",
)
WELFARE = dict(
    name="骑迹福利群",
    community_type="welfare",
    purpose="限时折扣、新人专享和抽奖活动，转化新用户的首单（计划中，尚未建群）。",
    target_persona="通过包裹卡和短信进来、尚未在社群下单的新用户。",
    value_offered=["welfare", "product"],
    channels_plan="包裹卡、短信。",
    rhythm="每周二、周五各一次福利活动。",
    division_of_labour="群主轮值，管理员负责发券和答疑。",
    values="福利真实，不夸大。",
    rules="【禁止事项】广告、刷单、倒卖优惠券。",
    organisation_model="lead-owner-admin",
    goals="新人首单转化率 15%。",
)
LOCAL_PLAYBOOK = {
    "naming_template": REGIONAL_NAMING.replace("{brand}", BRAND),
    "welcome_text": (
        "欢迎 {nickname} 加入{group_name}！请先把群名片改成「城市-昵称-车型」，"
        "新人福利券码已私信发给你，群公告里有本周骑行活动，有问题随时找{owner_name}。"
    ),
}
# The new-member benefit of the regional groups: a pool of coupon codes (docs/onboarding.md),
# fewer than the demo's members so that it runs empty and its owner gets the task to refill it.
DEMO_COUPONS = 1000
CORE_PLAYBOOK = {
    "naming_template": CORE_NAMING.replace("{brand}", BRAND),
    "welcome_text": "欢迎来到骑迹核心骑友群！这里是品牌的老朋友们，新品体验和线下活动都会优先通知大家。",
}


def _communities(session: Session, lead: Scope) -> dict[str, tuple[int, int]]:
    """The positioned communities and their playbooks, created as a lead would (validated and
    audited by the community service): tier → (community id, playbook id)."""
    out: dict[str, tuple[int, int]] = {}
    for tier, values, playbook_values in (
        ("normal", LOCAL, LOCAL_PLAYBOOK),
        ("core", CORE, CORE_PLAYBOOK),
        ("", WELFARE, {}),  # planned: no groups yet
    ):
        community = create_community(session, lead, clean(values, COMMUNITY_FIELDS))
        if playbook_values:
            update_community(session, lead, community, {}, clean(playbook_values, PLAYBOOK_FIELDS))
        playbook = playbook_of(session, community)
        if tier and playbook is not None:
            out[tier] = (community.id, playbook.id)
        if tier == "normal" and playbook is not None:
            codes = "\n".join(f"QJ-NEW-{n:05d}" for n in range(1, DEMO_COUPONS + 1))
            import_codes(session, lead, playbook.id, codes.encode())
    return out


def _configure_groups(session: Session, org_id: int, group_ids: dict[str, int]) -> None:
    """Attach the groups to their community and playbook; the admin helps owner1's groups."""
    staff = {
        name: staff_id
        for name, staff_id in session.execute(select(Staff.username, Staff.id).where(Staff.org_id == org_id))
    }
    by_tier = _communities(session, Scope(staff_id=staff["lead"], org_id=org_id, role=Role.LEAD))
    for tier, (community_id, playbook_id) in by_tier.items():
        session.execute(
            update(Group)
            .where(Group.org_id == org_id, Group.tier == tier)
            .values(community_id=community_id, playbook_id=playbook_id)
        )
    owner1 = staff.get("owner1")
    admin = staff.get("admin1")
    if owner1 is not None and admin is not None:
        for (group_id,) in session.execute(select(Group.id).where(Group.org_id == org_id, Group.owner_id == owner1)):
            assign_group(session, admin, group_id, role="admin")


def _progress_bar() -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[events]:>9,} events"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    )
    task = bar.add_task("loading the demo", total=1, events=0)

    def update_bar(done: int, total: int, events: int) -> None:
        bar.update(task, completed=done, total=total, events=events)

    return bar, update_bar


def load_demo(
    *,
    seed: int = 4,
    days: int = 28,
    members: int | None = None,
    end: datetime | None = None,
    password: str | None = None,
    progress: bool = False,
) -> DemoResult:
    """Load the demo community into the configured database (QUNYUN_DATABASE_URL).

    Deterministic for a seed except for the time anchor ``end`` (default: now). ``password``
    is given to every staff account; None: a random one each. Raises ``Conflict`` when the
    organisation or one of the usernames exists.
    """
    scenario = demo_scenario(seed=seed, days=days, members=members, end=end)
    with unit_of_work(write=False) as session:
        if session.scalar(select(Organisation.id).where(Organisation.slug == ORG_SLUG)) is not None:
            raise Conflict(Msg("err.demo.exists", slug=ORG_SLUG), field="org")
        names = [s.username for s in scenario.staff]
        taken = session.scalars(select(Staff.username).where(Staff.username.in_(names))).all()
        if taken:
            raise Conflict(Msg("err.team.username_taken", username=sorted(taken)[0]), field="username")
    bar, update_bar = _progress_bar() if progress else (None, None)
    if bar is not None:
        bar.start()
    # The SOP (the seeds' daily rhythm and a 28-day campaign) runs on the simulation's clock.
    replay: list[SopReplay] = []

    def on_groups(session: Session, org_id: int, group_ids: dict[str, int]) -> None:
        _configure_groups(session, org_id, group_ids)
        end = scenario.start + timedelta(days=scenario.days)
        replay.append(setup_sop(session, org_id, start=scenario.start, end=end, factory=get_sessionmaker()))

    def on_tick(at: datetime) -> None:
        if replay:
            replay[0].tick(at)

    try:
        org, result = run_scenario(
            scenario,
            slug=ORG_SLUG,
            name=ORG_NAME,
            password=password,
            progress=update_bar,
            on_groups=on_groups,
            on_tick=on_tick,
        )
        finish_sop(get_sessionmaker(), org.org_id, scenario.start, scenario.start + timedelta(days=scenario.days))
    finally:
        if bar is not None:
            bar.stop()
    counts = {
        "groups": len(scenario.groups),
        "staff": len(scenario.staff),
        "members": result.members,
        "events": result.events,
        "messages": result.messages,
        "orders": result.orders,
        "jobs_run": result.jobs_run,
        "removed": result.removed,
    }
    return DemoResult(
        org_id=org.org_id,
        org_slug=org.slug,
        org_name=ORG_NAME,
        lead_username="lead",
        lead_password=org.passwords["lead"],
        owner_username="owner1",
        owner_password=org.passwords["owner1"],
        passwords=org.passwords,
        roles={s.username: s.role for s in scenario.staff},
        counts=counts,
        simulation=result,
    )

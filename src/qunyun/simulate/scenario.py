"""What a simulation runs: the time span, the groups and their owners, the channels with the
seed's cost models (004 §四), and the size of the population."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from qunyun.community.service import group_name
from qunyun.connectors.simulator.clock import DEFAULT_ZONE
from qunyun.simulate.personas import REGION_NAMES, REGION_WEIGHTS

# A Monday at midnight in Shanghai: the default start of `qunyun simulate`.
DEFAULT_START = datetime(2026, 3, 2, 0, 0, tzinfo=DEFAULT_ZONE)


@dataclass(frozen=True)
class ChannelSpec:
    """An acquisition channel and its cost model (money in fen).

    ``share`` is the part of the population that arrives through it; ``rate`` the share of
    touched people who join (8 % of SMS recipients, 10 % of package cards…);
    ``fixed_per_batch_fen`` a fixed cost per batch (an offline race, a KOL post);
    ``fixed_per_month_fen`` a running cost (content production), prorated per day.
    """

    code: str
    name: str
    kind: str
    share: float
    rate: float
    cost_per_touch_fen: int = 0
    reward_per_member_fen: int = 0
    fixed_per_batch_fen: int = 0
    fixed_per_month_fen: int = 0


# The seed's numbers: SMS 0.05 元 + 1.5 元 red packet at 8 % → 2.1 元/人; package card 0.1 元 +
# 1.5 元 at 10 % → 2.5 元/人; an offline race ~10,000 元 for ~100 people → 100 元/人.
CHANNELS: tuple[ChannelSpec, ...] = (
    ChannelSpec("offline_race", "线下赛事", "offline", 0.10, 0.80, fixed_per_batch_fen=1_000_000),
    ChannelSpec("sms", "短信引流", "sms", 0.30, 0.08, cost_per_touch_fen=5, reward_per_member_fen=150),
    ChannelSpec("package_card", "包裹卡", "package_card", 0.30, 0.10, cost_per_touch_fen=10, reward_per_member_fen=150),
    ChannelSpec("xiaohongshu", "小红书笔记", "content", 0.08, 0.004, fixed_per_month_fen=300_000),
    ChannelSpec("douyin", "抖音短视频", "content", 0.07, 0.002, fixed_per_month_fen=500_000),
    ChannelSpec("zhihu", "知乎回答", "content", 0.04, 0.003, fixed_per_month_fen=100_000),
    ChannelSpec("kol", "KOL评论区", "kol", 0.05, 0.01, fixed_per_batch_fen=200_000),
    ChannelSpec("referral", "老带新邀请", "referral", 0.06, 0.25, reward_per_member_fen=1000),
)


@dataclass(frozen=True)
class GroupSpec:
    key: str  # external id on the simulated platform
    name: str
    region: str  # "" for core groups (members from every region)
    tier: str  # normal | core
    owner: str  # staff username
    capacity: int = 500


@dataclass(frozen=True)
class StaffSpec:
    username: str
    role: str
    display_name: str


@dataclass
class Scenario:
    seed: int
    start: datetime
    days: int
    members: int
    groups: list[GroupSpec]
    staff: list[StaffSpec]
    channels: tuple[ChannelSpec, ...] = CHANNELS
    brand: str = "骑迹"
    # The bot's push in every group (the SOP's fixed weekly activities): at these local hours
    # on these weekdays (0 = Monday).
    push_hours: tuple[int, ...] = (20,)
    push_weekdays: tuple[int, ...] = (1, 3, 5)
    # Members arrive through scans of a live code per channel (False: straight through an
    # invite link of their region's least full group).
    live_codes: bool = True
    # qunyun moderates the groups: the organisation's default policy (moderation.service
    # .create_default_policy) with the shared sites allowed, and no owner removes spammers by
    # hand (the policy's ladder warns and removes them).
    moderation: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


def split_regions(count: int) -> list[str]:
    """``count`` regional groups over the regions, in proportion to their members (≥1 each while
    there are enough groups), largest remainder first."""
    if count <= 0:
        return []
    regions = list(REGION_NAMES)
    if count < len(regions):
        return regions[:count]
    base = {r: 1 for r in regions}
    rest = count - len(regions)
    quotas = {r: w * rest for r, w in zip(regions, REGION_WEIGHTS, strict=True)}
    for r in regions:
        base[r] += int(quotas[r])
    left = count - sum(base.values())
    for r in sorted(regions, key=lambda r: quotas[r] - int(quotas[r]), reverse=True)[:left]:
        base[r] += 1
    return [r for r in regions for _ in range(base[r])]


# The demo's naming templates (M2: brand + region + sequence number), in the placeholders a
# playbook's naming template takes (community.service.group_name).
REGIONAL_NAMING = "{brand}·{region}骑友{seq}群"
CORE_NAMING = "{brand}·核心骑友{seq}群"


def build_groups(
    total: int, *, brand: str, owners: list[str], core: int | None = None, prefix: str = "g"
) -> list[GroupSpec]:
    """Regional groups named from ``REGIONAL_NAMING`` plus core groups named from
    ``CORE_NAMING``, dealt to ``owners`` in turn (each gets a contiguous run)."""
    core = core if core is not None else max(1, min(3, total // 15))
    core = min(core, max(total - 1, 0)) if total > 1 else 0
    regions = split_regions(total - core)
    specs: list[tuple[str, str, str]] = []
    seen: dict[str, int] = {}
    for region in regions:
        seen[region] = seen.get(region, 0) + 1
        specs.append((group_name(REGIONAL_NAMING, brand=brand, region=region, seq=seen[region]), region, "normal"))
    for n in range(1, core + 1):
        specs.append((group_name(CORE_NAMING, brand=brand, seq=n), "", "core"))
    per_owner = math.ceil(len(specs) / max(1, len(owners)))
    return [
        GroupSpec(
            key=f"{prefix}{i + 1}",
            name=name,
            region=region,
            tier=tier,
            owner=owners[min(i // per_owner, len(owners) - 1)] if owners else "",
        )
        for i, (name, region, tier) in enumerate(specs)
    ]


def owners_needed(groups: int, per_owner: int = 8) -> int:
    """Group owners for ``groups`` at about ``per_owner`` each (the seed: 5-10 per full-time owner)."""
    return max(1, math.ceil(groups / per_owner))


def simulate_scenario(
    *, seed: int, days: int, groups: int, members: int, start: datetime | None = None, prefix: str | None = None
) -> Scenario:
    """The scenario of ``qunyun simulate``: one lead and owners with about 8 groups each;
    usernames start with ``prefix`` (default ``sim<seed>``), unique per run."""
    prefix = prefix or f"sim{seed}"
    owners = [f"{prefix}-owner{i + 1}" for i in range(owners_needed(groups))]
    staff = [StaffSpec(f"{prefix}-lead", "lead", "总群主")] + [
        StaffSpec(name, "owner", f"群主{i + 1}") for i, name in enumerate(owners)
    ]
    return Scenario(
        seed=seed,
        start=start or DEFAULT_START,
        days=days,
        members=members,
        groups=build_groups(groups, brand="骑迹", owners=owners),
        staff=staff,
    )

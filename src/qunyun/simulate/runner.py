"""Run a scenario: the world acts on the simulated platform, the platform's events go through
``qunyun.ingestion.service.ingest`` (the one entry point) in small committed batches, and the
jobs those batches queue (welcomes, the bot's daily pushes) run in-process against the same
simulated platform.

The run uses its organisation's simulator connection (the default one, created on first use):
its groups belong to it, and its connector is this run's simulated platform, bound to the
connection for the run (``qunyun.connectors.registry.bind``). Runs of different organisations
can therefore go on side by side in one process, each against its own platform.

One batch per simulated hour when running as fast as possible; with ``speed`` the virtual clock
follows real time ×speed and batches are as short as a simulated minute, so a console watching
the database sees the community live.
"""

from __future__ import annotations

import functools
import math
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.acquisition.schemas import ChannelCreate
from qunyun.acquisition.service import add_spend, create_channel, org_zone
from qunyun.auth.scope import Scope
from qunyun.connections.service import default_connection
from qunyun.connectors import registry
from qunyun.connectors.actions import SendGroupMessage
from qunyun.connectors.dispatch import request_action
from qunyun.connectors.simulator import SimulatedPlatform, SimulatorConnector, VirtualClock
from qunyun.crm.profiles import sync_member_profiles
from qunyun.db.base import now_micros
from qunyun.db.session import get_sessionmaker, unit_of_work
from qunyun.ingestion.service import ingest
from qunyun.livecodes import routing
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.livecodes.service import create_live_code
from qunyun.locale import Msg
from qunyun.models import Channel, Group, Job, JobStatus, Member, Role, RoutingPolicy, Staff
from qunyun.moderation.service import DEFAULT_SETTINGS, create_default_policy
from qunyun.simulate import texts
from qunyun.simulate.scenario import ChannelSpec, Scenario
from qunyun.simulate.world import DAY, HOUR, SCAN_ONLY, World
from qunyun.team.service import create_organisation, create_staff
from qunyun.worker.runner import Worker, claim_jobs, load_handler_modules

PLATFORM = "simulator"
SOURCE = "simulator"
PUSHES = (
    "晚上好！今晚 21:00 群内答题，答对 3 题送骑行水壶一个",
    "今晚打卡：晒出你今天的骑行里程，连续 7 天送码表优惠券",
    "新品尝鲜：骑行服新款上线，群友专享 9 折，回复「想要」登记",
    "邀请奖励：邀请 3 位骑友入群，送整车保养一次",
    "今日话题：你最难忘的一次骑行是哪次？",
    "分享一条{region}周边的周末骑行路线，欢迎补充",
    "国外著名车手介绍第{n}期来啦，一起看看",
)
JOB_BATCH = 200
CHUNKS = (60, 120, 300, 600, 900, 1200, 1800, 3600)
# A live code's scan limit per group: this many times the visitors a group can expect from its
# channel (regions are uneven: a race fills its own region's groups first).
LIMIT_HEADROOM = 2.0
MIN_LIMIT = 10
# What each live code's landing page promises (诱饵), by channel kind.
HOOKS = {
    "sms": "短信专属：扫码进群领 1.5 元红包，再享新人首单立减",
    "package_card": "包裹卡专属：扫码进群领 1.5 元红包和骑行保养手册",
    "offline": "赛事同城骑友群：赛后照片、本地约骑和赛事福利",
    "content": "进群领骑行路线合集，群友专享新品尝鲜",
    "kol": "KOL 粉丝专属：进群抽骑行装备",
    "referral": "好友邀请你加入骑迹骑友群，进群领新人福利",
}
FALLBACK_TEXT = "群已满，新群马上就来。请稍后再扫，或添加客服微信 qiji-kefu。"
USER_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) MicroMessenger/8.0.47"


@dataclass
class ChannelFigures:
    code: str
    name: str
    members: int
    touches: int
    cac: Decimal | None  # yuan per member


@dataclass
class SimulationResult:
    org_id: int
    seed: int
    wall_seconds: float
    events: int
    members: int
    joins: int
    leaves: int
    kicks: int
    removed: int  # members qunyun's moderation removed
    messages: int
    ads: int
    orders: int
    refunds: int
    gmv: Decimal
    refunded: Decimal
    jobs_run: int
    jobs_pending: int
    channels: list[ChannelFigures] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds > 0 else 0.0


@dataclass
class OrgSetup:
    org_id: int
    slug: str
    lead_id: int
    passwords: dict[str, str]  # username → password (as created)


Progress = Callable[[int, int, int], None]  # (seconds simulated, seconds in all, events so far)
GroupsHook = Callable[[Session, int, dict[str, int]], None]  # (session, org_id, external id → group id)
TickHook = Callable[[datetime], None]  # called with the virtual time at the end of each step


def setup_organisation(
    session: Session,
    scenario: Scenario,
    *,
    slug: str,
    name: str,
    password: str | None = None,
) -> OrgSetup:
    """The organisation, its staff and its channels (with the scenario's cost models)."""
    org = create_organisation(session, name=name, slug=slug)
    passwords: dict[str, str] = {}
    lead_id = None
    for staff in scenario.staff:
        pw = password or secrets.token_urlsafe(12)
        row = create_staff(
            session, org.id, username=staff.username, password=pw, role=staff.role, display_name=staff.display_name
        )
        passwords[staff.username] = pw
        if staff.role == Role.LEAD and lead_id is None:
            lead_id = row.id
    if lead_id is None:
        raise ValueError("a scenario needs a lead")
    scope = Scope(staff_id=lead_id, org_id=org.id, role=Role.LEAD)
    for spec in scenario.channels:
        create_channel(
            session,
            scope,
            ChannelCreate(
                code=spec.code,
                name=spec.name,
                kind=spec.kind,
                cost_per_touch=Decimal(spec.cost_per_touch_fen) / 100,
                reward_per_member=Decimal(spec.reward_per_member_fen) / 100,
                expected_rate_bp=round(spec.rate * 10_000),
            ),
        )
    return OrgSetup(org_id=org.id, slug=slug, lead_id=lead_id, passwords=passwords)


class Simulation:
    """One run of ``scenario`` into organisation ``org_id`` (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        org_id: int,
        *,
        factory: sessionmaker[Session] | None = None,
        speed: float | None = None,
        progress: Progress | None = None,
        on_groups: GroupsHook | None = None,
        on_tick: TickHook | None = None,
    ) -> None:
        self.scenario = scenario
        self.on_tick = on_tick
        self.org_id = org_id
        self.factory = factory or get_sessionmaker()
        self.speed = speed
        self.progress = progress
        self.on_groups = on_groups
        self.platform = SimulatedPlatform(seed=scenario.seed, clock=VirtualClock(scenario.start), sink=None)
        self.connector = SimulatorConnector(self.platform)
        self.world = World(scenario, self.platform)
        self.group_ids: dict[str, int] = {}
        self.events = 0
        self.jobs_run = 0
        self._worker = Worker(f"simulate:{org_id}", factory=self.factory)
        self.connection_id = 0  # the organisation's simulator connection, known once the run starts
        self.live_codes: dict[str, str] = {}  # channel code → its live code
        self._group_keys: dict[int, str] = {}
        self._scans: ExitStack | None = None
        self._scan_session: Session | None = None

    # --- the run --------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        load_handler_modules()
        started = time.perf_counter()
        with unit_of_work(self.factory) as session:
            self.connection_id = default_connection(session, self.org_id, PLATFORM).id
        with registry.bind(self.connection_id, self.connector):
            self._setup()
            self._loop(started)
            self._finish()
        return self._result(time.perf_counter() - started)

    def _setup(self) -> None:
        self.world.setup()
        with unit_of_work(self.factory) as session:
            self._ingest(session, self.platform.drain_events())
            rows = session.execute(
                select(Group.external_id, Group.id).where(
                    Group.org_id == self.org_id, Group.connection_id == self.connection_id
                )
            )
            self.group_ids = {external_id: group_id for external_id, group_id in rows}
            self._group_keys = {group_id: key for key, group_id in self.group_ids.items()}
            if self.on_groups is not None:
                self.on_groups(session, self.org_id, self.group_ids)
            if self.scenario.moderation:
                create_default_policy(session, self.org_id, settings=moderation_settings())
        if self.scenario.live_codes:
            self._create_live_codes()

    # --- live codes -----------------------------------------------------------------------

    def scan_limit(self, spec: ChannelSpec) -> int:
        """A live code's scan limit per group: room for ``LIMIT_HEADROOM`` times the visitors
        (the members the world planned for the channel, and onlookers) a regional group can
        expect from it, the codes together within a group's capacity."""
        regional = [g for g in self.scenario.groups if g.tier != "core"]
        if not regional:
            return MIN_LIMIT
        planned = Counter(agent.channel for agent in self.world.agents)

        def wanted(c: ChannelSpec) -> float:
            return LIMIT_HEADROOM * planned[c.code] * (1 + SCAN_ONLY) / len(regional)

        total = sum(max(MIN_LIMIT, math.ceil(wanted(c))) for c in self.scenario.channels)
        capacity = min(g.capacity for g in regional)
        limit = max(MIN_LIMIT, math.ceil(wanted(spec)))
        return max(1, limit * capacity // total) if total > capacity else limit

    def _create_live_codes(self) -> None:
        """One live code per channel over the regional groups (routing by the visitor's region),
        created by the lead like in the console; their invite links are asked of the simulated
        platform by the jobs that run right after."""
        regional = [self.group_ids[g.key] for g in self.scenario.groups if g.tier != "core"]
        if not regional:
            return
        with unit_of_work(self.factory) as session:
            lead = session.scalar(
                select(Staff.id).where(Staff.org_id == self.org_id, Staff.role == Role.LEAD).order_by(Staff.id)
            )
            if lead is None:
                return
            scope = Scope(staff_id=lead, org_id=self.org_id, role=Role.LEAD)
            channels = {
                code: channel_id
                for code, channel_id in session.execute(
                    select(Channel.code, Channel.id).where(Channel.org_id == self.org_id)
                )
            }
            for spec in self.scenario.channels:
                if spec.code not in channels:
                    continue
                row = create_live_code(
                    session,
                    scope,
                    LiveCodeCreate(
                        name=f"{spec.name}活码",
                        channel_id=channels[spec.code],
                        group_ids=regional,
                        policy=RoutingPolicy.REGION,
                        default_limit=self.scan_limit(spec),
                        hook_text=HOOKS.get(spec.kind, ""),
                        fallback_text=FALLBACK_TEXT,
                    ),
                )
                self.live_codes[spec.code] = row.code
        self._run_jobs()
        for code in self.live_codes.values():
            routing.forget(code)
        self.world.scanner = self._scan

    def _scan(self, channel: str, visitor: str, region: str, known: bool, at: datetime) -> tuple[str, str] | None:
        """One scan of ``channel``'s live code through the scan path (the batch's scans share a
        transaction, committed before the batch's events are ingested)."""
        code = self.live_codes.get(channel)
        if code is None:
            return None
        if self._scan_session is None:
            self._scans = ExitStack()
            self._scan_session = self._scans.enter_context(unit_of_work(self.factory))
        visit = routing.Visit(visitor[:32], known, USER_AGENT, None, region)
        result = routing.scan(self._scan_session, code, visit, now=at)
        link = result.invite_link
        if result.entry is None or link is None:
            return None
        return self._group_keys[result.entry.group_id], link

    def _commit_scans(self) -> None:
        if self._scans is not None:
            scans, self._scans, self._scan_session = self._scans, None, None
            scans.close()

    def _drop_scans(self) -> None:
        """The batch failed: its scans are rolled back with it."""
        if self._scans is not None:
            scans, self._scans, self._scan_session = self._scans, None, None
            scans.__exit__(*sys.exc_info())

    def _chunk(self) -> int:
        if self.speed is None:
            return HOUR
        return max([c for c in CHUNKS if c <= self.speed] or [CHUNKS[0]])

    def _loop(self, started: float) -> None:
        world = self.world
        chunk = self._chunk()
        t = world.t0
        total = world.t_end - world.t0
        last_trim_day = -1
        while t < world.t_end:
            end = min(world.t_end, (t // chunk + 1) * chunk)
            if (
                t % HOUR == 0
                and (t % DAY) // HOUR in self.scenario.push_hours
                and world.weekday(t // DAY) in self.scenario.push_weekdays
            ):
                self._push(t)
            try:
                world.run_until(end)
            except BaseException:
                self._drop_scans()
                raise
            self._commit_scans()
            if self.speed is not None:
                # Sleep until real time catches up with the virtual clock (×speed).
                delay = started + (end - world.t0) / self.speed - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            with unit_of_work(self.factory) as session:
                self._ingest(session, self.platform.drain_events())
                self._sync_profiles(session, world.take_first_joins())
                self._update_ledger(session)
            if self.on_tick is not None:
                # Before the jobs run: what the hook requests (the SOP's sends) goes out now.
                self.on_tick(world.instant(end))
            self._run_jobs()
            world.react(self._bot_posts())
            if end // DAY != last_trim_day:
                last_trim_day = end // DAY
                self.platform.forget_messages_before(world.instant(end - DAY))
            if self.progress is not None:
                self.progress(end - world.t0, total, self.events)
            t = end

    def _finish(self) -> None:
        """Perform whatever the run queued, retries included, while the simulated platform
        still exists: a job left behind would need a world that is gone."""
        self._run_jobs(ahead_seconds=2 * HOUR)
        with unit_of_work(self.factory) as session:
            self._ingest(session, self.platform.drain_events())

    def _ingest(self, session: Session, events: list[dict[str, Any]]) -> None:
        if events:
            result = ingest(
                session,
                self.org_id,
                events,
                platform=PLATFORM,
                source=SOURCE,
                live=True,
                connection_id=self.connection_id,
            )
            self.events += result.stored

    def _sync_profiles(self, session: Session, external_ids: list[str]) -> None:
        """Pull the persona of members first seen in this batch through the connector."""
        if not external_ids:
            return
        ids = [
            member_id
            for (member_id,) in session.execute(
                select(Member.id).where(
                    Member.org_id == self.org_id, Member.platform == PLATFORM, Member.external_id.in_(external_ids)
                )
            )
        ]
        sync_member_profiles(session, self.org_id, self.connector, ids)

    def _update_ledger(self, session: Session) -> None:
        """Channel touches and fixed costs as the world incurred them, each dated the day it was
        spent (the channel's operation, not a staff edit: no audit entry)."""
        spent: dict[tuple[str, date], list[int]] = {}
        zone = org_zone(session, self.org_id)
        for t, code, touches, fixed in self.world.take_spend():
            day = self.world.instant(t).astimezone(zone).date()
            entry = spent.setdefault((code, day), [0, 0])
            entry[0] += touches
            entry[1] += fixed
        if not spent:
            return
        channels = {
            c.code: c
            for c in session.scalars(
                select(Channel).where(Channel.org_id == self.org_id, Channel.code.in_({code for code, _ in spent}))
            )
        }
        for (code, day), (touches, fixed) in spent.items():
            channel = channels.get(code)
            if channel is not None:
                add_spend(session, channel, day=day, touches=touches, fixed_cost_fen=fixed, source="simulator")

    def _push(self, t: int) -> None:
        """The bot's daily push in every group (a stand-in for the SOP engine), requested like
        any outbound action and performed by the perform job."""
        world = self.world
        day = t // DAY
        stamp = world.instant(t).isoformat()
        with unit_of_work(self.factory) as session:
            for n, g in enumerate(self.scenario.groups):
                text = PUSHES[(day + n) % len(PUSHES)].format(region=g.region or "本地", n=day + 1)
                request_action(
                    session,
                    self.org_id,
                    SendGroupMessage.kind,
                    connection_id=self.connection_id,
                    group_id=self.group_ids[g.key],
                    payload={"text": text},
                    idempotency_key=f"sim:push:{g.key}:{stamp}",
                )
        self._run_jobs()
        world.react(self._bot_posts())

    def _bot_posts(self) -> list[tuple[str, datetime, bool]]:
        """The bot's posts since the last call that members answer: not moderation warnings
        (an @-mention like a welcome, but nobody says 欢迎 to it)."""
        posts = self.platform.take_bot_posts()
        if not self.scenario.moderation or not posts:
            return posts
        warned = set()
        found = 0
        for message in reversed(self.platform.state.messages.values()):
            if found == len(posts):
                break
            if message.by_bot:
                found += 1
                if is_warning(message.text):
                    warned.add((message.group, message.sent_at))
        return [p for p in posts if (p[0], p[1]) not in warned]

    def _run_jobs(self, ahead_seconds: int = 0) -> None:
        """Run due jobs in this thread, against this run's simulated platform.

        Claimed a batch at a time (one claiming transaction per batch, not per job); each job
        then runs in its own transaction under its lease, exactly as a worker process runs it.
        """
        worker = self._worker
        if ahead_seconds:
            worker = Worker(
                f"simulate:{self.org_id}:final",
                factory=self.factory,
                clock=lambda: now_micros() + ahead_seconds * 1_000_000,
            )
        while True:
            with unit_of_work(self.factory) as session:
                jobs = claim_jobs(
                    session,
                    worker.name,
                    now=worker.clock(),
                    lease_seconds=worker.lease_seconds,
                    limit=JOB_BATCH,
                    org_id=self.org_id,
                )
            for job in jobs:
                worker.execute(job)
                self.jobs_run += 1
            if len(jobs) < JOB_BATCH:
                break

    def _result(self, wall: float) -> SimulationResult:
        tally = self.world.tally
        with unit_of_work(self.factory, write=False) as session:
            pending = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.org_id == self.org_id, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]))
            )
        channels = []
        for spec in self.scenario.channels:
            members = tally.channel_members[spec.code]
            touches = tally.touches[spec.code]
            cost = touches * spec.cost_per_touch_fen + members * spec.reward_per_member_fen + tally.fixed_fen[spec.code]
            cac = (Decimal(cost) / members / 100).quantize(Decimal("0.01")) if members else None
            channels.append(ChannelFigures(spec.code, spec.name, members, touches, cac))
        return SimulationResult(
            org_id=self.org_id,
            seed=self.scenario.seed,
            wall_seconds=wall,
            events=self.events,
            members=sum(tally.channel_members.values()),
            joins=tally.joins,
            leaves=tally.leaves,
            kicks=tally.kicks,
            removed=tally.removed,
            messages=tally.messages,
            ads=tally.ads,
            orders=tally.orders,
            refunds=tally.refunds,
            gmv=tally.gmv,
            refunded=tally.refunded,
            jobs_run=self.jobs_run,
            jobs_pending=int(pending or 0),
            channels=channels,
            refused=dict(sorted(tally.refused.items())),
        )


def moderation_settings() -> dict[str, Any]:
    """The default policy's settings (``moderation.service.DEFAULT_SETTINGS``) with the sites
    members share links to (texts.SHARED_DOMAINS) allowed by its links rule."""
    rules = [
        {**rule, "allowed_domains": list(texts.SHARED_DOMAINS)} if rule["kind"] == "links" else dict(rule)
        for rule in DEFAULT_SETTINGS["rules"]
    ]
    return {**DEFAULT_SETTINGS, "rules": rules}


@functools.cache
def _warning_tails() -> tuple[str, ...]:
    """What every moderation warning ends with, in each language (the text after the rule)."""
    marker = "\x00"
    tails = []
    for language in ("zh", "en"):
        text = Msg("moderation.engine.warn.text", name=marker, rule=marker).render(language)
        tails.append(text.rsplit(marker, 1)[-1])
    return tuple(t for t in tails if t)


def is_warning(text: str) -> bool:
    """Whether a bot message is a moderation warning."""
    return text.startswith("@") and text.endswith(_warning_tails())


def run_scenario(
    scenario: Scenario,
    *,
    slug: str,
    name: str,
    password: str | None = None,
    speed: float | None = None,
    progress: Progress | None = None,
    on_groups: GroupsHook | None = None,
    on_tick: TickHook | None = None,
    factory: sessionmaker[Session] | None = None,
) -> tuple[OrgSetup, SimulationResult]:
    """Create the organisation (staff, channels) and run ``scenario`` into it."""
    with unit_of_work(factory) as session:
        org = setup_organisation(session, scenario, slug=slug, name=name, password=password)
    result = Simulation(
        scenario, org.org_id, factory=factory, speed=speed, progress=progress, on_groups=on_groups, on_tick=on_tick
    ).run()
    return org, result

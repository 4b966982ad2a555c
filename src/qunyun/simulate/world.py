"""The agents and what they do, on the simulated platform.

The world plans in advance and acts on a timeline: arrivals per channel are planned when the
world is made (races on weekends, SMS campaigns twice a week, package cards every day…); at each
local midnight every member present gets the day's messages (a Poisson count from their activity,
the weekday and their lifecycle, at times drawn from the hourly rhythm), maybe an order, maybe a
leave. ``run_until(t)`` performs what is due on the platform, moving the virtual clock to each
action. Nothing loops per member per minute.

Everything is drawn from one ``random.Random(seed)`` in a fixed order, so a seed gives the same
world, the same actions and so the same events. (Iteration is over lists and insertion-ordered
dicts only: set order of strings changes between processes.)
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from qunyun.connectors.simulator.platform import SimulatedPlatform, SimulatorError
from qunyun.simulate import texts
from qunyun.simulate.catalogue import CATALOGUE, FIRST_WEIGHTS, REPEAT_WEIGHTS, Sku
from qunyun.simulate.personas import REGION_NAMES, REGION_WEIGHTS, Persona, draw_persona
from qunyun.simulate.rhythm import WEEKEND_FACTOR, day_profile, is_weekend, sample_second
from qunyun.simulate.scenario import ChannelSpec, GroupSpec, Scenario

DAY = 86_400
HOUR = 3_600

# Action kinds on the timeline
JOIN, POST, LEAVE, PAY, REFUND, KICK, CORE_INVITE, LEDGER, REPLY, ENTER, SCAN = range(11)

# A scan of a channel's live code: (channel code, visitor id, region, scanned before, when) →
# (group external id, invite link) when the visitor is routed to a group, None for the fallback.
Scanner = Callable[[str, str, str, bool, datetime], tuple[str, str] | None]

# Behaviour parameters (per day unless said otherwise); see docs/simulator.md.
CHURN_BASE = 0.002  # leave hazard of an engaged member
CHURN_NEW = 0.015  # in the first 3 days ("not what I expected")
CHURN_SILENT = 0.008  # once silent
SILENT_SHARE = 0.35  # members who go silent at some point
SILENT_MEAN_DAYS = 10.0  # mean days from joining to going silent
SILENT_FACTOR = 0.03  # activity left once silent
NEW_MEMBER_BOOST = 1.6  # first 3 days: more talkative
CORE_BOOST = 1.5
GREET_SHARE = 0.5  # new members who say hello right after joining
BUY_FIRST_NEW = 0.010  # first order while new (first 7 days: 新人首单)
BUY_FIRST = 0.003  # first order later
BUY_REPEAT = 0.006  # repurchase, once a customer
REFUND_SHARE = 0.04
SHOWOFF_SHARE = 0.25  # buyers who post about their order (晒单)
CORE_ORDERS, CORE_SPEND = 3, Decimal("2000")  # high value → phone callback → core group
SPAM_DAILY = 0.6  # a spammer posts an ad on this share of days
SPAM_KICK_AFTER = 2  # ads before the owner removes them…
SPAM_KICK_SHARE = 0.8  # …with this probability (not when qunyun moderates: then its ladder does)
FLOOD_GAP = (15, 60)  # seconds between a flooder's identical messages
WELCOME_REPLIES = 0.8  # mean "欢迎" replies to a bot welcome
PUSH_REPLY_RATE = 0.04  # share of a group replying within the hour to a bot push
MAX_MESSAGES = 40  # per member-day
# Through live codes (a scanner): the minutes from scanning to joining, the visitors who scan
# and never join (per member who does), and the members who scan a second time before joining.
SCAN_TO_JOIN_MINUTES = (1, 8)
SCAN_ONLY = 0.2
SCAN_AGAIN = 0.1


@dataclass(slots=True)
class Agent:
    id: str
    persona: Persona
    channel: str
    arrival: int  # planned join, seconds from the origin
    joined_day: int = -1
    regional: str | None = None  # group external id
    core: str | None = None
    left: bool = False
    silent_day: int | None = None
    orders: int = 0
    spend: Decimal = Decimal(0)
    ads: int = 0
    inviter_wanted: bool = False
    core_invited: bool = False


@dataclass
class Tally:
    """What happened, for the summary (counted at the source, before ingestion)."""

    joins: int = 0
    leaves: int = 0
    kicks: int = 0  # by the group owner, by hand
    removed: int = 0  # by qunyun's bot (moderation), noticed by the world
    messages: int = 0
    ads: int = 0
    orders: int = 0
    refunds: int = 0
    gmv: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    refused: Counter[str] = field(default_factory=Counter)
    channel_members: Counter[str] = field(default_factory=Counter)
    touches: Counter[str] = field(default_factory=Counter)
    fixed_fen: Counter[str] = field(default_factory=Counter)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw: exact for small n, the normal approximation for large n·p."""
    if n <= 0 or p <= 0:
        return 0
    if n < 400:
        return sum(1 for _ in range(n) if rng.random() < p)
    mean = n * p
    return max(0, min(n, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth's product of uniforms; λ here is small)."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit = math.exp(-lam)
    n, p = 0, rng.random()
    while p > limit:
        n += 1
        p *= rng.random()
    return n


class World:
    """The community on ``platform``; ``origin`` is local midnight of the first day, and the
    simulation covers ``[t0, t_end)`` seconds from it."""

    def __init__(self, scenario: Scenario, platform: SimulatedPlatform, scanner: Scanner | None = None) -> None:
        self.scenario = scenario
        self.sim = platform
        # With a scanner, members arrive through scans of their channel's live code (which picks
        # the group); without one, through an invite link of (group, channel) into the least
        # full group of their region.
        self.scanner = scanner
        self.scan_only = 0
        self.rng = random.Random(scenario.seed)
        start = scenario.start.astimezone(platform.clock.zone)
        self.origin = start.replace(hour=0, minute=0, second=0, microsecond=0)
        self.t0 = math.ceil((start - self.origin).total_seconds())
        self.t_end = self.t0 + scenario.days * DAY
        self.weekday0 = self.origin.weekday()
        self.tally = Tally()
        self.agents: list[Agent] = []
        self.by_id: dict[str, Agent] = {}
        self.present: dict[str, Agent] = {}  # joined and not left (insertion order = join order)
        self.groups: dict[str, GroupSpec] = {g.key: g for g in scenario.groups}
        self.regional_by_region: dict[str, list[str]] = {}
        for g in scenario.groups:
            if g.tier != "core":
                self.regional_by_region.setdefault(g.region, []).append(g.key)
        self.all_regional = [g.key for g in scenario.groups if g.tier != "core"]
        self.core_groups = [g.key for g in scenario.groups if g.tier == "core"]
        self.links: dict[tuple[str, str], str] = {}
        self.channels: dict[str, ChannelSpec] = {c.code: c for c in scenario.channels}
        self.first_joins: list[str] = []  # members who joined for the first time since the last take
        # (t, channel code, touches, fixed fen) of each spend since the last take
        self.spend: list[tuple[int, str, int, int]] = []
        self.order_of: dict[str, str] = {}
        self._heap: list[tuple[int, int, int, Any, Any]] = []
        self._seq = 0
        self.next_day = 0
        self.last_day = (self.t_end - 1) // DAY
        self.now_t = self.t0

    # --- timeline ---------------------------------------------------------------------------

    def at(self, t: int, kind: int, a: Any = None, b: Any = None) -> None:
        if self.t0 <= t < self.t_end:
            self._seq += 1
            heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def instant(self, t: int) -> datetime:
        return self.origin + timedelta(seconds=t)

    def weekday(self, day: int) -> int:
        return (self.weekday0 + day) % 7

    def setup(self) -> None:
        """Create the groups on the platform and plan every arrival."""
        for g in self.scenario.groups:
            self.sim.clock.advance_to(max(self.sim.now(), self.instant(self.t0)))
            self.sim.create_group(
                g.name, owner=g.owner or None, capacity=g.capacity, region=g.region, tier=g.tier, group_id=g.key
            )
        for spec in self.scenario.channels:
            self._plan_channel(spec, round(spec.share * self.scenario.members))

    def run_until(self, t_end: int) -> None:
        """Perform everything planned before ``t_end`` (planning each new day at its midnight)."""
        t_end = min(t_end, self.t_end)
        heap = self._heap
        while True:
            day_t = self.next_day * DAY
            if self.next_day <= self.last_day and day_t < t_end and (not heap or heap[0][0] >= day_t):
                self._plan_day(self.next_day)
                self.next_day += 1
                continue
            if not heap or heap[0][0] >= t_end:
                break
            t, _, kind, a, b = heapq.heappop(heap)
            self.now_t = t
            self.sim.clock.advance_to(self.instant(t))
            try:
                self._perform(kind, a, b)
            except SimulatorError as exc:
                self.tally.refused[exc.code] += 1
        self.now_t = max(self.now_t, t_end)
        if self.instant(t_end) > self.sim.now():
            self.sim.clock.advance_to(self.instant(t_end))

    # --- arrivals ---------------------------------------------------------------------------

    def _new_agent(self, channel: str, t: int, region: str | None = None) -> Agent:
        persona = draw_persona(self.rng, region=region, spam_rate=0.03 if channel in ("douyin", "kol") else 0.012)
        agent = Agent(id=f"{self.sim.namespace}-u{len(self.agents) + 1}", persona=persona, channel=channel, arrival=t)
        self.agents.append(agent)
        self.by_id[agent.id] = agent
        return agent

    def _spread(self, t: int, mean_hours: float) -> int:
        """``t`` plus an exponential delay, moved out of the night (people act when awake)."""
        t += int(self.rng.expovariate(1 / (mean_hours * HOUR)))
        hour = (t % DAY) // HOUR
        if hour < 7:
            t += (7 - hour) * HOUR + int(self.rng.random() * 2 * HOUR)
        return t

    def _plan_channel(self, spec: ChannelSpec, target: int) -> None:
        if target <= 0:
            return
        rng, days = self.rng, self.last_day + 1
        first_day = self.t0 // DAY
        batches: list[tuple[int, int, str, int]] = []  # (t, touches, region, fixed fen)
        if spec.code == "offline_race" or spec.kind == "offline":
            per_race = 125  # people met at the booth
            races = max(1, round(target / (per_race * spec.rate)))
            weekend_days = [d for d in range(first_day, days) if is_weekend(self.weekday(d))] or [first_day]
            race_days = [first_day] + [weekend_days[int(i * len(weekend_days) / races)] for i in range(races - 1)]
            for d in race_days:
                race_region = rng.choices(REGION_NAMES, weights=REGION_WEIGHTS)[0]
                # The opening race is held on the first day, whenever the run starts that day.
                t = max(d * DAY + 9 * HOUR, self.t0)
                batches.append((t, per_race, race_region, spec.fixed_per_batch_fen))
            for t, touches, where, fixed in batches:
                self.at(t, LEDGER, spec.code, (touches, fixed))
                for _ in range(binomial(rng, touches, spec.rate)):
                    self._arrival(spec.code, t + int(rng.random() * 8 * HOUR), where)
            return
        if spec.kind == "sms":
            campaign_days = [d for d in range(first_day, days) if self.weekday(d) in (1, 3)] or [first_day]
            touches = round(target / spec.rate / len(campaign_days))
            for d in campaign_days:
                t = d * DAY + 10 * HOUR
                self.at(t, LEDGER, spec.code, (touches, 0))
                for _ in range(binomial(rng, touches, spec.rate)):
                    self._arrival(spec.code, self._spread(t, 3.0))
            return
        if spec.kind == "kol":
            per_post = 5000
            posts = max(1, round(target / (per_post * spec.rate)))
            for i in range(posts):
                d = first_day + int((i + 0.5) * (days - first_day) / posts)
                t = d * DAY + 19 * HOUR
                self.at(t, LEDGER, spec.code, (per_post, spec.fixed_per_batch_fen))
                for _ in range(binomial(rng, per_post, spec.rate)):
                    self._arrival(spec.code, self._spread(t, 10.0))
            return
        if spec.kind == "referral":
            # Friends invited by members: from the third day on, once there are members to invite them.
            start_day = min(first_day + 2, days - 1)
            touches = round(target / spec.rate / max(1, days - start_day))
            for d in range(start_day, days):
                t = d * DAY
                self.at(t + 9 * HOUR, LEDGER, spec.code, (touches, 0))
                for _ in range(binomial(rng, touches, spec.rate)):
                    agent = self._arrival(spec.code, t + sample_second(rng, "weekday"))
                    if agent is not None:
                        agent.inviter_wanted = True
            return
        # Every day: package cards arrive with parcels, content is seen on the platforms.
        per_day = target / spec.rate / max(1, days - first_day)
        for d in range(first_day, days):
            touches = round(per_day * (1.2 if is_weekend(self.weekday(d)) and spec.kind == "content" else 1.0))
            t = d * DAY
            fixed = round(spec.fixed_per_month_fen / 30) if spec.fixed_per_month_fen else 0
            self.at(max(t, self.t0), LEDGER, spec.code, (touches, fixed))
            profile = "waking" if spec.kind == "package_card" else day_profile(self.weekday(d))
            for _ in range(binomial(rng, touches, spec.rate)):
                self._arrival(spec.code, t + sample_second(rng, profile))

    def _arrival(self, channel: str, t: int, region: str | None = None) -> Agent | None:
        if not self.t0 <= t < self.t_end:
            return None
        agent = self._new_agent(channel, t, region)
        self.at(t, JOIN, agent.id)
        return agent

    # --- the day's plan ---------------------------------------------------------------------

    def _plan_day(self, day: int) -> None:
        rng = self.rng
        weekday = self.weekday(day)
        profile = day_profile(weekday)
        weekend = WEEKEND_FACTOR if is_weekend(weekday) else 1.0
        base = day * DAY
        for agent in list(self.present.values()):
            if not self._still_in(agent):
                continue
            p = agent.persona
            age = day - agent.joined_day
            silent = agent.silent_day is not None and day >= agent.silent_day
            # Leaving
            hazard = CHURN_SILENT if silent else CHURN_NEW if age < 3 else CHURN_BASE
            if rng.random() < hazard:
                self.at(base + sample_second(rng, "waking"), LEAVE, agent.id)
            # Messages
            if p.spammer:
                if rng.random() < SPAM_DAILY:
                    self.at(base + sample_second(rng, profile), POST, agent.id, "ad")
            else:
                lam = p.activity * weekend
                if age < 3:
                    lam *= NEW_MEMBER_BOOST
                if agent.core is not None:
                    lam *= CORE_BOOST
                if silent:
                    lam *= SILENT_FACTOR
                n = min(MAX_MESSAGES, poisson(rng, lam))
                t = 0
                for i in range(n):
                    # Chat comes in bursts: half the messages follow the previous one closely.
                    t = t + 20 + int(rng.random() * 600) if i and rng.random() < 0.5 else sample_second(rng, profile)
                    if t < DAY:
                        self.at(base + t, POST, agent.id)
            # Orders
            rate = (BUY_FIRST_NEW if age < 7 else BUY_FIRST) if agent.orders == 0 else BUY_REPEAT
            if rng.random() < rate * p.purchase * (1.2 if weekend < 1 else 1.0):
                self.at(base + sample_second(rng, "order"), PAY, agent.id)

    # --- performing ---------------------------------------------------------------------------

    def _perform(self, kind: int, a: Any, b: Any) -> None:
        if kind == POST:
            self._post(self.by_id[a], b)
        elif kind == JOIN:
            self._join(self.by_id[a])
        elif kind == REPLY:
            self._reply(a, b)
        elif kind == PAY:
            self._pay(self.by_id[a])
        elif kind == LEAVE:
            self._leave(self.by_id[a])
        elif kind == REFUND:
            self._refund(a)
        elif kind == KICK:
            self._kick(self.by_id[a], b)
        elif kind == CORE_INVITE:
            self._core_invite(self.by_id[a])
        elif kind == ENTER:
            group, link = b
            self._enter(self.by_id[a], group, link)
        elif kind == SCAN:
            self._scan_only(a, b)
        elif kind == LEDGER:
            touches, fixed = b
            self.tally.touches[a] += touches
            self.tally.fixed_fen[a] += fixed
            self.spend.append((self.now_t, a, touches, fixed))

    def _link(self, group: str, channel: str) -> str:
        url = self.links.get((group, channel))
        if url is None:
            spec = self.channels[channel]
            url = self.sim.create_invite_link(group, name=f"{spec.name}活码", channel=channel).url
            self.links[(group, channel)] = url
        return url

    def _pick_group(self, region: str) -> str | None:
        """The least full regional group of ``region`` with room (a live code's routing), else
        of any region."""
        groups = self.sim.state.groups
        for candidates in (self.regional_by_region.get(region, ()), self.all_regional):
            best, size = None, 0
            for key in candidates:
                g = groups[key]
                n = len(g.members)
                if n < g.capacity and (best is None or n < size):
                    best, size = key, n
            if best is not None:
                return best
        return None

    def _join(self, agent: Agent) -> None:
        p = agent.persona
        if self.scanner is not None:
            self._scan_and_join(agent)
            return
        group = self._pick_group(p.region)
        if group is None:
            self.tally.refused["no_room"] += 1
            return
        self._enter(agent, group, self._link(group, agent.channel))

    def _scan_and_join(self, agent: Agent) -> None:
        """The member scans their channel's live code; the scan page sends them to a group's
        invite link, through which they join a few minutes later (or, now and then, after
        scanning once more). Some visitors scan and never join."""
        assert self.scanner is not None
        rng, region = self.rng, agent.persona.region
        visitor = f"v-{agent.id}"
        routed = self.scanner(agent.channel, visitor, region, False, self.instant(self.now_t))
        if rng.random() < SCAN_ONLY:
            onlooker = rng.choices(REGION_NAMES, weights=REGION_WEIGHTS)[0]
            self.at(self.now_t + int(rng.random() * 2 * HOUR), SCAN, agent.channel, onlooker)
        if routed is None:
            self.tally.refused["no_room"] += 1  # served the fallback
            return
        low, high = SCAN_TO_JOIN_MINUTES
        delay = int((low + rng.random() * (high - low)) * 60)
        if rng.random() < SCAN_AGAIN:
            self.scanner(agent.channel, visitor, region, True, self.instant(self.now_t + delay // 2))
        self.at(self.now_t + delay, ENTER, agent.id, routed)

    def _scan_only(self, channel: str, region: str) -> None:
        """Someone who scans the live code, looks and does not join."""
        assert self.scanner is not None
        self.scan_only += 1
        self.scanner(channel, f"v-{self.sim.namespace}-x{self.scan_only}", region, False, self.instant(self.now_t))

    def _enter(self, agent: Agent, group: str, link: str) -> None:
        p = agent.persona
        self.sim.add_member(
            agent.id,
            display_name=p.display_name,
            gender=p.gender,
            birth_year=p.birth_year,
            occupation=p.occupation,
            region=p.city,
            interests=p.interests,
        )
        inviter = None
        if agent.inviter_wanted:
            inside = self.sim.state.groups[group].members
            if inside:
                inviter = self._sample(list(inside), 1)[0]
        self.sim.join(agent.id, via_link=link, inviter=inviter)
        agent.regional = group
        agent.joined_day = self.now_t // DAY
        if self.rng.random() < SILENT_SHARE:
            agent.silent_day = agent.joined_day + max(1, round(self.rng.expovariate(1 / SILENT_MEAN_DAYS)))
        self.present[agent.id] = agent
        self.first_joins.append(agent.id)
        self.tally.joins += 1
        self.tally.channel_members[agent.channel] += 1
        if not p.spammer and self.rng.random() < GREET_SHARE:
            self.at(self.now_t + 60 + int(self.rng.random() * 1800), POST, agent.id, "greet")

    def _groups_of(self, agent: Agent) -> list[str]:
        return [g for g in (agent.regional, agent.core) if g is not None]

    def _still_in(self, agent: Agent) -> bool:
        """Whether the member is still in one of their groups; one the platform removed behind
        the world's back (qunyun's moderation kicked them) is gone from then on."""
        if agent.left:
            return False
        if any(self.sim.is_member(agent.id, g) for g in self._groups_of(agent)):
            return True
        agent.left = True
        self.present.pop(agent.id, None)
        self.tally.removed += 1
        return False

    def _post(self, agent: Agent, what: Any) -> None:
        if agent.left:
            return
        rng = self.rng
        if what == "ad" or isinstance(what, tuple):
            self._spam(agent, what)
            return
        group = agent.core if agent.core is not None and rng.random() < 0.4 else agent.regional or agent.core
        if group is None:
            return
        p = agent.persona
        if what == "greet":
            text, msg_type = texts.fill(rng, rng.choice(texts.GREETINGS), city=p.city, name=p.display_name), "text"
        elif what == "showoff":
            text, msg_type = texts.SHOWOFF, "image"
        else:
            msg_type = rng.choices(texts.MSG_TYPES, weights=texts.MSG_TYPE_WEIGHTS)[0]
            if msg_type == "text":
                text = texts.fill(rng, rng.choice(texts.CHAT), city=p.city)
            elif msg_type == "link":
                text = texts.fill(rng, rng.choice(texts.SHARED_LINKS))
            else:
                text = ""
        self.sim.post(agent.id, group, text, msg_type)
        self.tally.messages += 1

    def _spam(self, agent: Agent, what: Any) -> None:
        """A spammer's post of their kind (texts.SPAM); a flooder's first post plans the same
        text again ``FLOOD_BURST`` − 1 times, ``what`` then being ``(msg_type, text)``."""
        group = agent.regional
        if group is None or not self._still_in(agent) or not self.sim.is_member(agent.id, group):
            return
        rng = self.rng
        if isinstance(what, tuple):
            msg_type, text = what
        else:
            msg_type, template = rng.choice(texts.SPAM[agent.persona.spam_kind])
            text = texts.fill(rng, template)
            if agent.persona.spam_kind == "flood":
                t = self.now_t
                for _ in range(texts.FLOOD_BURST - 1):
                    t += rng.randint(*FLOOD_GAP)
                    self.at(t, POST, agent.id, (msg_type, text))
        self.sim.post(agent.id, group, text, msg_type)
        self.tally.messages += 1
        self.tally.ads += 1
        agent.ads += 1
        if not self.scenario.moderation and agent.ads == SPAM_KICK_AFTER and rng.random() < SPAM_KICK_SHARE:
            self.at(self.now_t + 600 + int(rng.random() * 5400), KICK, agent.id, group)

    def _reply(self, member: str, to: tuple[str, bool]) -> None:
        group, welcome = to
        agent = self.by_id.get(member)
        if agent is None or agent.left or agent.persona.spammer:
            return
        replies = texts.WELCOME_REPLIES if welcome else texts.PUSH_REPLIES
        self.sim.post(member, group, self.rng.choice(replies), "text")
        self.tally.messages += 1

    def _leave(self, agent: Agent) -> None:
        if agent.left:
            return
        for group in self._groups_of(agent):
            if self.sim.is_member(agent.id, group):
                self.sim.leave(agent.id, group)
                self.tally.leaves += 1
        agent.left = True
        self.present.pop(agent.id, None)

    def _kick(self, agent: Agent, group: str) -> None:
        """The group owner removes an advertiser (by hand in the client: reported as removed)."""
        if agent.left or not self.sim.is_member(agent.id, group):
            return
        self.sim.kick(group, agent.id)
        self.tally.kicks += 1
        agent.left = True
        self.present.pop(agent.id, None)

    def _pay(self, agent: Agent) -> None:
        group = agent.regional if agent.regional and self.sim.is_member(agent.id, agent.regional) else agent.core
        if agent.left or group is None:
            return
        rng = self.rng
        sku: Sku = rng.choices(CATALOGUE, weights=FIRST_WEIGHTS if agent.orders == 0 else REPEAT_WEIGHTS)[0]
        quantity = 2 if sku.price < 150 and rng.random() < 0.2 else 1
        amount = sku.price * quantity
        order = self.sim.pay(agent.id, amount, product=sku.name, group=group)
        agent.orders += 1
        agent.spend += amount
        self.tally.orders += 1
        self.tally.gmv += amount
        if rng.random() < REFUND_SHARE:
            self.at(self.now_t + DAY + int(rng.random() * 4 * DAY), REFUND, order.id)
        elif rng.random() < SHOWOFF_SHARE:
            self.at(self.now_t + 2 * DAY + int(rng.random() * 2 * DAY), POST, agent.id, "showoff")
        if (
            self.core_groups
            and agent.core is None
            and not agent.core_invited
            and (agent.orders >= CORE_ORDERS or agent.spend >= CORE_SPEND)
        ):
            # 004 §四.5: high-value members get a customer-service call and a core-group invitation.
            agent.core_invited = True
            next_day = (self.now_t // DAY + 1) * DAY
            self.at(next_day + 15 * HOUR + int(rng.random() * 2 * HOUR), CORE_INVITE, agent.id)

    def _refund(self, order_id: str) -> None:
        order = self.sim.state.orders[order_id]
        # Most refunds are whole orders; some are partial (a returned item of two, a price match).
        amount = order.amount if self.rng.random() < 0.8 else (order.amount / 2).quantize(Decimal("0.01"))
        self.sim.refund(order_id, amount)
        self.tally.refunds += 1
        self.tally.refunded += amount

    def _core_invite(self, agent: Agent) -> None:
        if agent.left or agent.core is not None:
            return
        groups = self.sim.state.groups
        room = [k for k in self.core_groups if len(groups[k].members) < groups[k].capacity]
        if not room:
            return
        group = min(room, key=lambda k: len(groups[k].members))
        self.sim.join(agent.id, group, scene="invite")
        agent.core = group
        self.tally.joins += 1

    # --- reactions to qunyun's bot --------------------------------------------------------------

    def _sample(self, population: list[str], k: int) -> list[str]:
        return self.rng.sample(population, min(k, len(population)))

    def react(self, bot_posts: list[tuple[str, datetime, bool]]) -> None:
        """Members answer what the bot posted: a welcome gets a "欢迎" or two, a push gets
        replies from a few percent of the group, within the next hour."""
        rng = self.rng
        for group, _sent_at, mention in bot_posts:
            g = self.sim.state.groups.get(group)
            if g is None or not g.members:
                continue
            n = poisson(rng, WELCOME_REPLIES if mention else PUSH_REPLY_RATE * len(g.members))
            if not n:
                continue
            for member in self._sample(list(g.members), n):
                self.at(self.now_t + 30 + int(rng.random() * (HOUR - 60)), REPLY, member, (group, mention))

    def take_first_joins(self) -> list[str]:
        out, self.first_joins = self.first_joins, []
        return out

    def take_spend(self) -> list[tuple[int, str, int, int]]:
        """The channels' spend since the last call: (t, channel code, touches, fixed fen)."""
        out, self.spend = self.spend, []
        return out

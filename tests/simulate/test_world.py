"""The agent model on its own (no database): determinism, the seed's channel rates and CAC, the
posting rhythm, and the behaviours a community shows (silence, churn, ads, orders, refunds)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from qunyun.connectors.simulator import SimulatedPlatform, VirtualClock
from qunyun.simulate.scenario import simulate_scenario
from qunyun.simulate.world import World


def run_world(
    seed: int, *, days: int = 14, groups: int = 12, members: int = 1500
) -> tuple[World, list[dict[str, Any]]]:
    scenario = simulate_scenario(seed=seed, days=days, groups=groups, members=members)
    platform = SimulatedPlatform(seed=seed, clock=VirtualClock(scenario.start))
    world = World(scenario, platform)
    world.setup()
    events = platform.drain_events()
    t = world.t0
    while t < world.t_end:  # hour by hour, as the runner does
        t += 3600
        world.run_until(t)
        events += platform.drain_events()
    return world, events


@pytest.fixture(scope="module")
def month() -> tuple[World, list[dict[str, Any]]]:
    return run_world(7, days=28, groups=20, members=4000)


def test_the_same_seed_gives_the_same_events_and_another_seed_does_not() -> None:
    first, events = run_world(3, days=5, members=400)
    second, again = run_world(3, days=5, members=400)
    assert events == again
    assert first.tally == second.tally
    _, other = run_world(4, days=5, members=400)
    assert other != events


def test_channels_convert_and_cost_as_in_the_seed(month: tuple[World, list[dict[str, Any]]]) -> None:
    world, _ = month
    tally = world.tally
    specs = {c.code: c for c in world.scenario.channels}

    def cac(code: str) -> float:
        spec, members = specs[code], tally.channel_members[code]
        cost = tally.touches[code] * spec.cost_per_touch_fen + members * spec.reward_per_member_fen
        return (cost + tally.fixed_fen[code]) / members / 100

    assert tally.channel_members["sms"] / tally.touches["sms"] == pytest.approx(0.08, abs=0.005)
    assert tally.channel_members["package_card"] / tally.touches["package_card"] == pytest.approx(0.10, abs=0.006)
    assert cac("sms") == pytest.approx(2.1, abs=0.1)  # 0.05 / 8 % + 1.5
    assert cac("package_card") == pytest.approx(2.5, abs=0.1)  # 0.1 / 10 % + 1.5
    assert cac("offline_race") == pytest.approx(100, rel=0.15)  # 10,000 元 a race, ~100 people
    assert sum(tally.channel_members.values()) == pytest.approx(4000, rel=0.08)


def test_posting_peaks_in_the_morning_at_noon_and_in_the_evening_and_weekends_are_quieter(
    month: tuple[World, list[dict[str, Any]]],
) -> None:
    _, events = month
    hours: Counter[int] = Counter()
    per_day: Counter[str] = Counter()
    weekend_days: set[str] = set()
    for e in events:
        if e["kind"] == "message.posted":
            ts = datetime.fromisoformat(e["ts"])
            hours[ts.hour] += 1
            per_day[ts.date().isoformat()] += 1
            if ts.weekday() >= 5:
                weekend_days.add(ts.date().isoformat())
    for peak in (8, 12, 20, 21):
        assert hours[peak] > 1.5 * hours[16], peak
        assert hours[peak] > 10 * hours[4], peak
    # The last two weeks (the population has mostly arrived): weekend days below weekdays.
    days = sorted(per_day)[-14:]
    weekend = [per_day[d] for d in days if d in weekend_days]
    weekday = [per_day[d] for d in days if d not in weekend_days]
    assert sum(weekend) / len(weekend) < 0.9 * sum(weekday) / len(weekday)


def test_members_go_silent_churn_advertise_get_removed_and_buy(month: tuple[World, list[dict[str, Any]]]) -> None:
    world, events = month
    kinds = Counter(e["kind"] for e in events)
    assert kinds["member.left"] > 0 and kinds["order.paid"] > 0 and kinds["order.refunded"] > 0
    reasons = Counter(e.get("reason") for e in events if e["kind"] == "member.left")
    assert reasons["left"] > 0 and reasons["removed"] > 0  # churn, and advertisers removed by owners
    ad_types = Counter(e["msg_type"] for e in events if e["kind"] == "message.posted")
    assert ad_types["link"] and ad_types["miniprogram"] and ad_types["card"]
    assert any(a.silent_day is not None and a.silent_day < 20 for a in world.agents)
    prices = {e.get("product"): e["amount"] for e in events if e["kind"] == "order.paid"}
    assert len(prices) >= 5
    repeat = Counter(e["member"] for e in events if e["kind"] == "order.paid")
    assert any(n >= 2 for n in repeat.values())  # repurchases
    core = {g.key for g in world.scenario.groups if g.tier == "core"}
    assert any(e["kind"] == "member.joined" and e["group"] in core for e in events)  # high value → core group
    joins = [e for e in events if e["kind"] == "member.joined" and e["group"] not in core]
    assert all(e["scene"] == "link" and e["channel"] for e in joins)
    assert any(e.get("inviter") for e in joins)  # 老带新 referrals name their inviter

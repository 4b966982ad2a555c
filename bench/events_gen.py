"""Deterministic synthetic event streams (interchange format v1) for the benchmarks.

A stand-alone generator, so the benchmarks measure ingestion and stats, not the simulator.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

START = datetime(2026, 1, 5, tzinfo=UTC) - timedelta(hours=8)  # Monday 00:00 Asia/Shanghai


def generate(
    total: int, *, groups: int, members: int, days: int, seed: int = 7, start: datetime = START
) -> Iterator[dict[str, object]]:
    """About ``total`` events: group creations, then joins, leaves, messages, orders, refunds.

    Mix (after creations): 5 % joins, 1 % leaves, 91.5 % messages, 2 % orders, 0.5 % refunds —
    roughly what a chatty community produces. Posting is heavy-tailed (Pareto weights): a few
    members write most messages, most members are quiet. Timestamps move forward with small jitter, so a
    few events arrive out of order, as they do from real platforms.
    """
    rng = random.Random(seed)
    span = days * 86_400
    n = 0
    for g in range(groups):
        yield {
            "id": f"g{g}",
            "ts": (start + timedelta(seconds=g)).isoformat(),
            "kind": "group.created",
            "group": f"G{g}",
            "name": f"骑行{g}群",
            "capacity": 500,
        }
        n += 1
    rest = max(total - n, 0)
    in_group: dict[int, int] = {}
    orders: list[str] = []
    channels = ["sms", "package_card", "offline", "douyin", "xiaohongshu"]
    msg_types = ["text"] * 8 + ["image", "link"]
    # Who speaks is heavy-tailed, as in any real group chat: a few members post most messages.
    weights = [rng.paretovariate(1.1) for _ in range(members)]
    speakers = rng.choices(range(members), weights=weights, k=rest)
    for i in range(rest):
        t = start + timedelta(seconds=span * i / rest + rng.uniform(-120, 120))
        ts = t.isoformat()
        r = rng.random()
        m = rng.randrange(members) if r < 0.05 else speakers[i]
        if r < 0.05 or m not in in_group:
            g = in_group.get(m, rng.randrange(groups))
            in_group[m] = g
            yield {
                "id": f"e{i}",
                "ts": ts,
                "kind": "member.joined",
                "group": f"G{g}",
                "member": f"M{m}",
                "channel": rng.choice(channels),
                "scene": "qr",
            }
        elif r < 0.06:
            yield {"id": f"e{i}", "ts": ts, "kind": "member.left", "group": f"G{in_group.pop(m)}", "member": f"M{m}"}
        elif r < 0.975:
            yield {
                "id": f"e{i}",
                "ts": ts,
                "kind": "message.posted",
                "group": f"G{in_group[m]}",
                "member": f"M{m}",
                "msg_type": rng.choice(msg_types),
                "text": "今天骑了 42 公里",
            }
        elif r < 0.995 or not orders:
            order = f"O{i}"
            orders.append(order)
            yield {
                "id": f"e{i}",
                "ts": ts,
                "kind": "order.paid",
                "order": order,
                "member": f"M{m}",
                "amount": f"{rng.randrange(1000, 300000) / 100:.2f}",
            }
        else:
            yield {"id": f"e{i}", "ts": ts, "kind": "order.refunded", "order": rng.choice(orders), "amount": "10.00"}


def write(
    path: Path, total: int, *, groups: int, members: int, days: int, seed: int = 7, start: datetime = START
) -> int:
    count = 0
    with path.open("wb") as out:
        for event in generate(total, groups=groups, members=members, days=days, seed=seed, start=start):
            out.write(orjson.dumps(event))
            out.write(b"\n")
            count += 1
    return count

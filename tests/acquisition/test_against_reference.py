"""The channel report against a naive reference computed straight from PRODUCT.md's definitions
over the raw events, on random communities: members joining several groups through channels
or none, messages before and after their first join, orders and refunds around the 30-day
window, spend on days in and out of the range."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.acquisition.report import channel_report, contract_rows
from qunyun.acquisition.schemas import ChannelCreate
from qunyun.acquisition.service import add_spend, create_channel
from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.ingestion.service import ingest
from qunyun.models import Channel, Role
from qunyun.team.service import create_organisation, create_staff

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 2, 20, tzinfo=ZONE)
RANGE = (date(2026, 3, 1), date(2026, 3, 7))
CHANNELS = {"c1": (5, 150), "c2": (0, 0), "c3": (10, 100)}  # code → (cost per touch, reward) in fen
CENT = Decimal("0.01")


def yuan(fen: Decimal | int) -> str:
    return str((Decimal(fen) / 100).quantize(CENT, rounding=ROUND_HALF_UP))


def community(rng: random.Random) -> tuple[list[dict[str, Any]], list[tuple[str, date, int, int]]]:
    """Random events (distinct instants, to the second) and spend rows (channel, day, touches, fixed fen)."""
    used: set[int] = set()

    def instant(low: float = 0, high: float = 28) -> datetime:
        while True:
            second = int(rng.uniform(low, high) * 86_400)
            if second not in used:
                used.add(second)
                return START + timedelta(seconds=second)

    events: list[dict[str, Any]] = []

    def add(kind: str, at: datetime, **fields: Any) -> None:
        events.append({"id": f"e{len(events)}", "ts": at.isoformat(), "kind": kind, **fields})

    for n in range(40):
        member = f"m{n}"
        first = rng.uniform(0, 20)
        for j in range(rng.randint(1, 3)):
            channel = rng.choice([None, "c1", "c2", "c3", "c1"])
            at = instant(first + j * rng.uniform(0, 3), first + j * 3 + 0.5)
            named = {"channel": channel} if channel is not None else {}
            add("member.joined", at, group=f"g{rng.randint(1, 3)}", member=member, **named)
        for _ in range(rng.randint(0, 4)):
            # Around the first join: a week later is just inside or just outside 168 h.
            add("message.posted", instant(first - 1, first + 9), group="g1", member=member, msg_type="text")
        for k in range(rng.randint(0, 3)):
            order = f"o{n}-{k}"
            amount = Decimal(rng.randint(100, 50_000)) / 100
            paid = instant(first - 2, first + 33)
            add("order.paid", paid, order=order, member=member, amount=str(amount))
            if rng.random() < 0.4:
                back = amount if rng.random() < 0.5 else (amount / 2).quantize(CENT)
                add("order.refunded", paid + timedelta(days=rng.uniform(0.1, 10)), order=order, amount=str(back))
    spend = [
        (code, (START + timedelta(days=rng.randint(0, 27))).date(), rng.randint(0, 5000), rng.choice([0, 0, 100_000]))
        for code in CHANNELS
        for _ in range(6)
    ]
    return events, spend


def reference(events: list[dict[str, Any]], spend: list[tuple[str, date, int, int]]) -> list[dict[str, Any]]:
    """PRODUCT.md's channel report, computed the plain way."""
    at = {e["id"]: datetime.fromisoformat(e["ts"]) for e in events}
    joins = sorted((at[e["id"]], e) for e in events if e["kind"] == "member.joined")
    first: dict[str, tuple[datetime, str | None]] = {}
    for when, e in joins:
        first.setdefault(e["member"], (when, e.get("channel")))
    acquired = {
        m: (when, channel)
        for m, (when, channel) in first.items()
        if channel is not None and RANGE[0] <= when.astimezone(ZONE).date() <= RANGE[1]
    }
    orders = {e["order"]: e for e in events if e["kind"] == "order.paid"}
    rows = []
    for code, (per_touch, reward) in CHANNELS.items():
        members = {m: when for m, (when, channel) in acquired.items() if channel == code}
        actives = {
            e["member"]
            for e in events
            if e["kind"] == "message.posted"
            and e["member"] in members
            and members[e["member"]] <= at[e["id"]] < members[e["member"]] + timedelta(hours=168)
        }
        gmv, paying = Decimal(0), set()
        for ref, order in orders.items():
            joined = members.get(order["member"])
            if joined is None or not joined <= at[order["id"]] < joined + timedelta(days=30):
                continue
            paying.add(order["member"])
            gmv += Decimal(order["amount"])
            for refund in events:
                mine = refund["kind"] == "order.refunded" and refund["order"] == ref
                if mine and joined <= at[refund["id"]] < joined + timedelta(days=30):
                    gmv -= Decimal(refund["amount"])
        touches = sum(t for c, d, t, _ in spend if c == code and RANGE[0] <= d <= RANGE[1])
        fixed = sum(f for c, d, _, f in spend if c == code and RANGE[0] <= d <= RANGE[1])
        cost = touches * per_touch + len(members) * reward + fixed
        gmv_fen = int(gmv * 100)

        def per(count: int, cost: int = cost) -> str | None:
            return yuan(Decimal(cost) / count) if count else None

        rows.append(
            {
                "channel": code,
                "touches": touches,
                "scans": 0,
                "visitors": 0,
                "joins": len(members),
                "actives_7d": len(actives),
                "paying": len(paying),
                "gmv": yuan(gmv_fen),
                "cost": yuan(cost),
                "cac": per(len(members)),
                "cost_per_active": per(len(actives)),
                "cost_per_paying": per(len(paying)),
                "roi": float((Decimal(gmv_fen) / cost).quantize(Decimal("0.0001"), ROUND_HALF_UP)) if cost else None,
            }
        )
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_report_equals_the_reference(db: sessionmaker[Session], seed: int) -> None:
    rng = random.Random(seed)
    events, spend = community(rng)
    with unit_of_work(db) as s:
        org = create_organisation(s, name="ref", slug=f"ref{seed}")
        lead = create_staff(s, org.id, username=f"ref{seed}-lead", password="password-1", role="lead")
        scope = Scope(staff_id=lead.id, org_id=org.id, role=Role.LEAD)
        for code, (per_touch, reward) in CHANNELS.items():
            create_channel(
                s,
                scope,
                ChannelCreate(
                    code=code,
                    name=code,
                    cost_per_touch=Decimal(per_touch) / 100,
                    reward_per_member=Decimal(reward) / 100,
                ),
            )
        channels = {c.code: c for c in s.scalars(select(Channel).where(Channel.org_id == org.id))}
        for code, day, touches, fixed in spend:
            add_spend(s, channels[code], day=day, touches=touches, fixed_cost_fen=fixed, source="staff")
        shuffled = list(events)
        rng.shuffle(shuffled)  # the log is order-free: events arrive in any order
        ingest(s, org.id, shuffled, platform="test", source="test", live=False)
        org_id = org.id
    with unit_of_work(db, write=False) as s:
        got = contract_rows(channel_report(s, Scope.organisation(org_id), *RANGE))
    expected = reference(events, spend)
    assert got == expected
    # Not vacuous: members acquired, active and paying, and first joins without a channel.
    assert all(sum(r[k] for r in expected) > 0 for k in ("joins", "actives_7d", "paying"))
    assert channel_report_unattributed(db, org_id) > 0


def channel_report_unattributed(db: sessionmaker[Session], org_id: int) -> int:
    with unit_of_work(db, write=False) as s:
        return channel_report(s, Scope.organisation(org_id), *RANGE).unattributed_joins

"""A small community on the simulated platform for the attribution and report tests.

Everything goes the way production goes: groups are created by ``group.created`` events on the
organisation's simulator connection, live codes through the livecodes service (their invite
links are outbound actions performed by the worker, against the simulated platform bound to the
connection), scans through the scan path, and joins, messages and orders are live events
through ``ingest``, which runs the attribution follow-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from qunyun.acquisition.schemas import ChannelCreate, SpendCreate
from qunyun.acquisition.service import create_channel, record_spend
from qunyun.auth.scope import Scope
from qunyun.connections.service import default_connection
from qunyun.connectors import registry
from qunyun.connectors.simulator import SimulatedPlatform, SimulatorConnector, VirtualClock
from qunyun.db.session import unit_of_work
from qunyun.ingestion.service import ingest
from qunyun.livecodes import routing, service
from qunyun.livecodes.schemas import LiveCodeCreate
from qunyun.models import Group, Role
from qunyun.team.service import create_organisation, create_staff
from qunyun.worker.runner import Worker

SHANGHAI = ZoneInfo("Asia/Shanghai")


def sh(day: str, clock: str = "12:00:00") -> datetime:
    """An instant in Shanghai time: sh("03-02", "09:30:00") is 2026-03-02 09:30 +08:00."""
    return datetime.fromisoformat(f"2026-{day}T{clock}+08:00")


@dataclass
class Community:
    db: sessionmaker[Session]
    org_id: int
    lead: int
    owner: int
    connection_id: int
    platform: SimulatedPlatform
    groups: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    codes: dict[str, tuple[int, str]] = field(default_factory=dict)  # name → (id, code)
    _n: int = 0

    @property
    def lead_scope(self) -> Scope:
        return Scope(staff_id=self.lead, org_id=self.org_id, role=Role.LEAD)

    @property
    def owner_scope(self) -> Scope:
        return Scope(staff_id=self.owner, org_id=self.org_id, role=Role.OWNER)

    def ingest(self, *events: dict[str, Any]) -> None:
        """Live events of the simulated platform, through the one entry point."""
        stamped = []
        for e in events:
            self._n += 1
            stamped.append({"id": f"e{self._n}", **e})
        with unit_of_work(self.db) as s:
            ingest(
                s,
                self.org_id,
                stamped,
                platform="simulator",
                source="simulator",
                live=True,
                connection_id=self.connection_id,
            )

    def group(self, key: str, *, owned: bool = True, region: str = "") -> int:
        self.ingest(
            {"ts": sh("03-01", "08:00:00").isoformat(), "kind": "group.created", "group": key, "name": f"群{key}"}
        )
        self.platform.create_group(f"群{key}", group_id=key, region=region)
        with unit_of_work(self.db) as s:
            group = s.query(Group).filter_by(org_id=self.org_id, external_id=key).one()
            if owned:
                group.owner_id = self.owner
            group.region = region
            self.groups[key] = group.id
        return self.groups[key]

    def channel(self, code: str, *, cost_per_touch: str = "0", reward: str = "0", kind: str = "other") -> int:
        with unit_of_work(self.db) as s:
            out = create_channel(
                s,
                self.lead_scope,
                ChannelCreate(
                    code=code,
                    name=code.upper(),
                    kind=kind,
                    cost_per_touch=Decimal(cost_per_touch),
                    reward_per_member=Decimal(reward),
                ),
            )
        self.channels[code] = out.id
        return out.id

    def spend(self, code: str, day: str, *, touches: int = 0, fixed: str = "0") -> None:
        with unit_of_work(self.db) as s:
            record_spend(
                s,
                self.lead_scope,
                self.channels[code],
                SpendCreate(day=sh(day).date(), touches=touches, fixed_cost=Decimal(fixed)),
            )

    def live_code(self, name: str, channel: str, groups: list[str], **values: Any) -> str:
        """A live code with its pool; its invite links are made (the worker runs) before it returns."""
        with unit_of_work(self.db) as s:
            row = service.create_live_code(
                s,
                self.lead_scope,
                LiveCodeCreate(
                    name=name,
                    channel_id=self.channels[channel],
                    group_ids=[self.groups[g] for g in groups],
                    **values,
                ),
            )
            self.codes[name] = (row.id, row.code)
        self.run_jobs()
        return self.codes[name][1]

    def run_jobs(self) -> None:
        worker = Worker("acquisition-test", factory=self.db)
        while worker.run_next():
            pass
        routing.forget()

    def scan(self, name: str, at: datetime, visitor: str | None = None, *, region: str = "") -> routing.ScanResult:
        self._n += 1
        visit = routing.Visit(
            visitor or f"v{self._n:08d}",
            visitor is not None,
            "Mozilla/5.0 (iPhone) MicroMessenger/8.0",
            "203.0.113.7",
            region,
        )
        with unit_of_work(self.db) as s:
            return routing.scan(s, self.codes[name][1], visit, now=at)


def community(db: sessionmaker[Session], slug: str = "qiji") -> Iterator[Community]:
    """An organisation with a lead and an owner, and its simulated platform bound for the test."""
    with unit_of_work(db) as s:
        org = create_organisation(s, name=slug, slug=slug)
        lead = create_staff(s, org.id, username=f"{slug}-lead", password="password-1", role="lead")
        owner = create_staff(s, org.id, username=f"{slug}-owner", password="password-1", role="owner")
        connection_id = default_connection(s, org.id, "simulator").id
        ids = (org.id, lead.id, owner.id)
    platform = SimulatedPlatform(seed=1, clock=VirtualClock(sh("03-01", "00:00:00")))
    routing.forget()
    with registry.bind(connection_id, SimulatorConnector(platform)):
        yield Community(db, *ids, connection_id=connection_id, platform=platform)
    routing.forget()


def joined(at: datetime, group: str, member: str, **extra: Any) -> dict[str, Any]:
    return {"ts": at.isoformat(), "kind": "member.joined", "group": group, "member": member, **extra}


def posted(at: datetime, group: str, member: str) -> dict[str, Any]:
    return {"ts": at.isoformat(), "kind": "message.posted", "group": group, "member": member, "msg_type": "text"}


def paid(at: datetime, order: str, member: str, amount: str) -> dict[str, Any]:
    return {"ts": at.isoformat(), "kind": "order.paid", "order": order, "member": member, "amount": amount}


def refunded(at: datetime, order: str, amount: str) -> dict[str, Any]:
    return {"ts": at.isoformat(), "kind": "order.refunded", "order": order, "amount": amount}

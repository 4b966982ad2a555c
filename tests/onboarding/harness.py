"""An organisation on a simulated platform, fed through the real pipeline: people act on the
platform, its events are ingested live (follow-ups run), due jobs run in a worker whose clock
the test moves, and the bot's messages are read back from the platform."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.connections.service import default_connection
from qunyun.connectors.base import PlatformProfile, get_profile
from qunyun.connectors.registry import bind
from qunyun.connectors.simulator import SimulatorConnector, VirtualClock
from qunyun.connectors.simulator.state import SimMessage
from qunyun.db.base import now_micros
from qunyun.db.session import unit_of_work
from qunyun.ingestion.service import ingest
from qunyun.models import Group, OutboundAction, Playbook, Role, StaffTask
from qunyun.models.onboarding import OnboardingNotice
from qunyun.onboarding import greetings
from qunyun.onboarding.benefits import import_codes
from qunyun.team.service import create_organisation, create_staff
from qunyun.timeutil import utcnow
from qunyun.worker.runner import MICROS, Worker, load_handler_modules

T0 = datetime.fromisoformat("2026-03-02T09:00:00+08:00")
WELCOME = "欢迎 {nickname} 加入{group_name}！我是群主{owner_name}，群规：{rules_url}"
RULES_URL = "https://example.com/rules"


@dataclass
class Org:
    db: sessionmaker[Session]
    org_id: int
    owner_id: int
    lead_id: int
    playbook_id: int
    connection_id: int
    sim: SimulatorConnector
    clock: VirtualClock
    platform_name: str
    wall_ahead: float = 0.0  # seconds the worker's clock runs ahead of real time
    groups: dict[str, int] = field(default_factory=dict)

    # -- the platform ------------------------------------------------------------------------

    def create_group(self, external_id: str, name: str) -> int:
        """A group on the platform, ingested, attached to the playbook and owned by the owner."""
        self.sim.sim.create_group(name, group_id=external_id)
        self.ingest()
        with unit_of_work(self.db) as s:
            group = s.scalars(select(Group).where(Group.org_id == self.org_id, Group.external_id == external_id)).one()
            group.playbook_id = self.playbook_id
            group.owner_id = self.owner_id
            self.groups[external_id] = group.id
            return group.id

    def join(self, member: str, group: str = "G1", *, name: str = "", after: float = 0) -> None:
        """``member`` joins ``group`` on the platform ``after`` seconds from now (both clocks move)."""
        if after:
            self.advance(after)
        self.sim.sim.add_member(member, display_name=name)
        self.sim.sim.join(member, group)

    def ingest(self) -> int:
        """Ingest live what the platform reported since the last call; how many events."""
        events = self.sim.sim.drain_events()
        if events:
            with unit_of_work(self.db) as s:
                ingest(s, self.org_id, events, platform=self.platform_name, source="test", live=True)
        return len(events)

    def bot_messages(self, group: str = "G1") -> list[SimMessage]:
        return [m for m in self.sim.sim.messages_in(group) if m.by_bot]

    # -- time and jobs -------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the platform's clock and the worker's clock together."""
        self.clock.advance(seconds=seconds)
        self.wall_ahead += seconds

    def run_jobs(self) -> int:
        """Run every job due by the worker's clock (and those they queue); how many ran."""
        worker = Worker("onboarding-test", factory=self.db, clock=lambda: now_micros() + int(self.wall_ahead * MICROS))
        ran = 0
        while True:
            jobs = worker.claim_batch(50)
            if not jobs:
                return ran
            worker.execute_batch(jobs)
            ran += len(jobs)

    def step(self) -> None:
        """Ingest, then run what is due."""
        self.ingest()
        self.run_jobs()

    # -- reading -------------------------------------------------------------------------------

    def actions(self, kind: str | None = None) -> list[OutboundAction]:
        with self.db() as s:
            query = select(OutboundAction).where(OutboundAction.org_id == self.org_id).order_by(OutboundAction.id)
            if kind is not None:
                query = query.where(OutboundAction.action == kind)
            return list(s.scalars(query))

    def notices(self) -> list[OnboardingNotice]:
        with self.db() as s:
            return list(s.scalars(select(OnboardingNotice).order_by(OnboardingNotice.id)))

    def tasks(self) -> list[StaffTask]:
        with self.db() as s:
            return list(s.scalars(select(StaffTask).where(StaffTask.org_id == self.org_id).order_by(StaffTask.id)))

    def set_playbook(self, **values: Any) -> None:
        with unit_of_work(self.db) as s:
            playbook = s.get_one(Playbook, self.playbook_id)
            for key, value in values.items():
                setattr(playbook, key, value)

    def import_codes(self, *codes: str) -> None:
        with unit_of_work(self.db) as s:
            scope = Scope(staff_id=self.lead_id, org_id=self.org_id, role=Role.LEAD)
            import_codes(s, scope, self.playbook_id, "\n".join(codes).encode())


@contextmanager
def organisation(
    db: sessionmaker[Session], *, profile: PlatformProfile | None = None, **playbook: Any
) -> Iterator[Org]:
    """An organisation whose playbook welcomes with WELCOME, on a simulator bound to its
    connection (emulating ``profile`` when given), with group G1 「华东1群」 on it."""
    load_handler_modules()
    profile = profile or get_profile("simulator")
    clock = VirtualClock(T0)
    connector = SimulatorConnector(clock=clock, profile=profile, seed=7)
    with unit_of_work(db) as s:
        org = create_organisation(s, name="骑迹单车", slug="qiji")
        owner = create_staff(s, org.id, username="owner1", password="password-1", role="owner", display_name="王群主")
        lead = create_staff(s, org.id, username="lead1", password="password-1", role="lead")
        values = {"welcome_text": WELCOME, "rules_url": RULES_URL, **playbook}
        book = Playbook(org_id=org.id, name="地方骑友群", settings={}, created_at=utcnow(), **values)
        s.add(book)
        s.flush()
        connection = default_connection(s, org.id, profile.platform)
        ids = (org.id, owner.id, lead.id, book.id, connection.id)
    world = Org(db, *ids, sim=connector, clock=clock, platform_name=profile.platform)
    # The greet jobs are scheduled on the wall clock: it runs ahead with the worker's, as real
    # time would pass with the platform's.
    real_utcnow = greetings.utcnow
    greetings.utcnow = lambda: real_utcnow() + timedelta(seconds=world.wall_ahead)
    try:
        with bind(ids[4], connector):
            world.create_group("G1", "华东1群")
            yield world
    finally:
        greetings.utcnow = real_utcnow


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)

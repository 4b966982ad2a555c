"""A simulated run fills the funnel through the real pipeline: its members scan their channel's
live code, join through the invite link the scan page gave them, and every such join is
attributed (by link) to that live code; the report's scans, visitors, joins and actives follow."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.acquisition.report import channel_report
from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.models import LiveCode, LiveCodeJoin, LiveCodeScan
from qunyun.simulate.runner import Simulation, setup_organisation
from qunyun.simulate.scenario import simulate_scenario


def test_members_arrive_through_scans_of_each_channels_live_code(db: sessionmaker[Session]) -> None:
    scenario = simulate_scenario(seed=7, days=4, groups=6, members=150, prefix="funnel")
    with unit_of_work(db) as session:
        org = setup_organisation(session, scenario, slug="funnel", name="funnel", password="password-123")
    run = Simulation(scenario, org.org_id, factory=db)
    result = run.run()
    tally = run.world.tally

    with unit_of_work(db, write=False) as session:
        codes = {name: policy for name, policy in session.execute(select(LiveCode.name, LiveCode.policy))}
        assert len(codes) == len(scenario.channels) and set(codes.values()) == {"region"}
        # Every member who came through a channel was attributed, by the link they used.
        by = dict(
            session.execute(select(LiveCodeJoin.matched_by, func.count()).group_by(LiveCodeJoin.matched_by)).all()
        )
        assert by == {"link": sum(tally.channel_members.values())}
        assert session.scalar(select(func.count()).select_from(LiveCodeJoin).where(LiveCodeJoin.scan_id.is_(None))) == 0
        scans = session.scalar(select(func.count()).select_from(LiveCodeScan)) or 0
        report = channel_report(
            session,
            Scope.organisation(org.org_id),
            scenario.start.date(),
            (scenario.start + timedelta(days=scenario.days)).date(),
        )
    rows = {r.channel: r for r in report.channels}
    assert sum(r.scans for r in rows.values()) == scans
    for spec in scenario.channels:
        row = rows[spec.code]
        assert row.joins == tally.channel_members[spec.code], spec.code
        assert row.scans >= row.visitors >= row.joins
    assert sum(r.scans for r in rows.values()) > sum(r.visitors for r in rows.values())  # some scan twice
    assert sum(r.visitors for r in rows.values()) > sum(r.joins for r in rows.values())  # some never join
    assert sum(r.actives_7d for r in rows.values()) > 0
    assert result.refused.get("no_room", 0) == 0 and result.jobs_pending == 0

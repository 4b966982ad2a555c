"""Simulated runs through the real pipeline: personas reach members through the connector, no
job is left behind, the same seed stores the same things, the stats equal a recomputation from
the events, and the demo and the commands work."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.analytics.stats import stats_for_cli
from qunyun.auth.passwords import verify_password
from qunyun.cli import app
from qunyun.community.service import group_name
from qunyun.connectors import get_profile
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.crm.profiles import sync_member_profiles
from qunyun.db.session import unit_of_work
from qunyun.models import (
    Channel,
    Community,
    Group,
    Job,
    Member,
    OutboundAction,
    Playbook,
    Staff,
    StaffGroupAssignment,
)
from qunyun.models.onboarding import OnboardingNotice
from qunyun.simulate.demo import load_demo
from qunyun.simulate.runner import Simulation
from qunyun.simulate.scenario import simulate_scenario
from tests.analytics.reference import Reference

pytestmark = pytest.mark.usefixtures("db")


class Recording(Simulation):
    """A run that keeps a copy of every event it hands to ingestion."""

    log: list[dict[str, Any]]

    def _ingest(self, session: Session, events: list[dict[str, Any]]) -> None:
        self.log = getattr(self, "log", [])
        self.log.extend(dict(e) for e in events)
        super()._ingest(session, events)


def small_run(slug: str, *, seed: int = 5, members: int = 250, days: int = 6) -> tuple[int, Recording]:
    from qunyun.simulate.runner import setup_organisation

    scenario = simulate_scenario(seed=seed, days=days, groups=6, members=members, prefix=slug)
    with unit_of_work() as session:
        org = setup_organisation(session, scenario, slug=slug, name=slug, password="password-123")
    run = Recording(scenario, org.org_id)
    run.run()
    return org.org_id, run


def test_a_run_stores_personas_channels_and_leaves_no_job_behind(db: sessionmaker[Session]) -> None:
    org_id, run = small_run("run-a")
    result = run._result(1.0)
    with unit_of_work(db, write=False) as session:
        members = session.scalars(select(Member).where(Member.org_id == org_id)).all()
        assert len(members) == result.members
        with_persona = [m for m in members if m.gender and m.birth_year and m.occupation and m.region and m.interests]
        assert len(with_persona) == len(members)  # every member's profile came through the connector
        assert any(m.display_name != m.external_id for m in members)
        assert session.scalar(select(func.count()).select_from(Job).where(Job.status.in_(["queued", "running"]))) == 0
        actions = session.scalars(select(OutboundAction).where(OutboundAction.org_id == org_id)).all()
        assert actions and {a.state for a in actions} == {"sent"}
        sms = session.scalars(select(Channel).where(Channel.org_id == org_id, Channel.code == "sms")).one()
        assert (sms.cost_per_touch_fen, sms.reward_per_member_fen, sms.expected_rate_bp) == (5, 150, 800)
        assert sms.touches == run.world.tally.touches["sms"] > 0
        race = session.scalars(select(Channel).where(Channel.org_id == org_id, Channel.code == "offline_race")).one()
        assert race.fixed_cost_fen == 1_000_000
        groups = session.scalars(select(Group).where(Group.org_id == org_id)).all()
        assert {g.tier for g in groups} == {"normal", "core"}
        assert all(g.owner_id is not None for g in groups)


def test_the_same_seed_stores_the_same_community() -> None:
    _, first = small_run("same-1", members=150, days=4)
    _, second = small_run("same-2", members=150, days=4)

    def same(e: dict[str, Any]) -> dict[str, Any]:  # the owners' usernames differ per run
        return {k: v.replace("same-2-", "same-1-") if k == "owner" else v for k, v in e.items()}

    assert first.log == [same(e) for e in second.log]
    assert first._result(1.0).channels == second._result(1.0).channels


def test_daily_stats_equal_a_recomputation_from_the_events() -> None:
    _, run = small_run("stats", members=200, days=5)
    events = run.log
    first = min(datetime.fromisoformat(e["ts"]) for e in events).date()
    last = max(datetime.fromisoformat(e["ts"]) for e in events).date()
    rows = stats_for_cli("daily", org_slug="stats", date_from=first, date_to=last, group=None)
    assert rows == Reference(events).daily(first, last)
    assert sum(r["joins"] for r in rows) > 0 and rows[-1]["members"] > 0


def test_profiles_never_touch_erased_members(db: sessionmaker[Session]) -> None:
    org_id, run = small_run("erased", members=60, days=2)
    with unit_of_work(db) as session:
        member = session.scalars(select(Member).where(Member.org_id == org_id).order_by(Member.id)).first()
        assert member is not None
        member.erased_at = datetime.now().astimezone()
        member.gender, member.display_name = "", "已删除"
        session.flush()
        assert sync_member_profiles(session, org_id, run.connector, [member.id]) == 0
        assert (member.gender, member.display_name) == ("", "已删除")
    # A connector emulating WeCom gets names and genders only.
    wecom = SimulatorConnector(run.platform.__class__(profile=get_profile("wecom")))
    wecom.sim.add_member("x", display_name="阿杰", gender="male", birth_year=1990, occupation="教师")
    (profile,) = wecom.fetch_member_profiles(["x", "unknown"]).values()
    assert (profile.display_name, profile.gender, profile.birth_year, profile.occupation) == (
        "阿杰",
        "male",
        None,
        None,
    )


def test_the_demo_is_a_positioned_community_with_owners_regions_and_core_groups(db: sessionmaker[Session]) -> None:
    end = datetime(2026, 3, 29, 21, 30).astimezone()
    demo = load_demo(members=250, days=6, end=end, password="demo-pass-1")
    assert (demo.lead_username, demo.owner_username, demo.lead_password) == ("lead", "owner1", "demo-pass-1")
    with unit_of_work(db, write=False) as session:
        staff = {s.username: s for s in session.scalars(select(Staff).where(Staff.org_id == demo.org_id))}
        assert staff["lead"].role == "lead" and verify_password(staff["owner1"].password_hash, "demo-pass-1")
        owners = [s for s in staff.values() if s.role == "owner"]
        assert 5 <= len(owners) <= 6
        groups = session.scalars(select(Group).where(Group.org_id == demo.org_id)).all()
        per_owner = {o.id: sum(1 for g in groups if g.owner_id == o.id) for o in owners}
        assert all(5 <= n <= 10 for n in per_owner.values()), per_owner
        regions = {g.region for g in groups if g.tier == "normal"}
        assert {"华东", "华南", "华北", "东北", "西南", "华中", "西北"} <= regions
        core = [g for g in groups if g.tier == "core"]
        assert 2 <= len(core) <= 3 and all("核心" in g.name for g in core)
        assert any(g.name == "骑迹·华东骑友1群" for g in groups)
        communities = {c.community_type: c for c in session.scalars(select(Community))}
        assert {"local", "core"} <= set(communities)
        for c in communities.values():
            assert c.purpose and c.target_persona and c.value_offered and c.rules and c.rhythm and c.goals
        assert all(g.community_id and g.playbook_id for g in groups)
        playbooks = {p.id: p for p in session.scalars(select(Playbook))}
        used = {playbooks[g.playbook_id] for g in groups if g.playbook_id}
        assert all(p.naming_template and p.rules_text and p.welcome_text for p in used)
        # Group names follow their playbook's naming template (the placeholders the console takes).
        names = {g.name for g in groups}
        for p in used:
            assert any(
                group_name(p.naming_template, brand="", region=region, seq=1) in names for region in regions | {""}
            ), p.naming_template
        assert session.scalar(select(func.count()).select_from(StaffGroupAssignment)) > 0
        # Every join is welcomed; joins into a group within its raid-protection window share one welcome.
        welcomes = session.scalar(
            select(func.count()).select_from(OutboundAction).where(OutboundAction.action == "welcome_members")
        )
        greeted = session.scalar(
            select(func.count())
            .select_from(OnboardingNotice)
            .where(OnboardingNotice.kind == "welcome", OnboardingNotice.status == "sent")
        )
        assert welcomes and greeted and greeted >= demo.counts["members"] * 0.9
        assert session.scalar(select(func.count()).select_from(Job).where(Job.status != "done")) == 0
    # The last simulated day is the day of ``end``: "today" has data.
    today = stats_for_cli("daily", org_slug="qiji", date_from=end.date(), date_to=end.date(), group=None)
    assert today[0]["members"] > 0 and today[0]["actives"] > 0


def test_qunyun_demo_prints_the_logins_and_refuses_a_second_load(tmp_path: Path) -> None:
    runner = CliRunner()
    password = tmp_path / "pw"
    password.write_text("demo-pass-2\n")
    # A narrow terminal: every account's login (username, password, role) stays on one line.
    first = runner.invoke(
        app,
        ["demo", "--members", "120", "--days", "3", "--password-file", str(password), "-q"],
        env={"COLUMNS": "40"},
    )
    assert first.exit_code == 0, first.output
    logins = [line for line in first.stderr.splitlines() if line.startswith("账号 ")]
    accounts = ["lead", "owner1", "owner2", "owner3", "owner4", "owner5", "admin1", "analyst"]
    assert [line.split()[1] for line in logins] == accounts
    assert logins[0] == "账号 lead  密码 demo-pass-2  （总群主，qiji）"
    assert logins[-1] == "账号 analyst  密码 demo-pass-2  （数据分析，qiji）"
    assert all("密码 demo-pass-2" in line for line in logins)
    assert first.stderr.splitlines()[0].startswith("数据库：")
    again = runner.invoke(app, ["demo", "--if-empty"])
    assert again.exit_code == 0 and "reset-password" in again.stderr
    refused = runner.invoke(app, ["demo"])
    assert refused.exit_code == 2
    reset = runner.invoke(app, ["staff", "reset-password", "owner1"])
    assert reset.exit_code == 0
    new = reset.stderr.split("密码")[1].split()[0]
    with unit_of_work(write=False) as session:
        owner = session.scalars(select(Staff).where(Staff.username == "owner1")).one()
        assert verify_password(owner.password_hash, new)


def test_qunyun_simulate_prints_a_summary() -> None:
    runner = CliRunner()
    done = runner.invoke(
        app, ["simulate", "--days", "2", "--groups", "4", "--members", "150", "--seed", "9", "--quiet"]
    )
    assert done.exit_code == 0, done.output
    for word in ("wall time", "events/s", "members", "GMV", "sms", "CAC"):
        assert word in done.stdout, word
    again = runner.invoke(app, ["simulate", "--days", "1", "--members", "10", "--seed", "9", "-q"])
    assert again.exit_code == 2 and "sim-9" in again.stderr  # one organisation per run
    live = runner.invoke(
        app,
        ["simulate", "--days", "1", "--groups", "2", "--members", "20", "--org", "live", "--speed", "86400", "-q"],
    )
    assert live.exit_code == 0, live.output
    rows = stats_for_cli(
        "daily", org_slug="live", date_from=date(2026, 3, 2), date_to=date(2026, 3, 2) + timedelta(days=0), group=None
    )
    assert rows[0]["joins"] > 0

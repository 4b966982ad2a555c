"""Two organisations, each with its own simulator connection, run simulations at the same time in
one process (two threads): each organisation's groups are on its own connection, every job of
each ran, and each simulated world received only its own organisation's sends."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.connections.service import default_connection
from qunyun.db.session import unit_of_work
from qunyun.models import Connection, Group, Job, OutboundAction
from qunyun.simulate.runner import Simulation, setup_organisation
from qunyun.simulate.scenario import simulate_scenario

pytestmark = pytest.mark.usefixtures("db")


class Watched(Simulation):
    """A run whose simulated platform notes every message qunyun's bot sends into it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, str]] = []  # (group external id, text)
        send = self.platform.send_message

        def noting(group: str, text: str, **options: Any) -> Any:
            self.received.append((group, text))
            return send(group, text, **options)

        self.platform.send_message = noting  # type: ignore[method-assign]


def _prepare(slug: str, seed: int, *, days: int, groups: int) -> Watched:
    scenario = simulate_scenario(seed=seed, days=days, groups=groups, members=120, prefix=slug)
    with unit_of_work() as session:
        org = setup_organisation(session, scenario, slug=slug, name=slug, password="password-123")
    return Watched(scenario, org.org_id)


def test_two_organisations_simulate_side_by_side(db: sessionmaker[Session]) -> None:
    # Different sizes: a send that reached the other world would change both worlds' tallies.
    runs = [_prepare("side-a", 5, days=3, groups=4), _prepare("side-b", 6, days=5, groups=6)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result() for f in [pool.submit(run.run) for run in runs]]

    with unit_of_work(db, write=False) as session:
        connections = {run.org_id: default_connection(session, run.org_id, "simulator").id for run in runs}
        assert len(set(connections.values())) == 2
        for run, result in zip(runs, results, strict=True):
            org_id = run.org_id
            connection_id = connections[org_id]
            assert run.connection_id == connection_id
            connection = session.get(Connection, connection_id)
            assert connection is not None and connection.org_id == org_id and connection.platform == "simulator"

            # Its groups are on its own connection, and they are the groups of its own world.
            groups = session.execute(select(Group.external_id, Group.connection_id).where(Group.org_id == org_id)).all()
            assert groups and {c for _, c in groups} == {connection_id}
            own_groups = {external_id for external_id, _ in groups}
            assert own_groups == set(run.group_ids)

            # Every job of each ran.
            assert result.jobs_run > 0 and result.jobs_pending == 0
            left = session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.org_id == org_id, Job.status.in_(["queued", "running", "dead", "failed"]))
            )
            assert left == 0

            # Each world received only its own organisation's sends, each action once.
            actions = session.scalars(select(OutboundAction).where(OutboundAction.org_id == org_id)).all()
            assert actions and {a.state for a in actions} == {"sent"}
            assert {a.connection_id for a in actions} == {connection_id}
            external = {group_id: external_id for external_id, group_id in run.group_ids.items()}
            # Messages, besides the invite links its live codes asked its own platform for.
            links = [a for a in actions if a.action == "create_invite_link"]
            assert links and all(external[a.group_id] for a in links)
            sends = [a for a in actions if a.action != "create_invite_link"]
            sent = sorted((external[a.group_id], a.payload["text"]) for a in sends if a.group_id is not None)
            assert len(sent) == len(sends)
            assert sorted(run.received) == sent
    # The two worlds' sends differ (else the check above could not tell them apart).
    assert len(runs[0].received) < len(runs[1].received)

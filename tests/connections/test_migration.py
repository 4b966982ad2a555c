"""Migration 0003 on a database that has data: every existing group and outbound action ends up
on a connection of its organisation and platform, the simulator's included."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from qunyun.db.migrate import upgrade


def test_existing_groups_and_actions_get_a_connection_per_organisation_and_platform(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{(tmp_path / 'old.db').as_posix()}")
    upgrade(engine, "0002_login_failures")
    group = (
        "INSERT INTO groups (id, org_id, platform, external_id, name, tier, region, capacity, status,"
        " member_count, created_at) VALUES (:id, :org, :platform, :ext, 'g', 'normal', '', 500, 'active', 0, 0)"
    )
    action = (
        "INSERT INTO outbound_actions (id, org_id, platform, action, group_id, payload, idempotency_key, state,"
        " attempts, result, created_at, updated_at)"
        " VALUES (:id, :org, :platform, 'send_group_message', :group, '{}', :key, 'sent', 1, '{}', 0, 0)"
    )
    with engine.begin() as conn:
        for org in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO organisations (id, name, slug, time_zone, created_at)"
                    " VALUES (:id, 'o', :slug, 'UTC', 0)"
                ),
                {"id": org, "slug": f"o{org}"},
            )
        for row in (
            {"id": 10, "org": 1, "platform": "simulator", "ext": "a"},
            {"id": 11, "org": 1, "platform": "simulator", "ext": "b"},
            {"id": 12, "org": 1, "platform": "wecom", "ext": "wr1"},
            {"id": 20, "org": 2, "platform": "simulator", "ext": "a"},
        ):
            conn.execute(text(group), row)
        conn.execute(text(action), {"id": 1, "org": 1, "platform": "simulator", "group": 10, "key": "k1"})
        conn.execute(text(action), {"id": 2, "org": 2, "platform": "simulator", "group": 20, "key": "k1"})
        conn.execute(text(action), {"id": 3, "org": 2, "platform": "telegram", "group": None, "key": "k2"})
    upgrade(engine, "0003_connections")
    with engine.connect() as conn:
        connections = {
            (org, platform): (cid, name, status)
            for cid, org, platform, name, status in conn.execute(
                text("SELECT id, org_id, platform, name, status FROM connections")
            )
        }
        groups = dict(conn.execute(text("SELECT id, connection_id FROM groups")).all())
        actions = dict(conn.execute(text("SELECT id, connection_id FROM outbound_actions")).all())
    engine.dispose()
    assert set(connections) == {(1, "simulator"), (1, "wecom"), (2, "simulator"), (2, "telegram")}
    assert all(name == platform and status == "active" for (_, platform), (_, name, status) in connections.items())
    cid = {key: value[0] for key, value in connections.items()}
    assert groups == {10: cid[1, "simulator"], 11: cid[1, "simulator"], 12: cid[1, "wecom"], 20: cid[2, "simulator"]}
    assert actions == {1: cid[1, "simulator"], 2: cid[2, "simulator"], 3: cid[2, "telegram"]}

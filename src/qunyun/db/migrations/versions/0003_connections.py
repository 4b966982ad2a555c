"""connections: one per organisation's platform account; groups and outbound actions belong to one

Existing data gets one connection per organisation and platform it holds groups or outbound
actions on (named after the platform, e.g. "simulator"), and every group and action is attached
to it.

Revision ID: 0003_connections
Revises: 0002_login_failures
Create Date: 2026-12-03 12:00:00
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_connections"
down_revision: str | None = "0002_login_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("secrets", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("tested_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_connections_org_id_organisations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connections")),
        sa.UniqueConstraint("org_id", "name", name=op.f("uq_connections_org_id_name")),
    )
    op.create_index(op.f("ix_connections_org_id"), "connections", ["org_id"])
    for table in ("groups", "outbound_actions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("connection_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                op.f(f"fk_{table}_connection_id_connections"),
                "connections",
                ["connection_id"],
                ["id"],
                ondelete="RESTRICT",
            )
            batch.create_index(op.f(f"ix_{table}_connection_id"), ["connection_id"])

    bind = op.get_bind()
    now = int(time.time() * 1_000_000)
    pairs = bind.execute(
        sa.text(
            "SELECT DISTINCT org_id, platform FROM groups UNION SELECT DISTINCT org_id, platform FROM outbound_actions"
        )
    ).all()
    for org_id, platform in sorted(pairs):
        bind.execute(
            sa.text(
                "INSERT INTO connections (org_id, platform, name, settings, secrets, status, created_at, updated_at)"
                " VALUES (:org, :platform, :platform, '{}', '', 'active', :now, :now)"
            ),
            {"org": org_id, "platform": platform, "now": now},
        )
    for table in ("groups", "outbound_actions"):
        bind.execute(
            sa.text(
                f"UPDATE {table} SET connection_id = (SELECT c.id FROM connections c"
                f" WHERE c.org_id = {table}.org_id AND c.platform = {table}.platform AND c.name = c.platform)"
            )
        )


def downgrade() -> None:
    for table in ("outbound_actions", "groups"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(op.f(f"ix_{table}_connection_id"))
            batch.drop_constraint(op.f(f"fk_{table}_connection_id_connections"), type_="foreignkey")
            batch.drop_column("connection_id")
    op.drop_index(op.f("ix_connections_org_id"), table_name="connections")
    op.drop_table("connections")

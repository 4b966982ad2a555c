"""WeCom connector state (token cache, sync state, join ways)

Revision ID: 0015_wecom
Revises: 0014_sop
Create Date: 2026-12-03 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_wecom"
down_revision: str | None = "0014_sop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _conn_fk(t: str) -> sa.ForeignKey:
    return sa.ForeignKey("connections.id", ondelete="CASCADE", name=f"fk_{t}_connection_id_connections")


def upgrade() -> None:
    t = "wecom_tokens"
    op.create_table(
        t,
        sa.Column("connection_id", sa.Integer(), _conn_fk(t), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("refreshed", sa.Integer(), nullable=False),
        sa.Column("callbacks_after", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", name=f"pk_{t}"),
    )
    t = "wecom_groups"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), _conn_fk(t), nullable=False),
        sa.Column("chat_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("notice", sa.Text(), nullable=False),
        sa.Column("member_version", sa.String(64), nullable=False),
        sa.Column("dismissed", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("connection_id", "chat_id", name=f"uq_{t}_connection_id_chat_id"),
    )
    t = "wecom_join_ways"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), _conn_fk(t), nullable=False),
        sa.Column("config_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("qr_code", sa.String(500), nullable=False),
        sa.Column("chat_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("connection_id", "state", name=f"uq_{t}_connection_id_state"),
    )
    t = "wecom_sync_reports"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), _conn_fk(t), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("groups", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("corrected", sa.Integer(), nullable=False),
        sa.Column("differences", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
    )
    op.create_index(f"ix_{t}_connection_id", t, ["connection_id"])


def downgrade() -> None:
    op.drop_index("ix_wecom_sync_reports_connection_id", table_name="wecom_sync_reports")
    for t in ("wecom_sync_reports", "wecom_join_ways", "wecom_groups", "wecom_tokens"):
        op.drop_table(t)

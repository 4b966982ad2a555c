"""webhook inbox: raw verified deliveries and rejection counters

``webhook_deliveries`` holds each verified webhook request as it came, unique per connection and
dedupe key (the platform's delivery id or the body's SHA-256); ``webhook_rejections`` counts the
refused ones per connection, reason and UTC day (docs/webhooks.md).

Revision ID: 0006_webhook_inbox
Revises: 0005_live_counts
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_webhook_inbox"
down_revision: str | None = "0005_live_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("processed_at", sa.BigInteger(), nullable=True),
        sa.Column("events", sa.Integer(), nullable=True),
        sa.Column("events_stored", sa.Integer(), nullable=True),
        sa.Column("purged_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_webhook_deliveries_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_webhook_deliveries_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("connection_id", "dedupe_key", name=op.f("uq_webhook_deliveries_connection_id_dedupe_key")),
    )
    op.create_index("ix_webhook_deliveries_org_received", "webhook_deliveries", ["org_id", "received_at"])
    op.create_index("ix_webhook_deliveries_status_processed", "webhook_deliveries", ["status", "processed_at"])

    op.create_table(
        "webhook_rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=True),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_webhook_rejections_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_webhook_rejections_connection_id_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_rejections")),
    )
    # Requests naming no connection count in one row per reason and day: NULL would make every
    # such row distinct in a plain unique constraint, on SQLite and PostgreSQL alike.
    op.create_index(
        "uq_webhook_rejections_bucket",
        "webhook_rejections",
        [sa.text("coalesce(connection_id, 0)"), "reason", "day"],
        unique=True,
    )
    op.create_index("ix_webhook_rejections_org_day", "webhook_rejections", ["org_id", "day"])


def downgrade() -> None:
    op.drop_index("ix_webhook_rejections_org_day", table_name="webhook_rejections")
    op.drop_index("uq_webhook_rejections_bucket", table_name="webhook_rejections")
    op.drop_table("webhook_rejections")
    op.drop_index("ix_webhook_deliveries_status_processed", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_org_received", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")

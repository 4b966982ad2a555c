"""channel spend: touches and fixed costs with the day they were spent

The channel report prices a range of days (PRODUCT.md: touches dated in the range × cost per
touch + fixed costs dated in the range). Channels that already have touches or a fixed cost get
one row with those totals, dated the day the channel was created.

Revision ID: 0012_channel_spend
Revises: 0011_onboarding
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0012_channel_spend"
down_revision: str | None = "0011_onboarding"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("touches", sa.BigInteger(), nullable=False),
        sa.Column("fixed_cost_fen", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_channel_spend_org_id_organisations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_channel_spend_channel_id_channels"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["staff.id"], name=op.f("fk_channel_spend_created_by_id_staff"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_spend")),
    )
    op.create_index("ix_channel_spend_org_id", "channel_spend", ["org_id"], unique=False)
    op.create_index("ix_channel_spend_channel_day", "channel_spend", ["channel_id", "day"], unique=False)

    # Existing totals, dated the day their channel was created (in its organisation's zone).
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT c.id, c.org_id, c.touches, c.fixed_cost_fen, c.created_at, o.time_zone"
            " FROM channels c JOIN organisations o ON o.id = c.org_id"
            " WHERE c.touches <> 0 OR c.fixed_cost_fen <> 0"
        )
    ).all()
    for channel_id, org_id, touches, fixed, created_at, zone in rows:
        local = datetime.fromtimestamp(created_at / 1_000_000, UTC).astimezone(ZoneInfo(zone))
        bind.execute(
            sa.text(
                "INSERT INTO channel_spend (org_id, channel_id, day, touches, fixed_cost_fen, note, source,"
                " created_at) VALUES (:org, :channel, :day, :touches, :fixed, '', 'created', :at)"
            ),
            {
                "org": org_id,
                "channel": channel_id,
                "day": local.year * 10000 + local.month * 100 + local.day,
                "touches": touches,
                "fixed": fixed,
                "at": created_at,
            },
        )


def downgrade() -> None:
    op.drop_index("ix_channel_spend_channel_day", table_name="channel_spend")
    op.drop_index("ix_channel_spend_org_id", table_name="channel_spend")
    op.drop_table("channel_spend")

"""incremental live counts: per-day member sets for distinct daily counts

``org_day_members`` holds, per organisation, day and member, whether the member joined, left or
posted in any group that day; ingestion keeps ``org_daily``'s distinct counts from it by deltas
instead of recounting the day. Backfilled from ``member_days``.

Revision ID: 0005_live_counts
Revises: 0004_tasks
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_live_counts"
down_revision: str | None = "0004_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "org_day_members",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("joined", sa.SmallInteger(), nullable=False),
        sa.Column("departed", sa.SmallInteger(), nullable=False),
        sa.Column("active", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "day", "member_id", name=op.f("pk_org_day_members")),
    )
    op.execute(
        "INSERT INTO org_day_members (org_id, day, member_id, joined, departed, active)"
        " SELECT org_id, day, member_id, max(joined), max(departed),"
        " max(CASE WHEN messages > 0 THEN 1 ELSE 0 END) FROM member_days GROUP BY org_id, day, member_id"
    )


def downgrade() -> None:
    op.drop_table("org_day_members")

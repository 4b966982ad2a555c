"""incremental live counts: per-day member sets for distinct daily counts

Revision ID: 0005_live_counts
Revises: 0004_tasks
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

revision: str = "0005_live_counts"
down_revision: str | None = "0004_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

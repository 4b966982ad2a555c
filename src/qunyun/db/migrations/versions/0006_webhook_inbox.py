"""webhook inbox: raw verified deliveries and rejection counters

Revision ID: 0006_webhook_inbox
Revises: 0005_live_counts
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

revision: str = "0006_webhook_inbox"
down_revision: str | None = "0005_live_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

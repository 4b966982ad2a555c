"""moderation: policies, decisions, reversals, member roles (filled in by the moderation work)

Revision ID: 0013_moderation
Revises: 0012_channel_spend
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

revision: str = "0013_moderation"
down_revision: str | None = "0012_channel_spend"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

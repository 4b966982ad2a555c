"""SOP: plans, steps, attachments and runs (filled in by the SOP work)

Revision ID: 0014_sop
Revises: 0013_moderation
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

revision: str = "0014_sop"
down_revision: str | None = "0013_moderation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

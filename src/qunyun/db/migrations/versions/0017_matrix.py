"""Matrix connector state

Revision ID: 0017_matrix
Revises: 0016_telegram
Create Date: 2026-12-03 21:00:00
"""

from collections.abc import Sequence

revision: str = "0017_matrix"
down_revision: str | None = "0016_telegram"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

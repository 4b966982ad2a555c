"""connections: one per organisation's platform account; groups and outbound actions belong to one

Revision ID: 0003_connections
Revises: 0002_login_failures
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

revision: str = "0003_connections"
down_revision: str | None = "0002_login_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

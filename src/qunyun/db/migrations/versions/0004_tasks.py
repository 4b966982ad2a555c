"""staff tasks as a domain: enum states, reminders, escalation, evidence

Revision ID: 0004_tasks
Revises: 0003_connections
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

revision: str = "0004_tasks"
down_revision: str | None = "0003_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

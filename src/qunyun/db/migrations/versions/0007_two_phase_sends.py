"""two-phase sends: sending and uncertain states, attempts recorded before the call

Revision ID: 0007_two_phase_sends
Revises: 0006_webhook_inbox
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

revision: str = "0007_two_phase_sends"
down_revision: str | None = "0006_webhook_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

"""interchange additions: message ids on messages, message.deleted, member names

Revision ID: 0008_message_refs
Revises: 0007_two_phase_sends
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

revision: str = "0008_message_refs"
down_revision: str | None = "0007_two_phase_sends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

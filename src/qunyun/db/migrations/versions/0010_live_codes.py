"""live codes, group QR images, scans

Revision ID: 0010_live_codes
Revises: 0009_messages_and_notices
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

revision: str = "0010_live_codes"
down_revision: str | None = "0009_messages_and_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

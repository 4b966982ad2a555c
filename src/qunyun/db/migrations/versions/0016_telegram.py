"""Telegram connector state

Revision ID: 0016_telegram
Revises: 0015_wecom
Create Date: 2026-12-03 21:00:00
"""

from collections.abc import Sequence

revision: str = "0016_telegram"
down_revision: str | None = "0015_wecom"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

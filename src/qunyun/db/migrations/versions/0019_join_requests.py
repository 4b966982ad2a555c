"""Telegram join requests and Matrix live-code invitations

Revision ID: 0019_join_requests
Revises: 0018_wecom_contacts
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

revision: str = "0019_join_requests"
down_revision: str | None = "0018_wecom_contacts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

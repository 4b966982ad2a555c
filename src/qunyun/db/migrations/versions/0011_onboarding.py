"""onboarding: coupon pools and welcome batching

Revision ID: 0011_onboarding
Revises: 0010_live_codes
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

revision: str = "0011_onboarding"
down_revision: str | None = "0010_live_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

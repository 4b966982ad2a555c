"""WeCom connector state (token cache, sync state, join ways)

Revision ID: 0015_wecom
Revises: 0014_sop
Create Date: 2026-12-03 21:00:00
"""

from collections.abc import Sequence

revision: str = "0015_wecom"
down_revision: str | None = "0014_sop"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

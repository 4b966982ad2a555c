"""WeCom customer contacts and corp tags

Revision ID: 0018_wecom_contacts
Revises: 0017_matrix
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

revision: str = "0018_wecom_contacts"
down_revision: str | None = "0017_matrix"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

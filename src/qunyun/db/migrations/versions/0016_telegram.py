"""Telegram connector state: polling offsets

Revision ID: 0016_telegram
Revises: 0015_wecom
Create Date: 2026-12-03 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_telegram"
down_revision: str | None = "0015_wecom"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _connection_fk(table: str) -> sa.ForeignKey:
    return sa.ForeignKey("connections.id", ondelete="CASCADE", name=f"fk_{table}_connection_id_connections")


def upgrade() -> None:
    op.create_table(
        "telegram_poll_state",
        sa.Column("connection_id", sa.Integer(), _connection_fk("telegram_poll_state"), primary_key=True),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("telegram_poll_state")

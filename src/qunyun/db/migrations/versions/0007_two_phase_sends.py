"""two-phase sends: sending and uncertain states, attempts recorded before the call

The states are strings, so ``sending`` and ``uncertain`` need no schema change. Each transition
row now carries the attempt it belongs to (``sending`` is written with the attempt number before
the platform is called), and actions are found by state (the sweep of actions waiting on a person,
the check that none is left ``sending``).

Revision ID: 0007_two_phase_sends
Revises: 0006_webhook_inbox
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_two_phase_sends"
down_revision: str | None = "0006_webhook_inbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_action_transitions") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_outbound_actions_state"), "outbound_actions", ["state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbound_actions_state"), table_name="outbound_actions")
    with op.batch_alter_table("outbound_action_transitions") as batch:
        batch.drop_column("attempt")

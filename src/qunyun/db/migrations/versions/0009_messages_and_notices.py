"""the history of sends in the reader's language

``outbound_action_transitions.detail_key`` and ``detail_values`` hold the detail of a state
change as a catalogue message (key and JSON values, rendered in the reader's language);
``detail`` keeps its English text, and is all that rows from before have.

Revision ID: 0009_messages_and_notices
Revises: 0008_message_refs
Create Date: 2026-12-04 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_messages_and_notices"
down_revision: str | None = "0008_message_refs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_action_transitions") as batch:
        batch.add_column(sa.Column("detail_key", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("detail_values", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_action_transitions") as batch:
        batch.drop_column("detail_values")
        batch.drop_column("detail_key")

"""the history of sends in the reader's language; task notices

``outbound_action_transitions.detail_key`` and ``detail_values`` hold the detail of a state
change as a catalogue message (key and JSON values, rendered in the reader's language);
``detail`` keeps its English text, and is all that rows from before have.

``staff_task_notices``: a task's reminder (to its assignee) or escalation (to the lead), unseen
until the task is shown to that person; the console counts the unseen ones.

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
    op.create_table(
        "staff_task_notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"], ["staff_tasks.id"], name=op.f("fk_staff_task_notices_task_id_staff_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_staff_task_notices_staff_id_staff"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_task_notices")),
    )
    op.create_index("ix_staff_task_notices_staff_seen", "staff_task_notices", ["staff_id", "seen_at"])
    op.create_index(op.f("ix_staff_task_notices_task_id"), "staff_task_notices", ["task_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_task_notices_task_id"), table_name="staff_task_notices")
    op.drop_index("ix_staff_task_notices_staff_seen", table_name="staff_task_notices")
    op.drop_table("staff_task_notices")
    with op.batch_alter_table("outbound_action_transitions") as batch:
        batch.drop_column("detail_values")
        batch.drop_column("detail_key")

"""staff tasks as a domain: enum states, reminders, escalation, evidence

Existing rows keep their states (open, done, cancelled) and English titles; open tasks with a due
time get their first reminder an hour before it.

Revision ID: 0004_tasks
Revises: 0003_connections
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_tasks"
down_revision: str | None = "0003_connections"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_HOUR_MICROS = 3600 * 1_000_000


def upgrade() -> None:
    with op.batch_alter_table("staff_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title_key", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("title_values", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("remind_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("reminded", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("escalated_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("escalated_to_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("evidence_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("evidence_link", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("evidence_image", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("completed_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_staff_tasks_escalated_to_id_staff"),
            "staff",
            ["escalated_to_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_staff_tasks_completed_by_id_staff"),
            "staff",
            ["completed_by_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_staff_tasks_org_status_due", ["org_id", "status", "due_at"], unique=False)
        batch_op.create_index("ix_staff_tasks_outbound_action_id", ["outbound_action_id"], unique=False)

    op.execute(
        sa.text(
            "UPDATE staff_tasks SET remind_at = due_at - :hour WHERE status = 'open' AND due_at IS NOT NULL"
        ).bindparams(hour=_HOUR_MICROS)
    )

    op.create_table(
        "staff_task_events",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("task_id", _BIGINT_ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["staff_tasks.id"], name=op.f("fk_staff_task_events_task_id_staff_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["staff.id"], name=op.f("fk_staff_task_events_actor_id_staff"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_task_events")),
    )
    op.create_index(op.f("ix_staff_task_events_task_id"), "staff_task_events", ["task_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_task_events_task_id"), table_name="staff_task_events")
    op.drop_table("staff_task_events")
    with op.batch_alter_table("staff_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_staff_tasks_outbound_action_id")
        batch_op.drop_index("ix_staff_tasks_org_status_due")
        batch_op.drop_constraint(batch_op.f("fk_staff_tasks_completed_by_id_staff"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_staff_tasks_escalated_to_id_staff"), type_="foreignkey")
        for column in (
            "note",
            "completed_by_id",
            "evidence_image",
            "evidence_link",
            "evidence_text",
            "escalated_to_id",
            "escalated_at",
            "reminded",
            "remind_at",
            "title_values",
            "title_key",
        ):
            batch_op.drop_column(column)

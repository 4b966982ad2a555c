"""SOP: plans, steps, attachments, applications, group pauses and runs

A plan (daily rhythm or campaign) has steps; it is attached to playbooks, communities or groups
and applied to groups (``sop_applications``); each application materializes its runs (group ×
step × day, with the fire time), which become outbound actions or staff tasks when they fire
(docs/sop.md).

Revision ID: 0014_sop
Revises: 0013_moderation
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_sop"
down_revision: str | None = "0013_moderation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", ondelete=ondelete, name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    t = "sop_plans"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("quiet_start", sa.Integer(), nullable=True),
        sa.Column("quiet_end", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("org_id", "name", name=f"uq_{t}_org_id_name"),
    )
    op.create_index(f"ix_{t}_org_id", t, ["org_id"])

    t = "sop_steps"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("plan_id", sa.Integer(), _fk(t, "plan_id", "sop_plans", "CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("at_minute", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("evidence_required", sa.Boolean(), nullable=False),
        sa.Column("phase", sa.String(16), nullable=True),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("on_day", sa.Integer(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
    )
    op.create_index(f"ix_{t}_org_id", t, ["org_id"])
    op.create_index("ix_sop_steps_plan_active", t, ["plan_id", "active", "position"])

    t = "sop_attachments"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("plan_id", sa.Integer(), _fk(t, "plan_id", "sop_plans", "CASCADE"), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("start_day", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("plan_id", "target", "target_id", name=f"uq_{t}_plan_id_target_target_id"),
    )
    op.create_index(f"ix_{t}_org_id", t, ["org_id"])
    op.create_index("ix_sop_attachments_target", t, ["target", "target_id"])

    t = "sop_applications"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("plan_id", sa.Integer(), _fk(t, "plan_id", "sop_plans", "CASCADE"), nullable=False),
        sa.Column("group_id", sa.Integer(), _fk(t, "group_id", "groups", "CASCADE"), nullable=False),
        sa.Column("attachment_id", sa.Integer(), _fk(t, "attachment_id", "sop_attachments", "SET NULL"), nullable=True),
        sa.Column("start_day", sa.Integer(), nullable=False),
        sa.Column("through_day", sa.Integer(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("plan_id", "group_id", "start_day", name=f"uq_{t}_plan_id_group_id_start_day"),
    )
    op.create_index(f"ix_{t}_org_id", t, ["org_id"])
    op.create_index("ix_sop_applications_group", t, ["group_id"])

    t = "sop_group_pauses"
    op.create_table(
        t,
        sa.Column("group_id", sa.Integer(), _fk(t, "group_id", "groups", "CASCADE"), nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("paused_at", sa.BigInteger(), nullable=False),
        sa.Column("paused_by", sa.Integer(), _fk(t, "paused_by", "staff", "SET NULL"), nullable=True),
        sa.PrimaryKeyConstraint("group_id", name=f"pk_{t}"),
    )
    op.create_index(f"ix_{t}_org_id", t, ["org_id"])

    t = "sop_runs"
    op.create_table(
        t,
        sa.Column("id", BIGINT, nullable=False),
        # Only the application is a foreign key (see models/sop.py: SopRun).
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column(
            "application_id", sa.Integer(), _fk(t, "application_id", "sop_applications", "CASCADE"), nullable=False
        ),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.Column("fire_at", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("fired_at", sa.BigInteger(), nullable=True),
        sa.Column("action_id", BIGINT, _fk(t, "action_id", "outbound_actions", "SET NULL"), nullable=True),
        sa.Column("task_id", BIGINT, _fk(t, "task_id", "staff_tasks", "SET NULL"), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{t}"),
        sa.UniqueConstraint("application_id", "step_id", "day", name=f"uq_{t}_application_id_step_id_day"),
    )
    op.create_index("ix_sop_runs_due", t, ["state", "fire_at"])
    op.create_index("ix_sop_runs_group_due", t, ["group_id", "due_at"])
    op.create_index("ix_sop_runs_plan_state", t, ["plan_id", "state"])
    op.create_index(f"ix_{t}_action_id", t, ["action_id"])


def downgrade() -> None:
    for table in ("sop_runs", "sop_group_pauses", "sop_applications", "sop_attachments", "sop_steps", "sop_plans"):
        op.drop_table(table)

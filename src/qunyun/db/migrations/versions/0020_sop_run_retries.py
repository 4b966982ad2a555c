"""SOP run retries

``sop_runs.attempt`` (the run's current attempt: its send's idempotency key names it from the
second on) and ``sop_runs.attempt_due_at`` (when a retried attempt became due: its lateness is
counted from then), and ``sop_run_retries``, the append-only record of each retry of a failed
run (who, when, and what the failed attempt was).

Revision ID: 0020_sop_run_retries
Revises: 0019_join_requests
Create Date: 2026-12-04 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_sop_run_retries"
down_revision: str | None = "0019_join_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    with op.batch_alter_table("sop_runs", schema=None) as batch_op:
        # A server default: the PostgreSQL bulk insert (COPY, then INSERT … SELECT) names only
        # the columns it fills.
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("attempt_due_at", sa.BigInteger(), nullable=True))
    t = "sop_run_retries"
    op.create_table(
        t,
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("run_id", _BIGINT_ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("failed_action_id", _BIGINT_ID, nullable=True),
        sa.Column("failed_reason", sa.String(length=64), nullable=False),
        sa.Column("failed_detail", sa.Text(), nullable=False),
        sa.Column("retried_by", sa.Integer(), nullable=True),
        sa.Column("retried_at", sa.BigInteger(), nullable=False),
        _fk(t, "org_id", "organisations", "CASCADE"),
        _fk(t, "run_id", "sop_runs", "CASCADE"),
        _fk(t, "failed_action_id", "outbound_actions", "SET NULL"),
        _fk(t, "retried_by", "staff", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("run_id", "attempt", name=op.f(f"uq_{t}_run_id_attempt")),
    )
    op.create_index(op.f(f"ix_{t}_org_id"), t, ["org_id"])


def downgrade() -> None:
    op.drop_table("sop_run_retries")
    with op.batch_alter_table("sop_runs", schema=None) as batch_op:
        batch_op.drop_column("attempt_due_at")
        batch_op.drop_column("attempt")

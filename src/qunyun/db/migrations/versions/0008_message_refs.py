"""interchange additions: message ids on messages, message.deleted, member names

``events.message_ref`` holds the platform's id of the message a ``message.posted`` or
``message.deleted`` names, indexed by (group, message id) for the rows that carry one.
``members.display_name_at`` is the event time of the name last taken from an event's
``member_name``, so the latest by event time wins whatever the arrival order.

Revision ID: 0008_message_refs
Revises: 0007_two_phase_sends
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_message_refs"
down_revision: str | None = "0007_two_phase_sends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("message_ref", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_events_message_ref",
        "events",
        ["group_id", "message_ref"],
        sqlite_where=sa.text("message_ref IS NOT NULL"),
        postgresql_where=sa.text("message_ref IS NOT NULL"),
    )
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("display_name_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("display_name_at")
    op.drop_index("ix_events_message_ref", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("message_ref")

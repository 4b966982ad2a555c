"""Telegram join requests and Matrix live-code invitations

``join_requests`` (requests to join through a link that creates them, and their decision),
``live_codes.join_request_policy`` (what a code's links do with them) and
``live_code_invitations`` (visitors invited by their Matrix id, their join attributed).

Revision ID: 0019_join_requests
Revises: 0018_wecom_contacts
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_join_requests"
down_revision: str | None = "0018_wecom_contacts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    with op.batch_alter_table("live_codes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("join_request_policy", sa.String(length=16), nullable=False, server_default="direct")
        )
    op.create_table(
        "join_requests",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("chat", sa.String(length=64), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("bio", sa.Text(), nullable=False),
        sa.Column("invite_link", sa.String(length=500), nullable=True),
        sa.Column("live_code_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=16), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.BigInteger(), nullable=True),
        sa.Column("action_id", sa.BigInteger(), nullable=True),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        _fk("join_requests", "org_id", "organisations", "CASCADE"),
        _fk("join_requests", "connection_id", "connections", "CASCADE"),
        _fk("join_requests", "group_id", "groups", "CASCADE"),
        _fk("join_requests", "live_code_id", "live_codes", "SET NULL"),
        _fk("join_requests", "decided_by_id", "staff", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_join_requests")),
        sa.UniqueConstraint(
            "connection_id",
            "chat",
            "user_id",
            "requested_at",
            name=op.f("uq_join_requests_connection_id_chat_user_id_requested_at"),
        ),
    )
    op.create_index("ix_join_requests_org_status", "join_requests", ["org_id", "status"], unique=False)
    op.create_index("ix_join_requests_member", "join_requests", ["member_id"], unique=False)
    op.create_table(
        "live_code_invitations",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("live_code_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("action_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("joined_at", sa.BigInteger(), nullable=True),
        sa.Column("join_event_id", sa.BigInteger(), nullable=True),
        _fk("live_code_invitations", "org_id", "organisations", "CASCADE"),
        _fk("live_code_invitations", "live_code_id", "live_codes", "CASCADE"),
        _fk("live_code_invitations", "group_id", "groups", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_code_invitations")),
    )
    op.create_index("ix_live_code_invitations_org_id", "live_code_invitations", ["org_id"], unique=False)
    op.create_index(
        "ix_live_code_invitations_group_user", "live_code_invitations", ["group_id", "user_id"], unique=False
    )
    op.create_index("ix_live_code_invitations_member", "live_code_invitations", ["member_id"], unique=False)


def downgrade() -> None:
    op.drop_table("live_code_invitations")
    op.drop_table("join_requests")
    with op.batch_alter_table("live_codes", schema=None) as batch_op:
        batch_op.drop_column("join_request_policy")

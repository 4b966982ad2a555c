"""WeCom customer contacts and corp tags

``wecom_contacts`` (which staff member has which external contact, the State they came through,
their welcome) and ``wecom_corp_tags`` (the corp tag library as get_corp_tag_list gives it).

Revision ID: 0018_wecom_contacts
Revises: 0017_matrix
Create Date: 2026-12-04 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_wecom_contacts"
down_revision: str | None = "0017_matrix"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    t = "wecom_contacts"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("userid", sa.String(128), nullable=False),
        sa.Column("external_userid", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.String(64), nullable=False),
        sa.Column("live_code_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.Column("removed_at", sa.BigInteger(), nullable=True),
        sa.Column("removed_source", sa.String(32), nullable=False),
        sa.Column("transfer_failure", sa.String(32), nullable=False),
        sa.Column("welcome_status", sa.String(16), nullable=False),
        sa.Column("welcome_code", sa.String(200), nullable=True),
        sa.Column("welcome_due", sa.BigInteger(), nullable=True),
        sa.Column("welcome_text", sa.Text(), nullable=False),
        sa.Column("welcome_error", sa.Text(), nullable=True),
        sa.Column("welcome_at", sa.BigInteger(), nullable=True),
        sa.Column("profile_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        _fk(t, "connection_id", "connections", "CASCADE"),
        _fk(t, "live_code_id", "live_codes", "SET NULL"),
        _fk(t, "channel_id", "channels", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint(
            "connection_id", "userid", "external_userid", name=op.f(f"uq_{t}_connection_id_userid_external_userid")
        ),
    )
    op.create_index("ix_wecom_contacts_external", t, ["connection_id", "external_userid"])
    op.create_index(op.f("ix_wecom_contacts_live_code_id"), t, ["live_code_id"])
    t = "wecom_corp_tags"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("group_id", sa.String(128), nullable=False),
        sa.Column("group_name", sa.String(100), nullable=False),
        sa.Column("tag_order", sa.Integer(), nullable=False),
        sa.Column("group_order", sa.Integer(), nullable=False),
        sa.Column("synced_at", sa.BigInteger(), nullable=False),
        _fk(t, "connection_id", "connections", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("connection_id", "tag_id", name=op.f(f"uq_{t}_connection_id_tag_id")),
    )


def downgrade() -> None:
    op.drop_table("wecom_corp_tags")
    op.drop_index(op.f("ix_wecom_contacts_live_code_id"), table_name="wecom_contacts")
    op.drop_index("ix_wecom_contacts_external", table_name="wecom_contacts")
    op.drop_table("wecom_contacts")

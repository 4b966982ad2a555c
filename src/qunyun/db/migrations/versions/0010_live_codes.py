"""live codes, group QR images, scans

``live_codes`` (the stable short code of ``/c/{code}``, its channel, routing policy, pause switch,
fallback and entry threshold), ``live_code_groups`` (the pool: each group's scan limit and the
first scans routed to it, and its invite link), ``group_qr_images`` (uploaded group QR images with
their expiry), ``live_code_visitors`` (where each visitor's first scan went), ``live_code_scans``
(every scan: time, code, channel, outcome, user agent class, the IP truncated to /24 or /48) and
``live_code_joins`` (joins attributed to a live code).

Revision ID: 0010_live_codes
Revises: 0009_messages_and_notices
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_live_codes"
down_revision: str | None = "0009_messages_and_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "live_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("connection_id", sa.Integer(), nullable=True),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("default_limit", sa.Integer(), nullable=True),
        sa.Column("hook_text", sa.Text(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("fallback_url", sa.String(length=500), nullable=False),
        sa.Column("fallback_image", sa.String(length=300), nullable=True),
        sa.Column("fallback_text", sa.Text(), nullable=False),
        sa.Column("threshold", sa.JSON(), nullable=True),
        sa.Column("playbook_id", sa.Integer(), nullable=True),
        sa.Column("qr_alert_minutes", sa.Integer(), nullable=False),
        sa.Column("full_since", sa.BigInteger(), nullable=True),
        sa.Column("full_task_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channels.id"], name=op.f("fk_live_codes_channel_id_channels"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name=op.f("fk_live_codes_connection_id_connections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["staff.id"], name=op.f("fk_live_codes_created_by_id_staff"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_live_codes_org_id_organisations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["playbook_id"], ["playbooks.id"], name=op.f("fk_live_codes_playbook_id_playbooks"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_live_codes_code")),
    )
    op.create_index(op.f("ix_live_codes_org_id"), "live_codes", ["org_id"], unique=False)
    op.create_table(
        "group_qr_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("alert_task_id", sa.BigInteger(), nullable=True),
        sa.Column("withdrawn_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_group_qr_images_group_id_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_group_qr_images_org_id_organisations"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["staff.id"], name=op.f("fk_group_qr_images_uploaded_by_id_staff"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_qr_images")),
    )
    op.create_index("ix_group_qr_images_group_expiry", "group_qr_images", ["group_id", "expires_at"], unique=False)
    op.create_index(op.f("ix_group_qr_images_org_id"), "group_qr_images", ["org_id"], unique=False)
    op.create_table(
        "live_code_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("live_code_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("scan_limit", sa.Integer(), nullable=False),
        sa.Column("routed", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("invite_action_id", _BIGINT_ID, nullable=True),
        sa.Column("invite_link", sa.String(length=500), nullable=True),
        sa.Column("added_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_live_code_groups_group_id_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["invite_action_id"],
            ["outbound_actions.id"],
            name=op.f("fk_live_code_groups_invite_action_id_outbound_actions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["live_code_id"],
            ["live_codes.id"],
            name=op.f("fk_live_code_groups_live_code_id_live_codes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_live_code_groups_org_id_organisations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_code_groups")),
        sa.UniqueConstraint("live_code_id", "group_id", name=op.f("uq_live_code_groups_live_code_id_group_id")),
    )
    op.create_index(op.f("ix_live_code_groups_group_id"), "live_code_groups", ["group_id"], unique=False)
    op.create_index(op.f("ix_live_code_groups_live_code_id"), "live_code_groups", ["live_code_id"], unique=False)
    op.create_index(op.f("ix_live_code_groups_org_id"), "live_code_groups", ["org_id"], unique=False)
    op.create_table(
        "live_code_joins",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("live_code_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("scan_id", sa.BigInteger(), nullable=True),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["live_code_id"],
            ["live_codes.id"],
            name=op.f("fk_live_code_joins_live_code_id_live_codes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_live_code_joins_org_id_organisations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_code_joins")),
        sa.UniqueConstraint("org_id", "event_id", name=op.f("uq_live_code_joins_org_id_event_id")),
    )
    op.create_index("ix_live_code_joins_code_group", "live_code_joins", ["live_code_id", "group_id"], unique=False)
    op.create_index("ix_live_code_joins_member", "live_code_joins", ["member_id"], unique=False)
    op.create_table(
        "live_code_scans",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("live_code_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=True),
        sa.Column("visitor", sa.String(length=32), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("first", sa.Boolean(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("invite_link", sa.String(length=500), nullable=True),
        sa.Column("ua_class", sa.String(length=16), nullable=False),
        sa.Column("ip_prefix", sa.String(length=64), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["live_code_id"],
            ["live_codes.id"],
            name=op.f("fk_live_code_scans_live_code_id_live_codes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_live_code_scans_org_id_organisations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_code_scans")),
    )
    op.create_index("ix_live_code_scans_code_at", "live_code_scans", ["live_code_id", "at"], unique=False)
    op.create_index("ix_live_code_scans_group_at", "live_code_scans", ["group_id", "at"], unique=False)
    op.create_index("ix_live_code_scans_org_at", "live_code_scans", ["org_id", "at"], unique=False)
    op.create_table(
        "live_code_visitors",
        sa.Column("id", _BIGINT_ID, nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("live_code_id", sa.Integer(), nullable=False),
        sa.Column("visitor", sa.String(length=32), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("first_at", sa.BigInteger(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["live_code_id"],
            ["live_codes.id"],
            name=op.f("fk_live_code_visitors_live_code_id_live_codes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_live_code_visitors_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_code_visitors")),
        sa.UniqueConstraint("live_code_id", "visitor", name=op.f("uq_live_code_visitors_live_code_id_visitor")),
    )
    op.create_index("ix_live_code_visitors_visitor", "live_code_visitors", ["visitor"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_live_code_visitors_visitor", table_name="live_code_visitors")
    op.drop_table("live_code_visitors")
    op.drop_index("ix_live_code_scans_org_at", table_name="live_code_scans")
    op.drop_index("ix_live_code_scans_group_at", table_name="live_code_scans")
    op.drop_index("ix_live_code_scans_code_at", table_name="live_code_scans")
    op.drop_table("live_code_scans")
    op.drop_index("ix_live_code_joins_member", table_name="live_code_joins")
    op.drop_index("ix_live_code_joins_code_group", table_name="live_code_joins")
    op.drop_table("live_code_joins")
    op.drop_index(op.f("ix_live_code_groups_org_id"), table_name="live_code_groups")
    op.drop_index(op.f("ix_live_code_groups_live_code_id"), table_name="live_code_groups")
    op.drop_index(op.f("ix_live_code_groups_group_id"), table_name="live_code_groups")
    op.drop_table("live_code_groups")
    op.drop_index(op.f("ix_group_qr_images_org_id"), table_name="group_qr_images")
    op.drop_index("ix_group_qr_images_group_expiry", table_name="group_qr_images")
    op.drop_table("group_qr_images")
    op.drop_index(op.f("ix_live_codes_org_id"), table_name="live_codes")
    op.drop_table("live_codes")

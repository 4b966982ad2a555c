"""onboarding: welcome batching, name-card reminders, coupon pools

The playbook gains what onboarding reads (the welcome interval of the raid protection, the rules
link, the name-card format with its delay and text, the benefit's text). Joins waiting for their
group's next greeting are ``onboarding_notices``; ``onboarding_throttles`` spaces the greetings
of a group; a playbook's coupon codes are ``coupon_pools`` / ``coupon_codes``, and each member's
benefit is a ``benefit_grants`` row (docs/onboarding.md).

Revision ID: 0011_onboarding
Revises: 0010_live_codes
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_onboarding"
down_revision: str | None = "0010_live_codes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("playbooks") as batch:
        batch.add_column(sa.Column("welcome_interval_seconds", sa.Integer(), nullable=False, server_default="60"))
        batch.add_column(sa.Column("rules_url", sa.String(500), nullable=False, server_default=""))
        batch.add_column(sa.Column("name_card_format", sa.String(200), nullable=False, server_default=""))
        batch.add_column(sa.Column("name_card_delay_minutes", sa.Integer(), nullable=False, server_default="10"))
        batch.add_column(sa.Column("name_card_text", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("benefit_text", sa.Text(), nullable=False, server_default=""))

    op.create_table(
        "onboarding_notices",
        sa.Column("id", BIGINT, primary_key=True),
        sa.Column(
            "org_id",
            sa.Integer(),
            sa.ForeignKey("organisations.id", ondelete="CASCADE", name="fk_onboarding_notices_org_id_organisations"),
            nullable=False,
        ),
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey("groups.id", ondelete="CASCADE", name="fk_onboarding_notices_group_id_groups"),
            nullable=False,
        ),
        sa.Column(
            "member_id",
            sa.Integer(),
            sa.ForeignKey("members.id", ondelete="CASCADE", name="fk_onboarding_notices_member_id_members"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("joined_at", sa.BigInteger(), nullable=False),
        sa.Column("due_at", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column(
            "action_id",
            BIGINT,
            sa.ForeignKey(
                "outbound_actions.id", ondelete="SET NULL", name="fk_onboarding_notices_action_id_outbound_actions"
            ),
            nullable=True,
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("done_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_onboarding_notices"),
        sa.UniqueConstraint("event_id", "kind", name="uq_onboarding_notices_event_id_kind"),
    )
    op.create_index("ix_onboarding_notices_org_id", "onboarding_notices", ["org_id"])
    op.create_index("ix_onboarding_notices_member_id", "onboarding_notices", ["member_id"])
    op.create_index("ix_onboarding_notices_action_id", "onboarding_notices", ["action_id"])
    op.create_index("ix_onboarding_notices_pending", "onboarding_notices", ["group_id", "kind", "status", "due_at"])

    op.create_table(
        "onboarding_throttles",
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey("groups.id", ondelete="CASCADE", name="fk_onboarding_throttles_group_id_groups"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "org_id",
            sa.Integer(),
            sa.ForeignKey("organisations.id", ondelete="CASCADE", name="fk_onboarding_throttles_org_id_organisations"),
            nullable=False,
        ),
        sa.Column("last_sent_at", sa.BigInteger(), nullable=True),
        sa.Column("next_at", sa.BigInteger(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "kind", name="pk_onboarding_throttles"),
    )
    op.create_index("ix_onboarding_throttles_org_id", "onboarding_throttles", ["org_id"])

    op.create_table(
        "coupon_pools",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "org_id",
            sa.Integer(),
            sa.ForeignKey("organisations.id", ondelete="CASCADE", name="fk_coupon_pools_org_id_organisations"),
            nullable=False,
        ),
        sa.Column(
            "playbook_id",
            sa.Integer(),
            sa.ForeignKey("playbooks.id", ondelete="CASCADE", name="fk_coupon_pools_playbook_id_playbooks"),
            nullable=False,
        ),
        sa.Column(
            "empty_task_id",
            BIGINT,
            sa.ForeignKey("staff_tasks.id", ondelete="SET NULL", name="fk_coupon_pools_empty_task_id_staff_tasks"),
            nullable=True,
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_coupon_pools"),
        sa.UniqueConstraint("playbook_id", name="uq_coupon_pools_playbook_id"),
    )
    op.create_index("ix_coupon_pools_org_id", "coupon_pools", ["org_id"])

    op.create_table(
        "benefit_grants",
        sa.Column("id", BIGINT, primary_key=True),
        sa.Column(
            "org_id",
            sa.Integer(),
            sa.ForeignKey("organisations.id", ondelete="CASCADE", name="fk_benefit_grants_org_id_organisations"),
            nullable=False,
        ),
        sa.Column(
            "pool_id",
            sa.Integer(),
            sa.ForeignKey("coupon_pools.id", ondelete="CASCADE", name="fk_benefit_grants_pool_id_coupon_pools"),
            nullable=False,
        ),
        sa.Column(
            "member_id",
            sa.Integer(),
            sa.ForeignKey("members.id", ondelete="CASCADE", name="fk_benefit_grants_member_id_members"),
            nullable=False,
        ),
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey("groups.id", ondelete="SET NULL", name="fk_benefit_grants_group_id_groups"),
            nullable=True,
        ),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("code", sa.String(100), nullable=True),
        sa.Column(
            "action_id",
            BIGINT,
            sa.ForeignKey(
                "outbound_actions.id", ondelete="SET NULL", name="fk_benefit_grants_action_id_outbound_actions"
            ),
            nullable=True,
        ),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_benefit_grants"),
        sa.UniqueConstraint("pool_id", "member_id", name="uq_benefit_grants_pool_id_member_id"),
    )
    op.create_index("ix_benefit_grants_org_id", "benefit_grants", ["org_id"])
    op.create_index("ix_benefit_grants_member_id", "benefit_grants", ["member_id"])

    op.create_table(
        "coupon_codes",
        sa.Column("id", BIGINT, primary_key=True),
        sa.Column(
            "org_id",
            sa.Integer(),
            sa.ForeignKey("organisations.id", ondelete="CASCADE", name="fk_coupon_codes_org_id_organisations"),
            nullable=False,
        ),
        sa.Column(
            "pool_id",
            sa.Integer(),
            sa.ForeignKey("coupon_pools.id", ondelete="CASCADE", name="fk_coupon_codes_pool_id_coupon_pools"),
            nullable=False,
        ),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("imported_at", sa.BigInteger(), nullable=False),
        sa.Column(
            "grant_id",
            BIGINT,
            sa.ForeignKey("benefit_grants.id", ondelete="SET NULL", name="fk_coupon_codes_grant_id_benefit_grants"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_coupon_codes"),
        sa.UniqueConstraint("pool_id", "code", name="uq_coupon_codes_pool_id_code"),
        sa.UniqueConstraint("grant_id", name="uq_coupon_codes_grant_id"),
    )
    op.create_index("ix_coupon_codes_org_id", "coupon_codes", ["org_id"])
    op.create_index(
        "ix_coupon_codes_free",
        "coupon_codes",
        ["pool_id", "id"],
        postgresql_where=sa.text("grant_id IS NULL"),
        sqlite_where=sa.text("grant_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("coupon_codes")
    op.drop_table("benefit_grants")
    op.drop_table("coupon_pools")
    op.drop_table("onboarding_throttles")
    op.drop_table("onboarding_notices")
    with op.batch_alter_table("playbooks") as batch:
        for column in (
            "benefit_text",
            "name_card_text",
            "name_card_delay_minutes",
            "name_card_format",
            "rules_url",
            "welcome_interval_seconds",
        ):
            batch.drop_column(column)

"""moderation: policies, decisions, reversals, members' roles in groups, recent messages

Policies attach to the organisation, a community, a playbook or a group (one per target); the
engine's decisions and the reversals of appeals are append-only, and strikes, mutes and
blacklist entries are derived from them. ``member_group_roles`` says who is a group's owner,
admin or KOL (exempt roles); ``moderation_recent_messages`` holds the live messages of moderated
groups within their flood window. Members gain ``corp`` (their WeCom corp, for the
other-company rule). docs/moderation.md.

Revision ID: 0013_moderation
Revises: 0012_channel_spend
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_moderation"
down_revision: str | None = "0012_channel_spend"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKey:
    return sa.ForeignKey(f"{target}.id", ondelete=ondelete, name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("corp", sa.String(64), nullable=False, server_default=""))

    t = "moderation_policies"
    op.create_table(
        t,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("target_type", sa.String(16), nullable=False),
        sa.Column("target_key", sa.String(40), nullable=False),
        sa.Column("community_id", sa.Integer(), _fk(t, "community_id", "communities", "CASCADE"), nullable=True),
        sa.Column("playbook_id", sa.Integer(), _fk(t, "playbook_id", "playbooks", "CASCADE"), nullable=True),
        sa.Column("group_id", sa.Integer(), _fk(t, "group_id", "groups", "CASCADE"), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("allow", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("strike_window_days", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), _fk(t, "created_by_id", "staff", "SET NULL"), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_moderation_policies"),
        sa.UniqueConstraint("org_id", "target_key", name="uq_moderation_policies_org_id_target_key"),
    )
    for column in ("org_id", "community_id", "playbook_id", "group_id"):
        op.create_index(f"ix_{t}_{column}", t, [column])

    t = "moderation_decisions"
    op.create_table(
        t,
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("group_id", sa.Integer(), _fk(t, "group_id", "groups", "SET NULL"), nullable=True),
        sa.Column("member_id", sa.Integer(), _fk(t, "member_id", "members", "CASCADE"), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("event_external_id", sa.String(128), nullable=True),
        sa.Column("message_ref", sa.String(200), nullable=True),
        sa.Column("policy_id", sa.Integer(), _fk(t, "policy_id", "moderation_policies", "SET NULL"), nullable=True),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(100), nullable=True),
        sa.Column("rule_kind", sa.String(32), nullable=True),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("matches", sa.JSON(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), _fk(t, "decided_by_id", "staff", "SET NULL"), nullable=True),
        sa.Column("blacklist_scope", sa.String(16), nullable=True),
        sa.Column("community_id", sa.Integer(), _fk(t, "community_id", "communities", "SET NULL"), nullable=True),
        sa.Column("mute_seconds", sa.Integer(), nullable=True),
        sa.Column("action_ids", sa.JSON(), nullable=False),
        sa.Column("erased_at", sa.BigInteger(), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_moderation_decisions"),
    )
    op.create_index("ix_moderation_decisions_org_at", t, ["org_id", "at"])
    op.create_index("ix_moderation_decisions_member_at", t, ["member_id", "at"])
    op.create_index("ix_moderation_decisions_group_at", t, ["group_id", "at"])
    op.create_index(
        "ix_moderation_decisions_event",
        t,
        ["event_id"],
        unique=True,
        sqlite_where=sa.text("event_id IS NOT NULL"),
        postgresql_where=sa.text("event_id IS NOT NULL"),
    )
    op.create_index(
        "ix_moderation_decisions_blacklist",
        t,
        ["member_id"],
        sqlite_where=sa.text("action = 'blacklist'"),
        postgresql_where=sa.text("action = 'blacklist'"),
    )

    t = "moderation_reversals"
    op.create_table(
        t,
        sa.Column("id", BIGINT, nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("decision_id", BIGINT, _fk(t, "decision_id", "moderation_decisions", "CASCADE"), nullable=False),
        sa.Column("staff_id", sa.Integer(), _fk(t, "staff_id", "staff", "SET NULL"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_moderation_reversals"),
        sa.UniqueConstraint("decision_id", name="uq_moderation_reversals_decision_id"),
    )
    op.create_index("ix_moderation_reversals_org_id", t, ["org_id"])

    t = "member_group_roles"
    op.create_table(
        t,
        sa.Column("group_id", sa.Integer(), _fk(t, "group_id", "groups", "CASCADE"), nullable=False),
        sa.Column("member_id", sa.Integer(), _fk(t, "member_id", "members", "CASCADE"), nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("set_by_id", sa.Integer(), _fk(t, "set_by_id", "staff", "SET NULL"), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "member_id", name="pk_member_group_roles"),
    )
    op.create_index("ix_member_group_roles_member_id", t, ["member_id"])
    op.create_index("ix_member_group_roles_org_id", t, ["org_id"])

    t = "moderation_recent_messages"
    op.create_table(
        t,
        sa.Column("event_id", BIGINT, nullable=False),
        sa.Column("org_id", sa.Integer(), _fk(t, "org_id", "organisations", "CASCADE"), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), _fk(t, "member_id", "members", "CASCADE"), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_moderation_recent_messages"),
    )
    op.create_index("ix_moderation_recent_messages_org_id", t, ["org_id"])
    op.create_index("ix_moderation_recent_messages_member", t, ["group_id", "member_id", "ts"])


def downgrade() -> None:
    op.drop_table("moderation_recent_messages")
    op.drop_table("member_group_roles")
    op.drop_table("moderation_reversals")
    op.drop_table("moderation_decisions")
    op.drop_table("moderation_policies")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("corp")

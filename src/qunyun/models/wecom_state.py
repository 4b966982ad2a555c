"""WeCom connector state (tables owned by qunyun.connectors.wecom).

- ``wecom_tokens``: the access_token of each connection, encrypted, shared by every process
  (one row per connection; a refresh locks it so that only one process asks WeCom), and how far
  the callback sync job has read the connection's webhook deliveries.
- ``wecom_groups``: what the last sync or callback told of each customer group (its
  member_version, name, owner, notice): a callback whose LastMemVer differs means we missed a
  change, and the group is synced again in full.
- ``wecom_join_ways``: the 「加入群聊」 join ways created for live codes (config id, the state
  that ties a join to it, its QR code URL, its ≤5 chat ids).
- ``wecom_sync_reports``: one row per full sync: what differed and what was corrected.
- ``wecom_contacts``: customer contacts (客户联系): which staff member (the follow user) has which
  external contact, since when and until when, the ``State`` they came through (→ live code or
  channel), their name, and what became of their welcome (``send_welcome_msg``). Personal data:
  covered by member export and erasure (``qunyun.privacy.service``).
- ``wecom_corp_tags``: the corp tag library (企业客户标签) as get_corp_tag_list last gave it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class WeComToken(Base):
    __tablename__ = "wecom_tokens"

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted like connection secrets
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    refreshed: Mapped[int] = mapped_column(Integer, default=0)  # how many times gettoken was called
    # The callback sync job has applied the connection's webhook deliveries up to this id.
    callbacks_after: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class WeComGroup(Base):
    __tablename__ = "wecom_groups"
    __table_args__ = (UniqueConstraint("connection_id", "chat_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    owner: Mapped[str] = mapped_column(String(128), default="")
    notice: Mapped[str] = mapped_column(Text, default="")
    member_version: Mapped[str] = mapped_column(String(64), default="")
    dismissed: Mapped[bool] = mapped_column(default=False)
    synced_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class WeComJoinWay(Base):
    __tablename__ = "wecom_join_ways"
    __table_args__ = (UniqueConstraint("connection_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    config_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(30))
    qr_code: Mapped[str] = mapped_column(String(500), default="")
    chat_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class WeComSyncReport(Base):
    __tablename__ = "wecom_sync_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # added | nightly | version_gap | manual
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    groups: Mapped[int] = mapped_column(Integer, default=0)
    members: Mapped[int] = mapped_column(Integer, default=0)
    corrected: Mapped[int] = mapped_column(Integer, default=0)
    # What differed: [{"group", "what": joined|left|renamed|new_group|dismissed, "member"?, "detail"?}]
    differences: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ContactStatus:
    """What a customer contact is now (``wecom_contacts.status``)."""

    ADDED = "added"  # add_external_contact (or edit_external_contact of one we did not know)
    HALF = "half"  # add_half_external_contact: the customer added the staff member, not yet confirmed
    DELETED = "deleted"  # del_external_contact: the staff member deleted the customer
    LOST = "lost"  # del_follow_user: the customer deleted the staff member (流失)


class WelcomeStatus:
    """What became of a new contact's welcome (``wecom_contacts.welcome_status``). The code is
    single-use and good for 20 s: nothing is ever retried blindly."""

    NONE = "none"  # no WelcomeCode came (WeCom sends its own configured welcome, or none)
    PENDING = "pending"  # a code came; the welcome job is due
    SENDING = "sending"  # send_welcome_msg is being called
    SENT = "sent"
    FAILED = "failed"  # WeCom refused (41051 already sent or chatting, 41096 another app…)
    EXPIRED = "expired"  # the code was older than 20 s when its turn came: not called
    UNKNOWN = "unknown"  # the worker died during the call: it may have gone out
    SKIPPED = "skipped"  # no text to send (no live code, playbook or connection welcome)


class WeComContact(Base):
    __tablename__ = "wecom_contacts"
    __table_args__ = (
        UniqueConstraint("connection_id", "userid", "external_userid"),
        Index("ix_wecom_contacts_external", "connection_id", "external_userid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    userid: Mapped[str] = mapped_column(String(128))  # the staff member (follow user)
    external_userid: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")  # externalcontact/get, when it answers
    status: Mapped[str] = mapped_column(String(16), default=ContactStatus.ADDED)
    state: Mapped[str] = mapped_column(String(64), default="")  # the contact way's State as called back
    live_code_id: Mapped[int | None] = mapped_column(
        ForeignKey("live_codes.id", ondelete="SET NULL"), nullable=True, index=True
    )
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"), nullable=True)
    added_at: Mapped[datetime] = mapped_column(Timestamp)
    removed_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    removed_source: Mapped[str] = mapped_column(String(32), default="")  # del_external_contact's Source
    transfer_failure: Mapped[str] = mapped_column(String(32), default="")  # transfer_fail's FailReason
    welcome_status: Mapped[str] = mapped_column(String(16), default=WelcomeStatus.NONE)
    welcome_code: Mapped[str | None] = mapped_column(String(200), nullable=True)  # cleared once used
    welcome_due: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)  # the callback + 20 s
    welcome_text: Mapped[str] = mapped_column(Text, default="")
    welcome_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    welcome_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    profile_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)  # name read at
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class WeComCorpTag(Base):
    __tablename__ = "wecom_corp_tags"
    __table_args__ = (UniqueConstraint("connection_id", "tag_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    tag_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(100))
    group_id: Mapped[str] = mapped_column(String(128))
    group_name: Mapped[str] = mapped_column(String(100))
    tag_order: Mapped[int] = mapped_column(Integer, default=0)  # WeCom's order: larger first
    group_order: Mapped[int] = mapped_column(Integer, default=0)
    synced_at: Mapped[datetime] = mapped_column(Timestamp)

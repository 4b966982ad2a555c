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
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
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

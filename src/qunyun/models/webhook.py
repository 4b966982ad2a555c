from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class DeliveryStatus(enum.StrEnum):
    """received: stored and waiting for its job; processed: normalized and ingested;
    failed: it could not be normalized or ingested (``error`` says why), kept for replay."""

    RECEIVED = "received"
    PROCESSED = "processed"
    FAILED = "failed"


class WebhookDelivery(Base):
    """One verified webhook request, stored as it came (the inbox), before anything is made of it.

    ``dedupe_key`` is the platform's delivery id (``id:…``) or the SHA-256 of the body
    (``sha256:…``): a redelivery of the same key changes nothing. ``payload`` is personal data
    (message text): it is set to NULL once a processed delivery is older than the retention
    (``purged_at``), while the row and its key stay so that a late redelivery is still known.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("connection_id", "dedupe_key"),
        Index("ix_webhook_deliveries_org_received", "org_id", "received_at"),
        Index("ix_webhook_deliveries_status_processed", "status", "processed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    delivery_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.RECEIVED)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    processed_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    events: Mapped[int | None] = mapped_column(Integer, nullable=True)
    events_stored: Mapped[int | None] = mapped_column(Integer, nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class WebhookRejection(Base):
    """How many webhook requests were refused, per connection, reason and UTC day (a counter).

    ``connection_id`` (and ``org_id``) are NULL for requests naming no connection of the platform
    in their path: they belong to nobody, and one row per reason and day counts them all.
    """

    __tablename__ = "webhook_rejections"
    __table_args__ = (
        Index(
            "uq_webhook_rejections_bucket",
            text("coalesce(connection_id, 0)"),
            "reason",
            "day",
            unique=True,
        ),
        Index("ix_webhook_rejections_org_day", "org_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), nullable=True)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"), nullable=True)
    reason: Mapped[str] = mapped_column(String(32))
    day: Mapped[int] = mapped_column(Integer)  # YYYYMMDD, UTC
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime] = mapped_column(Timestamp)

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from qunyun.db.base import Base, Timestamp


class Order(Base):
    """A paid order. Amounts are integer fen (0.01 元) so sums are exact."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("org_id", "external_id"),
        Index("ix_orders_org_paid", "org_id", "paid_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    member_id: Mapped[int] = mapped_column(Integer, index=True)
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    product: Mapped[str] = mapped_column(String(200), default="")
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(Timestamp)
    event_id: Mapped[int] = mapped_column(BigInteger)


class Refund(Base):
    """A refund of (part of) an order. Refers to the order by its external id because a refund
    may arrive before the payment it refunds."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_order", "org_id", "order_ref"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    order_ref: Mapped[str] = mapped_column(String(128))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    refunded_at: Mapped[datetime] = mapped_column(Timestamp)
    event_id: Mapped[int] = mapped_column(BigInteger)

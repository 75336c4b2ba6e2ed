"""Tables of the catalog: tracked products and competitor links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from asinwatch.kit.db import Base, TimestampMixin

TRACKING_STATES = ("active", "paused", "untracked")


class Product(TimestampMixin, Base):
    """A product on one marketplace, our own or a competitor's."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("marketplace", "asin"),
        CheckConstraint(
            "tracking_state IN ('active', 'paused', 'untracked')", name="tracking_state"
        ),
        CheckConstraint("asin ~ '^[0-9A-Z]{10}$'", name="asin_format"),
        {"schema": "core"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    title: Mapped[str | None] = mapped_column(Text)
    brand: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    is_own: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    tracking_state: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    # Sellers authorised on this listing; any other buy-box seller is a hijacker.
    seller_allowlist: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, default=list, server_default="{}"
    )
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, default=list, server_default="{}"
    )
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_valid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Consecutive runs without a valid observation (drives the "tracking stale" alert).
    invalid_runs: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    extra: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default="{}"
    )


class CompetitorLink(TimestampMixin, Base):
    """Our product `asin` is compared against `competitor_asin` on the same marketplace."""

    __tablename__ = "competitor_links"
    __table_args__ = (
        UniqueConstraint("marketplace", "asin", "competitor_asin"),
        CheckConstraint("asin <> competitor_asin", name="not_self"),
        ForeignKeyConstraint(
            ["marketplace", "asin"],
            ["core.products.marketplace", "core.products.asin"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["marketplace", "competitor_asin"],
            ["core.products.marketplace", "core.products.asin"],
            ondelete="CASCADE",
        ),
        {"schema": "core"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    competitor_asin: Mapped[str] = mapped_column(String(10), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)

"""Tables of the metric series.

`core.product_metrics_daily` is partitioned by month on `date` (see the migration): one row per
product and day, the latest validated observation of that day. Each series is its own column,
never mixed (buy-box price is not list price).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    inspect,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from asinwatch.kit.db import Base

# What the covering index of the daily table INCLUDEs: the range read (metrics.queries)
# selects exactly these, so it stays index-only.
RANGE_COLUMNS = ("buybox_price", "in_stock", "bsr", "rating", "review_count")


class _MetricColumns:
    buybox_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    list_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    shipping_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    lowest_offer_price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    in_stock: Mapped[bool | None] = mapped_column(Boolean)
    availability_text: Mapped[str | None] = mapped_column(Text)
    buybox_seller_id: Mapped[str | None] = mapped_column(Text)
    buybox_seller_name: Mapped[str | None] = mapped_column(Text)
    offer_count: Mapped[int | None] = mapped_column(Integer)
    bsr: Mapped[int | None] = mapped_column(Integer)
    bsr_category: Mapped[str | None] = mapped_column(Text)
    # Every category rank seen: [{"category": ..., "rank": ...}]
    bsr_ranks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    review_count: Mapped[int | None] = mapped_column(Integer)
    stars_breakdown: Mapped[dict[str, float] | None] = mapped_column(JSONB)
    monthly_purchase_volume: Mapped[int | None] = mapped_column(Integer)
    title_fp: Mapped[str | None] = mapped_column(String(16))
    bullets_fp: Mapped[str | None] = mapped_column(String(16))
    description_fp: Mapped[str | None] = mapped_column(String(16))
    images_fp: Mapped[str | None] = mapped_column(String(16))
    aplus_fp: Mapped[str | None] = mapped_column(String(16))
    variants_fp: Mapped[str | None] = mapped_column(String(16))
    image_count: Mapped[int | None] = mapped_column(SmallInteger)
    bullet_count: Mapped[int | None] = mapped_column(SmallInteger)
    has_aplus: Mapped[bool | None] = mapped_column(Boolean)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    run_id: Mapped[Any | None] = mapped_column(Uuid)


class ProductMetricDaily(_MetricColumns, Base):
    __tablename__ = "product_metrics_daily"
    __table_args__ = (
        PrimaryKeyConstraint("marketplace", "asin", "date"),
        # Covering index: the latest-summary and range reads are index-only.
        Index(
            "ix_product_metrics_daily_latest",
            "marketplace",
            "asin",
            "date",
            postgresql_include=list(RANGE_COLUMNS),
        ),
        {"schema": "core", "postgresql_partition_by": "RANGE (date)"},
    )

    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    date: Mapped[date] = mapped_column(Date, nullable=False)


# Derived from the table, never restated: every column of a daily row, and those besides its
# key (`_MetricColumns`, shared by the mart read model).
_DAILY = inspect(ProductMetricDaily)
METRIC_ROW_COLUMNS: tuple[str, ...] = tuple(c.name for c in _DAILY.columns)
METRIC_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in _DAILY.columns if c.name not in {k.name for k in _DAILY.primary_key}
)


class ProductLatest(_MetricColumns, Base):
    """mart read model: the latest validated observation per product (one row each)."""

    __tablename__ = "product_latest"
    __table_args__ = (PrimaryKeyConstraint("marketplace", "asin"), {"schema": "mart"})

    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    date: Mapped[date] = mapped_column(Date, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class ProductKpiDaily(Base):
    """mart read model: the KPIs computed for a product on a day (JSON, parts visible)."""

    __tablename__ = "product_kpis_daily"
    __table_args__ = (PrimaryKeyConstraint("marketplace", "asin", "date"), {"schema": "mart"})

    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    date: Mapped[date] = mapped_column(Date, nullable=False)
    kpis: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class ListingSnapshot(Base):
    """Listing content, stored only when a fingerprint changes, so changes can be diffed."""

    __tablename__ = "listing_snapshots"
    __table_args__ = (
        Index("ix_listing_snapshots_product_seen", "marketplace", "asin", "observed_at"),
        {"schema": "core"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    content_fp: Mapped[str] = mapped_column(String(64), nullable=False)
    # {"title": ..., "bullets": [...], "description": ..., "images": [...], "aplus": ...}
    content: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    run_id: Mapped[Any | None] = mapped_column(Uuid)


class Review(Base):
    """A customer review seen by the reviews actor (one row per review id)."""

    __tablename__ = "reviews"
    __table_args__ = (
        PrimaryKeyConstraint("marketplace", "review_id"),
        Index("ix_reviews_product_date", "marketplace", "asin", "review_date"),
        {"schema": "core"},
    )

    marketplace: Mapped[str] = mapped_column(String(32), nullable=False)
    review_id: Mapped[str] = mapped_column(Text, nullable=False)
    asin: Mapped[str] = mapped_column(String(10), nullable=False)
    rating: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    review_date: Mapped[date | None] = mapped_column(Date)
    is_verified: Mapped[bool | None] = mapped_column(Boolean)
    is_vine: Mapped[bool | None] = mapped_column(Boolean)
    variant: Mapped[str | None] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    run_id: Mapped[Any | None] = mapped_column(Uuid)

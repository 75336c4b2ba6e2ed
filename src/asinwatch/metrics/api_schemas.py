"""Response shapes of the product reads of the API: summary, metric range, competition.

Every cache-first read carries ``stale_at``: null when fresh, else when the value went stale
(it is being refreshed in the background).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RangeName = Literal["7d", "30d", "90d"]
RANGE_DAYS: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90}

_STALE_AT = Field(
    None, description="null when fresh; else when this value went stale (refreshing now)"
)


class ProductInfo(BaseModel):
    marketplace: str
    asin: str
    title: str | None
    brand: str | None
    category: str | None
    is_own: bool
    tracking_state: Literal["active", "paused", "untracked"]
    tags: list[str]
    last_seen_at: datetime | None
    last_valid_at: datetime | None


class LatestMetrics(BaseModel):
    """The latest validated observation of a product (mart.product_latest)."""

    date: date
    observed_at: datetime
    buybox_price: float | None
    list_price: float | None
    shipping_price: float | None
    lowest_offer_price: float | None
    currency: str | None
    in_stock: bool | None
    availability_text: str | None
    buybox_seller_id: str | None
    buybox_seller_name: str | None
    offer_count: int | None
    bsr: int | None
    bsr_category: str | None
    rating: float | None
    review_count: int | None
    monthly_purchase_volume: int | None
    image_count: int | None
    bullet_count: int | None
    has_aplus: bool | None


class KpiSnapshot(BaseModel):
    date: date
    computed_at: datetime
    kpis: dict[str, Any] = Field(description="the KPI document of that day (mart.product_kpis)")


class OpenAlert(BaseModel):
    id: int
    alert_type: str
    severity: Literal["info", "warning", "critical"]
    status: Literal["open", "acknowledged", "resolved"]
    title: str
    occurrences: int
    opened_at: datetime
    last_seen_at: datetime


class ProductSummaryOut(BaseModel):
    product: ProductInfo
    latest: LatestMetrics | None
    kpis: KpiSnapshot | None
    open_alerts: list[OpenAlert] = Field(description="unresolved alerts, newest first (max 50)")
    stale_at: datetime | None = _STALE_AT


class MetricPointOut(BaseModel):
    date: date
    buybox_price: float | None
    in_stock: bool | None
    bsr: int | None
    rating: float | None
    review_count: int | None


class MetricsRangeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    marketplace: str
    asin: str
    range: RangeName | None = Field(
        description="the named range ending today, or null for any other window"
    )
    from_: date = Field(alias="from")
    to: date
    points: list[MetricPointOut] = Field(description="one point per day with data, oldest first")
    stale_at: datetime | None = _STALE_AT


class CompetitorOut(BaseModel):
    asin: str
    title: str | None
    brand: str | None
    note: str | None
    linked_at: datetime
    latest: LatestMetrics | None
    comparison: dict[str, Any] = Field(
        description="ours minus theirs: price/rating/review gaps, BSR ratio, standings, notes"
    )


class CompetitionOut(BaseModel):
    product: ProductInfo
    latest: LatestMetrics | None
    competitors: list[CompetitorOut]
    stale_at: datetime | None = _STALE_AT

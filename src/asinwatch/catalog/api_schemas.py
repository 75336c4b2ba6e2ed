"""Request/response shapes of the catalog endpoints (tracking, competitor links, and the
product summary with the latest-metrics shape the competition view reuses)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from asinwatch.catalog.marketplaces import ASIN_PATTERN, normalise_asin
from asinwatch.catalog.schemas import ProductIn

MAX_BULK = 1000
# PostgreSQL text cannot hold NUL: refused by the schema, not by the database.
NO_NUL = r"^[^\x00]*$"
AsinStr = Annotated[str, StringConstraints(pattern=ASIN_PATTERN)]
Title = Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)]
Brand = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]
Category = Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)]
Label = Annotated[str, StringConstraints(max_length=200, pattern=NO_NUL)]


class TrackIn(BaseModel):
    """Track one product (PUT /v1/products/{asin}); the ASIN and marketplace are in the URL."""

    model_config = ConfigDict(extra="forbid", strict=True)

    is_own: bool = True
    title: Title | None = None
    brand: Brand | None = None
    category: Category | None = None
    seller_allowlist: list[Label] = Field(default_factory=list, max_length=100)
    tags: list[Label] = Field(default_factory=list, max_length=50)

    def product(self, marketplace: str, asin: str) -> ProductIn:
        return ProductIn(asin=asin, marketplace=marketplace, **self.model_dump(exclude={"asin"}))


class BulkProductIn(TrackIn):
    """One product of a bulk track: its ASIN, and the marketplace if not the query's."""

    asin: AsinStr = Field(examples=["B0C1234567"])


class BulkTrackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    products: list[BulkProductIn] = Field(min_length=1, max_length=MAX_BULK)

    def to_products(self, marketplace: str) -> list[ProductIn]:
        """One per ASIN (the last one given wins): a bulk upsert may touch a row only once."""
        by_asin = {normalise_asin(p.asin): p for p in self.products}
        return [p.product(marketplace, asin) for asin, p in by_asin.items()]


class BulkTrackOut(BaseModel):
    tracked: int = Field(description="products created or re-activated")
    asins: list[str]


class BulkUntrackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    asins: list[AsinStr] = Field(min_length=1, max_length=MAX_BULK, examples=[["B0C1234567"]])

    @field_validator("asins")
    @classmethod
    def _asins(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(normalise_asin(a) for a in v))


class BulkUntrackOut(BaseModel):
    untracked: int = Field(description="products that were tracked and now are not")


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    note: Title | None = None


class CompetitorLinkOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    marketplace: str
    asin: str
    competitor_asin: str
    note: str | None
    created_at: datetime
    updated_at: datetime


# --- the product summary (GET /v1/products/{asin}) ----------------------------------------


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
    stale_at: datetime | None = Field(
        None, description="null when fresh; else when this value went stale (refreshing now)"
    )

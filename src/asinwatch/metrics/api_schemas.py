"""Response shapes of the metric reads of the API: metric range, competition (the product
summary and the shapes it shares with the competition are catalog's: catalog.api_schemas).

Every cache-first read carries ``stale_at``: null when fresh, else when the value went stale
(it is being refreshed in the background).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from asinwatch.catalog.api_schemas import LatestMetrics, ProductInfo

RangeName = Literal["7d", "30d", "90d"]
RANGE_DAYS: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90}

_STALE_AT = Field(
    None, description="null when fresh; else when this value went stale (refreshing now)"
)


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

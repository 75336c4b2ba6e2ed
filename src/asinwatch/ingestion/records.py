"""Standard records every source produces, whatever its upstream format (pure data).

Separate series stay separate: the buy-box price is not the list price, a missing value is
None (never 0), and the time of an observation is the upstream run's, not the promotion's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class CategoryRank:
    category: str
    rank: int


@dataclass(frozen=True, slots=True)
class ListingContent:
    """The listing text and media, kept so a change can be shown as a diff."""

    title: str | None
    bullets: tuple[str, ...]
    description: str | None
    images: tuple[str, ...]
    aplus: str | None
    variants: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """One validated observation of a product listing."""

    marketplace: str
    asin: str  # the ASIN we asked for (observations belong to the tracked ASIN)
    observed_at: datetime
    returned_asin: str | None  # what upstream answered with (a variant or merged listing)
    title: str | None
    brand: str | None
    category: str | None
    buybox_price: Decimal | None
    list_price: Decimal | None
    shipping_price: Decimal | None
    lowest_offer_price: Decimal | None
    currency: str | None
    in_stock: bool | None
    availability_text: str | None
    buybox_seller_id: str | None
    buybox_seller_name: str | None
    offer_count: int | None
    bsr: int | None
    bsr_category: str | None
    bsr_ranks: tuple[CategoryRank, ...]
    rating: Decimal | None
    review_count: int | None
    stars_breakdown: dict[str, float] | None
    monthly_purchase_volume: int | None
    content: ListingContent
    # Short content fingerprints: title, bullets, description, images, aplus, variants.
    fingerprints: dict[str, str] = field(default_factory=dict)
    image_count: int | None = None
    bullet_count: int | None = None
    has_aplus: bool | None = None


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    marketplace: str
    asin: str
    review_id: str
    rating: int
    title: str | None
    body: str | None
    review_date: date | None
    is_verified: bool | None
    is_vine: bool | None
    variant: str | None
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An upstream item that failed validation, with the reason; it never becomes a metric."""

    marketplace: str
    asin: str | None
    reason: str  # "<code>: <readable text>"
    raw: dict[str, Any]
    code: str = "invalid"  # short machine code (block_page, wrong_asin, ...) for counting


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a source returns for one batch: raw items, normalised records and the cost."""

    raw_items: list[dict[str, Any]]
    records: list[ProductRecord]
    reviews: list[ReviewRecord]
    quarantined: list[Quarantined]
    missing_asins: list[str]  # asked for but no item came back
    cost_usd: Decimal
    upstream_run_ids: list[str]
    observed_at: datetime
    # What the spend guards did (dataset truncated, cost unknown, run reused): JSON-able dicts.
    upstream_notes: tuple[dict[str, Any], ...] = ()

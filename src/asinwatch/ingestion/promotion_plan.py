"""What promoting a batch writes, computed from its staged items (pure: no I/O, no clock).

Staged payloads are normalised again here, so a promotion, a late promotion and a replay all
produce the same rows from the same staged items. Rules:
- the daily metric's date is the observation's date in the marketplace's time zone;
- an observation belongs to the tracked ASIN we asked for (normalise decides);
- a second valid item for the same ASIN in a batch is quarantined as a duplicate;
- quarantined items never become metrics; every staged item ends promoted or quarantined;
- times are bounded by when the item was received (`StagedItem.received_at`, else `now`), so a
  replay judges an item exactly as its first promotion did; a product's "last seen" only moves
  to a time inside that window (a year-9999 item must not freeze it).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from asinwatch.catalog.marketplaces import get_marketplace
from asinwatch.ingestion.normalise import (
    DUPLICATE,
    canonical_json,
    is_sane_time,
    normalise_product,
    normalise_review,
)
from asinwatch.ingestion.records import ProductRecord, Quarantined, ReviewRecord
from asinwatch.metrics.models import METRIC_ROW_COLUMNS

SNAPSHOT_COLUMNS = ("marketplace", "asin", "content_fp", "content", "observed_at", "run_id")
REVIEW_COLUMNS = (
    "marketplace",
    "review_id",
    "asin",
    "rating",
    "title",
    "body",
    "review_date",
    "is_verified",
    "is_vine",
    "variant",
    "first_seen_at",
    "run_id",
)
PRODUCT_UPDATE_COLUMNS = ("asin", "observed_at", "title", "brand", "category", "valid", "seen")
EVENT_COLUMNS = ("id", "status", "reason")
FP_FIELDS = ("title", "bullets", "description", "images", "aplus", "variants")


@dataclass(frozen=True, slots=True)
class StagedItem:
    id: int
    kind: str  # "product" | "review"
    payload: Any
    observed_at: datetime
    received_at: datetime | None = None  # when staging stored it: the bound on "future"


@dataclass(frozen=True, slots=True)
class Outcome:
    """Per-ASIN result of a batch: every requested ASIN is in exactly one of the three."""

    succeeded: int
    quarantined: int
    failed: int


@dataclass(slots=True)
class PromotionPlan:
    metrics: list[tuple[Any, ...]] = field(default_factory=list)
    snapshots: list[tuple[Any, ...]] = field(default_factory=list)
    reviews: list[tuple[Any, ...]] = field(default_factory=list)
    products: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[int, str, str | None]] = field(default_factory=list)
    quarantine_codes: dict[str, int] = field(default_factory=dict)
    outcome: Outcome = Outcome(0, 0, 0)


@lru_cache(maxsize=64)
def _zone(marketplace: str) -> ZoneInfo:
    return ZoneInfo(get_marketplace(marketplace).timezone)


def metric_date(marketplace: str, observed_at: datetime) -> date:
    """The day an observation counts for: its date in the marketplace's time zone."""
    return observed_at.astimezone(_zone(marketplace)).date()


def content_of(record: ProductRecord) -> dict[str, Any]:
    c = record.content
    return {
        "title": c.title,
        "bullets": list(c.bullets),
        "description": c.description,
        "images": list(c.images),
        "aplus": c.aplus,
        "variants": list(c.variants),
    }


def content_fingerprint(record: ProductRecord) -> str:
    parts = {k: record.fingerprints.get(k, "") for k in FP_FIELDS}
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


def _sane(item: StagedItem, now: datetime | None) -> bool:
    """The item's observation time is one a product's "last seen" may move to."""
    return is_sane_time(item.observed_at, item.received_at or now)


def metric_row(record: ProductRecord, run_id: uuid.UUID) -> tuple[Any, ...]:
    fps = record.fingerprints
    values: dict[str, Any] = {
        "marketplace": record.marketplace,
        "asin": record.asin,
        "date": metric_date(record.marketplace, record.observed_at),
        "buybox_price": record.buybox_price,
        "list_price": record.list_price,
        "shipping_price": record.shipping_price,
        "lowest_offer_price": record.lowest_offer_price,
        "currency": record.currency,
        "in_stock": record.in_stock,
        "availability_text": record.availability_text,
        "buybox_seller_id": record.buybox_seller_id,
        "buybox_seller_name": record.buybox_seller_name,
        "offer_count": record.offer_count,
        "bsr": record.bsr,
        "bsr_category": record.bsr_category,
        "bsr_ranks": [{"category": r.category, "rank": r.rank} for r in record.bsr_ranks],
        "rating": record.rating,
        "review_count": record.review_count,
        "stars_breakdown": record.stars_breakdown,
        "monthly_purchase_volume": record.monthly_purchase_volume,
        "image_count": record.image_count,
        "bullet_count": record.bullet_count,
        "has_aplus": record.has_aplus,
        "observed_at": record.observed_at,
        "run_id": run_id,
    }
    for name in FP_FIELDS:
        values[f"{name}_fp"] = fps.get(name)
    return tuple(values[c] for c in METRIC_ROW_COLUMNS)


def review_row(review: ReviewRecord, run_id: uuid.UUID) -> tuple[Any, ...]:
    return (
        review.marketplace,
        review.review_id,
        review.asin,
        review.rating,
        review.title,
        review.body,
        review.review_date,
        review.is_verified,
        review.is_vine,
        review.variant,
        review.observed_at,
        run_id,
    )


def plan_promotion(
    items: Sequence[StagedItem],
    *,
    marketplace: str,
    batch_asins: Sequence[str],
    run_id: uuid.UUID,
    run_kind: str,
    now: datetime | None = None,
) -> PromotionPlan:
    """Every row a batch's promotion writes, and its per-ASIN outcome.

    `now` bounds future times for items staged without `received_at`.
    """
    plan = PromotionPlan()
    requested = frozenset(batch_asins)
    valid: dict[str, ProductRecord] = {}
    quarantined_asins: set[str] = set()
    reviewed_asins: set[str] = set()
    review_ids: set[str] = set()

    def quarantine(item_id: int, q: Quarantined, asin_counts: bool) -> None:
        plan.events.append((item_id, "quarantined", q.reason))
        plan.quarantine_codes[q.code] = plan.quarantine_codes.get(q.code, 0) + 1
        if asin_counts and q.asin:
            quarantined_asins.add(q.asin)

    for item in items:
        if item.kind == "review":
            result_r = normalise_review(
                item.payload,
                marketplace=marketplace,
                requested=requested,
                observed_at=item.observed_at,
                now=item.received_at or now,
            )
            if isinstance(result_r, Quarantined):
                quarantine(item.id, result_r, run_kind == "reviews")
            elif result_r.review_id in review_ids:
                plan.events.append((item.id, "quarantined", f"{DUPLICATE}: second copy"))
            else:
                review_ids.add(result_r.review_id)
                reviewed_asins.add(result_r.asin)
                plan.reviews.append(review_row(result_r, run_id))
                plan.events.append((item.id, "promoted", None))
            continue
        result = normalise_product(
            item.payload,
            marketplace=marketplace,
            requested=requested,
            observed_at=item.observed_at,
            now=item.received_at or now,
        )
        if isinstance(result, Quarantined):
            quarantine(item.id, result, True)
        elif result.asin in valid:
            dup = Quarantined(marketplace, result.asin, f"{DUPLICATE}: second item", {}, DUPLICATE)
            quarantine(item.id, dup, True)
        else:
            valid[result.asin] = result
            plan.events.append((item.id, "promoted", None))
            plan.metrics.append(metric_row(result, run_id))
            plan.snapshots.append(
                (
                    result.marketplace,
                    result.asin,
                    content_fingerprint(result),
                    content_of(result),
                    result.observed_at,
                    run_id,
                )
            )

    if run_kind == "reviews":
        bad = {a for a in requested if a in quarantined_asins and a not in reviewed_asins}
        plan.outcome = Outcome(len(requested) - len(bad), len(bad), 0)
        return plan

    observed_by_asin = {a: r.observed_at for a, r in valid.items()}
    fallback = max(
        (i.observed_at for i in items if i.kind == "product" and _sane(i, now)), default=None
    )
    n_valid = n_quarantined = n_failed = 0
    for asin in batch_asins:
        record = valid.get(asin)
        if record is not None:
            n_valid += 1
            plan.products.append(
                (
                    asin,
                    observed_by_asin[asin],
                    record.title,
                    record.brand,
                    record.category,
                    True,
                    True,
                )
            )
        elif asin in quarantined_asins:
            n_quarantined += 1
            plan.products.append((asin, fallback, None, None, None, False, True))
        else:
            n_failed += 1
            plan.products.append((asin, fallback, None, None, None, False, False))
    plan.outcome = Outcome(n_valid, n_quarantined, n_failed)
    return plan

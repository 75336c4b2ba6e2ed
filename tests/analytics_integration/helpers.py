"""Builders for the analytics integration tests: Apify-shaped items, and a day of ingestion
through the real staging and promotion code (no Celery, no upstream)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from asinwatch.ingestion import repository as ingest_repo
from asinwatch.ingestion.promotion import promote_batch
from asinwatch.ingestion.records import FetchResult
from asinwatch.ingestion.staging import StagedFetch, stage_batch
from asinwatch.kit.db import session_scope

MKT = "amazon.com"
D0 = date(2026, 3, 1)
OWN = "B0OWN00001"
COMP_A = "B0COMP0001"
COMP_B = "B0COMP0002"
SELLER = "ABRANDSELLER1"


def moment(day: int) -> datetime:
    """Day `day` at 18:00 UTC (10:00 in Los Angeles: the same calendar day)."""
    return datetime.combine(D0 + timedelta(days=day), time(18), tzinfo=UTC)


def item(
    asin: str,
    price: float | None = 20.0,
    *,
    in_stock: bool = True,
    seller: str | None = SELLER,
    stars: float = 4.5,
    reviews: int = 200,
    bsr: int = 5000,
    title: str = "Acme Steel Water Bottle 750 ml, Leak Proof",
) -> dict[str, Any]:
    return {
        "title": title,
        "url": f"https://www.amazon.com/dp/{asin}",
        "asin": asin,
        "originalAsin": asin,
        "input": f"https://www.amazon.com/dp/{asin}",
        "brand": "Acme",
        "price": None if price is None else {"value": price, "currency": "$"},
        "inStock": in_stock,
        "stars": stars,
        "reviewsCount": reviews,
        "bestsellerRanks": [{"rank": bsr, "category": "Kitchen"}],
        "seller": {"id": seller, "name": "Acme Official"} if seller else None,
        "features": ["Keeps drinks cold", "Leak-proof lid", "Steel", "Fits cup holders"],
        "description": "A bottle. " * 30,
        "highResolutionImages": [f"https://m.media-amazon.com/images/I/{i}.jpg" for i in range(4)],
        "aPlusContent": None,
    }


def blocked(asin: str) -> dict[str, Any]:
    """A captcha page for the ASIN: quarantined by normalisation."""
    return {
        "title": "Robot Check",
        "url": "https://www.amazon.com/errors/validateCaptcha",
        "asin": asin,
        "input": f"https://www.amazon.com/dp/{asin}",
        "price": None,
        "stars": None,
        "reviewsCount": None,
        "description": "Enter the characters you see below.",
        "#error": "captcha",
    }


def review_item(asin: str, review_id: str, rating: int, day: int) -> dict[str, Any]:
    posted = D0 + timedelta(days=day)
    return {
        "reviewId": review_id,
        "productAsin": asin,
        "productOriginalAsin": asin,
        "ratingScore": rating,
        "reviewTitle": "Broke" if rating <= 2 else "Fine",
        "reviewDescription": "text",
        "date": posted.isoformat(),
        "isVerified": True,
        "input": f"https://www.amazon.com/dp/{asin}",
    }


def seed(
    products: dict[str, bool], links: dict[str, list[str]] | None = None, allow: bool = True
) -> None:
    """Insert products (asin -> is_own) and competitor links."""
    with session_scope() as s:
        for asin, own in products.items():
            s.execute(
                text(
                    "INSERT INTO core.products (marketplace, asin, is_own, tracking_state,"
                    " seller_allowlist) VALUES (:m, :a, :o, 'active', :al)"
                ),
                {"m": MKT, "a": asin, "o": own, "al": [SELLER] if allow else []},
            )
        for own, comps in (links or {}).items():
            for comp in comps:
                s.execute(
                    text(
                        "INSERT INTO core.competitor_links (marketplace, asin, competitor_asin)"
                        " VALUES (:m, :a, :c)"
                    ),
                    {"m": MKT, "a": own, "c": comp},
                )


def ingest(
    day: int, products: list[dict[str, Any]], reviews: list[dict[str, Any]] | None = None
) -> uuid.UUID:
    """One run over the items' ASINs, staged and promoted like the pipeline does."""
    asins = sorted({str(p["originalAsin"] if "originalAsin" in p else p["asin"]) for p in products})
    observed = moment(day)

    def result(raw: list[dict[str, Any]]) -> FetchResult:
        return FetchResult(raw, [], [], [], [], Decimal("0.01"), [f"up{day}"], observed)

    with session_scope() as s:
        run, _ = ingest_repo.create_run(
            s,
            job_id=f"test-{uuid.uuid4().hex}",
            trigger="manual",
            kind="product_details",
            marketplace=MKT,
            asins=asins,
            batch_size=100,
            params={},
        )
        run_id = run.id
    fetches = [StagedFetch("product", "apify:test", result(products))]
    if reviews:
        fetches.append(StagedFetch("review", "apify:test-reviews", result(reviews)))
    with session_scope() as s:
        assert stage_batch(s, run_id=run_id, batch_no=0, marketplace=MKT, fetches=fetches)
    with session_scope() as s:
        assert promote_batch(s, run_id, 0) is not None
    with session_scope() as s:
        ingest_repo.finalise_run(s, run_id)
    return run_id

"""Builders of plain analytics inputs for the tests (points, reviews, listings)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from asinwatch.ingestion.records import ListingContent, ReviewRecord
from asinwatch.metrics.series import MetricPoint

D0 = date(2026, 1, 1)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def pt(n: int, price: float | str | Decimal | None = None, **kw: Any) -> MetricPoint:
    """A point on day `n` (observed at 06:00 UTC unless given), price as Decimal."""
    kw.setdefault("observed_at", datetime.combine(day(n), time(6), tzinfo=UTC))
    kw.setdefault("currency", "USD")
    for key in ("list_price", "rating"):
        if key in kw and kw[key] is not None and not isinstance(kw[key], Decimal):
            kw[key] = Decimal(str(kw[key]))
    return MetricPoint(
        date=day(n),
        buybox_price=None if price is None else Decimal(str(price)),
        **kw,
    )


def review(
    n: int, rating: int, review_id: str | None = None, title: str | None = None
) -> ReviewRecord:
    return ReviewRecord(
        marketplace="amazon.com",
        asin="B000TEST01",
        review_id=review_id or f"R{n}-{rating}",
        rating=rating,
        title=title,
        body=None,
        review_date=day(n),
        is_verified=True,
        is_vine=False,
        variant=None,
        observed_at=datetime.combine(day(n), time(6), tzinfo=UTC),
    )


GOOD_TITLE = "Acme Stainless Steel Water Bottle 750 ml, Leak Proof"  # 52 chars
GOOD_BULLETS = (
    "Keeps drinks cold for 24 hours and hot for 12 hours",
    "Leak-proof lid with a carry loop",
    "Food-grade 18/8 stainless steel, BPA free",
    "Fits most cup holders and backpack pockets",
    "Dishwasher-safe lid; hand wash the bottle",
)


def listing(**kw: Any) -> ListingContent:
    base: dict[str, Any] = {
        "title": GOOD_TITLE,
        "bullets": GOOD_BULLETS,
        "description": "D" * 1200,
        "images": tuple(f"https://m.media-amazon.com/images/I/{i}.jpg" for i in range(6)),
        "aplus": "A+ modules",
        "variants": ("750 ml", "1 l"),
    }
    base.update(kw)
    return ListingContent(**base)

"""Dataset items shaped like the real Amazon actors' output, quirks included.

Product items follow `junglee/amazon-crawler` (price as {value, currency symbol}, starsBreakdown
sometimes as "79%" strings, asin vs originalAsin on variant redirects, keys that come and go);
review items follow `junglee/amazon-reviews-scraper`. Block pages are the failures a real
scrape produces: a captcha page, an empty page that still says "in stock", a page for another
ASIN, and garbage with unparseable values and hidden `#error` fields.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from asinwatch.simulator.market import DayView, MarketModel, Profile
from asinwatch.simulator.randomness import fake_asin, rng, token, unit

BLOCK_KINDS = ("captcha", "empty", "wrong_asin", "garbage")

_PURCHASE_BUCKETS = (
    (200, "10K+"),
    (1_000, "5K+"),
    (3_000, "2K+"),
    (8_000, "1K+"),
    (20_000, "500+"),
    (50_000, "100+"),
    (100_000, "50+"),
)
_REVIEW_TITLES = {
    1: ("Stopped working after a week", "Do not buy", "Very disappointed"),
    2: ("Not as described", "Cheap quality", "Meh"),
    3: ("It's okay", "Does the job", "Average"),
    4: ("Good value", "Pretty good", "Works well"),
    5: ("Love it!", "Exactly what I needed", "Five stars", "Excellent quality"),
}


def money(minor: int | None, p: Profile) -> dict[str, Any] | None:
    if minor is None:
        return None
    value = float(Decimal(minor) / (10**p.decimals))
    return {"value": value, "currency": p.symbol}


def purchase_volume(bsr: int) -> str | None:
    for limit, label in _PURCHASE_BUCKETS:
        if bsr < limit:
            return f"{label} bought in past month"
    return None


def product_item(
    market: MarketModel,
    p: Profile,
    v: DayView,
    input_url: str,
    *,
    max_offers: int = 0,
) -> dict[str, Any]:
    """The crawler's item for one listing on one day."""
    seed = market.seed
    domain = p.marketplace
    content = market.content(p, v.versions)
    quirk = rng(seed, "quirk", domain, p.asin, v.day)
    counts = v.star_counts
    total = sum(counts)
    breakdown: dict[str, Any] | None = None
    if total:
        as_strings = quirk.random() < 0.2
        breakdown = {}
        for i in range(5, 0, -1):
            frac = counts[i - 1] / total
            breakdown[f"{i}star"] = f"{round(frac * 100)}%" if as_strings else round(frac, 2)
    main_rank = v.bsr
    sub_rank = max(1, v.bsr // 40)
    ranks = [
        {
            "rank": main_rank,
            "category": p.categories[0],
            "url": f"https://www.{domain}/gp/bestsellers/{token(6, 'cat', p.categories[0])}",
        },
        {"rank": sub_rank, "category": p.categories[-1]},
    ]
    images = content["highResolutionImages"]
    item: dict[str, Any] = {
        "title": content["title"],
        "url": f"https://www.{domain}/dp/{p.returned_asin or p.asin}",
        "asin": p.returned_asin or p.asin,
        "originalAsin": p.asin,
        "input": input_url,
        "brand": p.brand,
        "author": None,
        "price": money(v.price, p),
        "listPrice": money(v.list_price, p) if v.price is not None else None,
        "shippingPrice": None,
        "priceRange": None,
        "inStock": v.in_stock,
        "inStockText": _stock_text(v, quirk.randint(2, 9)),
        "delivery": "FREE delivery Tuesday" if v.in_stock else None,
        "fastestDelivery": "Or fastest delivery Tomorrow" if v.in_stock else None,
        "condition": "New" if v.in_stock else None,
        "stars": float(v.stars) if v.stars is not None else None,
        "reviewsCount": total,
        "starsBreakdown": breakdown,
        "breadCrumbs": " > ".join(p.categories),
        "bestsellerRanks": ranks,
        "seller": (
            {
                "id": v.seller_id,
                "name": v.seller_name,
                "url": f"https://www.{domain}/sp?seller={v.seller_id}",
            }
            if v.seller_id
            else None
        ),
        "features": content["features"],
        "description": content["description"],
        "thumbnailImage": images[0] if images else None,
        "highResolutionImages": images,
        "galleryThumbnails": [u.replace("_AC_SL1500_", "_AC_US40_") for u in images],
        "videosCount": quirk.randint(0, 2),
        "aPlusContent": content["aPlusContent"],
        "isAmazonChoice": v.bsr < 2_000,
        "monthlyPurchaseVolume": purchase_volume(v.bsr),
        "variantAsins": list(p.variant_asins),
        "variantDetails": [
            {"asin": a, "name": f"Option {i + 1}"} for i, a in enumerate(p.variant_asins)
        ],
        "variantAttributes": [{"key": "Color", "value": "Black"}] if p.variant_asins else [],
        "attributes": [{"key": "Brand", "value": p.brand}],
        "productOverview": [{"key": "Brand", "value": p.brand}],
        "loadedCountryCode": p.country,
        # Fields that come and go between actor versions.
        "sponsoredProducts": [],
    }
    if quirk.random() < 0.3:
        del item["listPrice"]  # some actor versions omit the key instead of sending null
    if max_offers > 0 and v.price is not None:
        offers = [
            {
                "price": money(v.price, p),
                "seller": {"id": v.seller_id, "name": v.seller_name},
                "shipsFrom": "Amazon",
                "condition": "New",
            }
        ]
        if v.seller_id != p.brand_seller_id:
            offers.append(
                {
                    "price": money(v.underlying_price, p),
                    "seller": {"id": p.brand_seller_id, "name": f"{p.brand} Official"},
                    "shipsFrom": "Amazon",
                    "condition": "New",
                }
            )
        item["offers"] = offers[:max_offers]
    return item


def _stock_text(v: DayView, left: int) -> str:
    if not v.in_stock:
        return "Currently unavailable."
    if v.bsr % 7 == 0:
        return f"Only {left} left in stock - order soon."
    return "In Stock"


def block_item(
    market: MarketModel, p: Profile, v: DayView, input_url: str, kind: str, salt: object
) -> dict[str, Any]:
    """What a blocked or broken scrape of this listing returns."""
    domain = p.marketplace
    if kind == "captcha":
        return {
            "title": "Robot Check",
            "url": f"https://www.{domain}/errors/validateCaptcha",
            "asin": p.asin,
            "input": input_url,
            "price": None,
            "stars": None,
            "reviewsCount": None,
            "description": "Enter the characters you see below. Sorry, we just need to make "
            "sure you're not a robot.",
            "#error": "captcha",
        }
    if kind == "empty":
        # The false "in stock" that trips naive trackers.
        return {
            "title": None,
            "url": input_url,
            "asin": p.asin,
            "originalAsin": p.asin,
            "input": input_url,
            "price": None,
            "inStock": True,
            "stars": None,
            "reviewsCount": None,
            "features": [],
        }
    if kind == "wrong_asin":
        other = fake_asin(market.seed, "wrong", salt)
        op = market.profile(domain, other)
        item = product_item(market, op, market.view(domain, other, v.day), input_url)
        item["asin"] = item["originalAsin"] = other
        item["url"] = f"https://www.{domain}/dp/{other}"
        return item
    return {
        "title": "<!DOCTYPE html><html><head><title>Sorry! Something went wrong!</title>",
        "url": input_url,
        "asin": p.asin,
        "input": input_url,
        "price": {"value": "N/A", "currency": "?"},
        "stars": "4,5 von 5",
        "reviewsCount": "many",
        "#debug": {"statusCode": 503, "retryCount": 3},
    }


def review_items(
    market: MarketModel, p: Profile, day: int, max_reviews: int, input_url: str
) -> list[dict[str, Any]]:
    """The newest `max_reviews` reviews visible on `day`, newest first."""
    seed, domain = market.seed, p.marketplace
    tl_views: list[tuple[int, tuple[int, ...]]] = []
    d = day
    need = max_reviews
    while d >= 1 and need > 0:
        v = market.view(domain, p.asin, d)
        if v.new_ratings:
            tl_views.append((d, v.new_ratings))
            need -= len(v.new_ratings)
        d -= 1
    out: list[dict[str, Any]] = []
    for d, ratings in tl_views:
        for j in range(len(ratings) - 1, -1, -1):
            out.append(_review(seed, p, d, j, ratings[j], market, input_url))
            if len(out) >= max_reviews:
                return _positioned(out)
    # Older reviews, from before the simulated history began.
    k = 0
    while len(out) < max_reviews and k < p.base_reviews:
        r = rng(seed, "old-review", domain, p.asin, k)
        rating = r.choices(range(1, 6), weights=p.star_weights)[0]
        out.append(_review(seed, p, -1 - k // 3, k, rating, market, input_url))
        k += 1
    return _positioned(out)


def _positioned(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, item in enumerate(items):
        item["position"] = i + 1
    return items


def _review(
    seed: int, p: Profile, day: int, j: int, rating: int, market: MarketModel, input_url: str
) -> dict[str, Any]:
    domain = p.marketplace
    review_id = "R" + token(13, seed, "review", domain, p.asin, day, j)
    r = rng(seed, "review-body", review_id)
    posted = market.epoch + timedelta(days=day)
    helpful = r.randint(0, 40)
    return {
        "reviewId": review_id,
        "productAsin": p.returned_asin or p.asin,
        "productOriginalAsin": p.asin,
        "variantAsin": p.variant_asins[0] if p.variant_asins else None,
        "ratingScore": rating,
        "reviewTitle": r.choice(_REVIEW_TITLES[rating]),
        "reviewDescription": f"{r.choice(_REVIEW_TITLES[rating])}. " * r.randint(1, 4),
        "date": posted.isoformat(),
        "reviewedIn": f"Reviewed in {p.country} on {posted:%B} {posted.day}, {posted.year}",
        "countryCode": p.country,
        "isVerified": unit(seed, "verified", review_id) < 0.85,
        "isAmazonVine": unit(seed, "vine", review_id) < 0.03,
        "reviewReaction": f"{helpful} people found this helpful" if helpful > 1 else None,
        "variant": "Color: Black" if p.variant_asins else None,
        "reviewUrl": f"https://www.{domain}/gp/customer-reviews/{review_id}",
        "reviewImages": [],
        "position": j + 1,
        "userId": "AE" + token(26, seed, "user", review_id),
        "totalCategoryRatings": None,
        "totalCategoryReviews": None,
        "input": input_url,
    }


def bad_review_item(p: Profile, input_url: str) -> dict[str, Any]:
    """A review scrape that went wrong: no id and an impossible score."""
    return {
        "reviewId": None,
        "productAsin": p.asin,
        "ratingScore": 0,
        "reviewTitle": "",
        "reviewDescription": "Sorry! Something went wrong!",
        "input": input_url,
    }

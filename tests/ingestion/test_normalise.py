"""Normalisation of Apify items: hand-written items for every rule, plus simulator output."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from asinwatch.ingestion.normalise import (
    ABSURD_VALUE,
    BAD_FIELD,
    BLOCK_PAGE,
    CURRENCY_MISMATCH,
    DUPLICATE,
    MISSING_ASIN,
    NOT_A_DICT,
    WRONG_ASIN,
    content_hash,
    fingerprint,
    normalise_product,
    normalise_products,
    normalise_review,
    normalise_reviews,
    parse_fraction,
    parse_purchase_volume,
)
from asinwatch.ingestion.records import ProductRecord, Quarantined, ReviewRecord
from asinwatch.simulator import SimConfig, Simulator, sample_asins

ASIN = "B0TESTAAA1"
OTHER = "B0OTHERZZ9"
AT = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)


def item(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Lumora Compact Scale, Precise - Black",
        "url": f"https://www.amazon.com/dp/{ASIN}",
        "asin": ASIN,
        "originalAsin": ASIN,
        "input": f"https://www.amazon.com/dp/{ASIN}",
        "brand": "Lumora",
        "price": {"value": 19.99, "currency": "$"},
        "listPrice": {"value": 24.99, "currency": "$"},
        "shippingPrice": None,
        "inStock": True,
        "inStockText": "In Stock",
        "stars": 4.4,
        "reviewsCount": 1234,
        "starsBreakdown": {
            "5star": 0.68,
            "4star": 0.15,
            "3star": 0.07,
            "2star": 0.04,
            "1star": 0.06,
        },
        "breadCrumbs": "Home & Kitchen > Kitchen & Dining > Kitchen Scales",
        "bestsellerRanks": [
            {"rank": 1520, "category": "Home & Kitchen"},
            {"rank": 12, "category": "Kitchen Scales"},
        ],
        "seller": {"id": "A1BRANDSELLER", "name": "Lumora Official", "url": "https://x"},
        "features": ["PRECISE - to 0.1 g", "COMPACT - fits a drawer"],
        "description": "A precise kitchen scale.",
        "highResolutionImages": ["https://m.media-amazon.com/images/I/a.jpg"],
        "aPlusContent": "A+ block",
        "monthlyPurchaseVolume": "1K+ bought in past month",
        "variantAsins": ["B0VARIANT2", "B0VARIANT1"],
    }
    base.update(overrides)
    return base


def norm(raw: Any, marketplace: str = "amazon.com", requested: tuple[str, ...] = (ASIN,)) -> Any:
    return normalise_product(raw, marketplace=marketplace, requested=set(requested), observed_at=AT)


def record(raw: Any, **kw: Any) -> ProductRecord:
    result = norm(raw, **kw)
    assert isinstance(result, ProductRecord), getattr(result, "reason", result)
    return result


def quarantined(raw: Any, code: str, **kw: Any) -> Quarantined:
    result = norm(raw, **kw)
    assert isinstance(result, Quarantined), result
    assert result.code == code, result.reason
    assert result.reason.startswith(code + ": ")
    return result


def test_valid_item_maps_every_series() -> None:
    r = record(item())
    assert r.asin == ASIN and r.returned_asin is None and r.observed_at == AT
    assert r.buybox_price == Decimal("19.99") and r.list_price == Decimal("24.99")
    assert r.shipping_price is None and r.currency == "USD"
    assert r.in_stock is True and r.availability_text == "In Stock"
    assert r.rating == Decimal("4.40") and r.review_count == 1234
    assert r.stars_breakdown == {
        "5star": 0.68,
        "4star": 0.15,
        "3star": 0.07,
        "2star": 0.04,
        "1star": 0.06,
    }
    # Main BSR = the first entry (top-level category); all kept.
    assert (r.bsr, r.bsr_category) == (1520, "Home & Kitchen")
    assert [x.rank for x in r.bsr_ranks] == [1520, 12]
    assert r.category == "Home & Kitchen"
    assert r.buybox_seller_id == "A1BRANDSELLER" and r.buybox_seller_name == "Lumora Official"
    assert r.monthly_purchase_volume == 1000
    assert r.content.variants == ("B0VARIANT1", "B0VARIANT2")
    assert r.image_count == 1 and r.bullet_count == 2 and r.has_aplus is True
    assert set(r.fingerprints) == {"title", "bullets", "description", "images", "aplus", "variants"}
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in r.fingerprints.values())


def test_missing_price_is_none_not_zero() -> None:
    r = record(
        item(price=None, listPrice=None, inStock=False, inStockText="Currently unavailable.")
    )
    assert r.buybox_price is None and r.list_price is None
    assert r.in_stock is False
    r2 = record(item(price={"value": None, "currency": "$"}))
    assert r2.buybox_price is None


def test_percent_strings_in_stars_breakdown_become_fractions() -> None:
    r = record(
        item(
            starsBreakdown={
                "5star": "79%",
                "4star": "11%",
                "3star": "5%",
                "2star": "2%",
                "1star": "3%",
            }
        )
    )
    assert r.stars_breakdown is not None
    assert r.stars_breakdown["5star"] == pytest.approx(0.79)
    assert r.stars_breakdown["1star"] == pytest.approx(0.03)
    assert parse_fraction("79 %") == pytest.approx(0.79)
    assert parse_fraction(79) == pytest.approx(0.79)
    assert parse_fraction("abc") is None
    # An unparseable breakdown is dropped, the observation is kept.
    assert record(item(starsBreakdown={"5star": "lots"})).stars_breakdown is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1K+ bought in past month", 1000),
        ("50+ bought in past month", 50),
        ("1.5K+ bought in past month", 1500),
        ("2M+ bought", 2_000_000),
        (300, 300),
        (None, None),
        ("bought a lot", None),
        (True, None),
    ],
)
def test_purchase_volume(text: Any, expected: int | None) -> None:
    assert parse_purchase_volume(text) == expected


def test_block_pages_are_quarantined_with_reason() -> None:
    captcha = {
        "title": "Robot Check",
        "url": "https://www.amazon.com/errors/validateCaptcha",
        "input": f"https://www.amazon.com/dp/{ASIN}",
        "price": None,
        "description": "Enter the characters you see below",
    }
    q = quarantined(captcha, BLOCK_PAGE)
    assert q.asin == ASIN and q.raw is captcha
    # An empty page that still claims "in stock" must not become an in-stock observation.
    empty = {
        "title": None,
        "asin": ASIN,
        "price": None,
        "inStock": True,
        "stars": None,
        "features": [],
    }
    quarantined(empty, BLOCK_PAGE)
    quarantined(item(**{"#error": "blocked"}), BLOCK_PAGE)
    quarantined(item(title="<!DOCTYPE html><html>Sorry! Something went wrong!"), BLOCK_PAGE)


def test_wrong_asin_and_variant_redirects() -> None:
    # The page answered for another listing than the URL we gave it.
    quarantined(item(asin=OTHER, originalAsin=OTHER), WRONG_ASIN)
    # An item for an ASIN the batch never asked for.
    q = quarantined(
        item(asin=OTHER, originalAsin=OTHER, input=f"https://www.amazon.com/dp/{OTHER}"), WRONG_ASIN
    )
    assert q.asin == OTHER
    # A redirect to a variant belongs to the ASIN we asked for, and says where it went.
    r = record(item(asin="B0VARIANT1", originalAsin=ASIN))
    assert r.asin == ASIN and r.returned_asin == "B0VARIANT1"
    # Matched by the input URL alone when originalAsin is absent.
    raw = item(asin="B0VARIANT1")
    del raw["originalAsin"]
    assert record(raw).returned_asin == "B0VARIANT1"
    quarantined({"title": "x", "price": {"value": 1, "currency": "$"}}, MISSING_ASIN)


@pytest.mark.parametrize("raw", ["<html>captcha</html>", None, 42, ["a"], b"bytes"])
def test_garbage_that_is_not_a_dict(raw: Any) -> None:
    q = quarantined(raw, NOT_A_DICT)
    assert q.asin is None and "value" in q.raw


def test_garbage_fields() -> None:
    quarantined(item(price={"value": "N/A", "currency": "$"}), BAD_FIELD)
    quarantined(item(stars="4,5 von 5"), BAD_FIELD)
    quarantined(item(reviewsCount="many"), BAD_FIELD)


@pytest.mark.parametrize(
    "overrides",
    [
        {"price": {"value": -1, "currency": "$"}},
        {"price": {"value": 2_000_000, "currency": "$"}},
        {"listPrice": {"value": -0.01, "currency": "$"}},
        {"stars": 6},
        {"stars": 0.5},
        {"reviewsCount": -3},
        {"bestsellerRanks": [{"rank": 0, "category": "Home"}]},
        {"bestsellerRanks": [{"rank": -5, "category": "Home"}]},
    ],
)
def test_absurd_values(overrides: dict[str, Any]) -> None:
    quarantined(item(**overrides), ABSURD_VALUE)


def test_no_rating_yet_is_none_not_absurd() -> None:
    r = record(item(stars=0, reviewsCount=0, starsBreakdown=None))
    assert r.rating is None and r.review_count == 0


def test_unknown_fields_are_ignored() -> None:
    plain = record(item())
    extra = record(
        item(newFieldFromActorV9={"nested": [1, 2]}, sponsoredProducts=[{"asin": OTHER}])
    )
    assert extra == plain


def test_currency_from_marketplace() -> None:
    jp = item(
        url=f"https://www.amazon.co.jp/dp/{ASIN}",
        input=f"https://www.amazon.co.jp/dp/{ASIN}",
        price={"value": 2980, "currency": "￥"},
        listPrice={"value": 3480, "currency": "¥"},
    )
    r = record(jp, marketplace="amazon.co.jp")
    assert (
        r.currency == "JPY"
        and r.buybox_price == Decimal("2980.00")
        and r.marketplace == "amazon.co.jp"
    )
    de = record(
        item(price={"value": 17.49, "currency": "€"}, listPrice=None), marketplace="amazon.de"
    )
    assert de.currency == "EUR" and de.buybox_price == Decimal("17.49")
    # A dollar price on the Japanese store is another locale's page: quarantined.
    quarantined(
        item(price={"value": 19.99, "currency": "$"}), CURRENCY_MISMATCH, marketplace="amazon.co.jp"
    )
    quarantined(item(price={"value": 19.99, "currency": "€"}), CURRENCY_MISMATCH)
    quarantined(item(price={"value": 19.99, "currency": "ZZ"}), CURRENCY_MISMATCH)
    # No symbol at all: the marketplace's currency.
    assert record(item(price={"value": 5}, listPrice=None)).buybox_price == Decimal("5.00")


def test_fingerprints_change_only_with_their_field() -> None:
    a = record(item())
    b = record(item(title="Lumora Compact Scale, NEW - Black"))
    c = record(item(title="  Lumora Compact Scale,  Precise - Black "))  # whitespace only
    assert a.fingerprints["title"] != b.fingerprints["title"]
    assert {k: v for k, v in a.fingerprints.items() if k != "title"} == {
        k: v for k, v in b.fingerprints.items() if k != "title"
    }
    assert a.fingerprints == c.fingerprints
    assert fingerprint(["x", "y"]) != fingerprint(["y", "x"])
    assert len(fingerprint({"any": "json"})) == 16


def test_content_hash_is_canonical() -> None:
    a = {"b": 1, "a": [1, {"y": 2, "x": 1}]}
    b = {"a": [1, {"x": 1, "y": 2}], "b": 1}
    assert content_hash(a) == content_hash(b)
    assert len(content_hash(a)) == 64
    assert content_hash(a) != content_hash({**a, "b": 2})


def test_batch_duplicates_and_missing() -> None:
    second = "B0TESTAAA2"
    result = normalise_products(
        [item(), item(), "garbage"],
        marketplace="amazon.com",
        requested=[ASIN, second],
        observed_at=AT,
    )
    assert [r.asin for r in result.records] == [ASIN]
    assert sorted(q.code for q in result.quarantined) == sorted([DUPLICATE, NOT_A_DICT])
    assert result.missing_asins == [second]


def review(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "reviewId": "R1ABCDEFGHIJK",
        "productAsin": ASIN,
        "productOriginalAsin": ASIN,
        "ratingScore": 2,
        "reviewTitle": "Broke",
        "reviewDescription": "Stopped working after a week.",
        "date": "2026-02-27",
        "isVerified": True,
        "isAmazonVine": False,
        "variant": "Color: Black",
        "reviewReaction": "3 people found this helpful",
    }
    base.update(overrides)
    return base


def test_reviews() -> None:
    kw: dict[str, Any] = {"marketplace": "amazon.com", "requested": {ASIN}, "observed_at": AT}
    r = normalise_review(review(), **kw)
    assert isinstance(r, ReviewRecord)
    assert (r.asin, r.review_id, r.rating, r.is_verified, r.is_vine) == (
        ASIN,
        "R1ABCDEFGHIJK",
        2,
        True,
        False,
    )
    assert r.review_date is not None and r.review_date.isoformat() == "2026-02-27"
    assert r.observed_at == AT
    bad_date = normalise_review(review(date="last tuesday"), **kw)
    assert isinstance(bad_date, ReviewRecord) and bad_date.review_date is None
    for raw, code in [
        (review(ratingScore=0), ABSURD_VALUE),
        (review(ratingScore=7), ABSURD_VALUE),
        (review(reviewId=None), BAD_FIELD),
        (review(ratingScore="five"), BAD_FIELD),
        (review(productAsin=OTHER, productOriginalAsin=OTHER), WRONG_ASIN),
        ("oops", NOT_A_DICT),
    ]:
        q = normalise_review(raw, **kw)
        assert isinstance(q, Quarantined) and q.code == code, (raw, q)
    batch = normalise_reviews(
        [review(), review(), review(reviewId="R2"), review(ratingScore=0)],
        marketplace="amazon.com",
        requested=[ASIN, "B0NOREVIEW"],
        observed_at=AT,
    )
    assert [x.review_id for x in batch.reviews] == ["R1ABCDEFGHIJK", "R2"]
    assert len(batch.quarantined) == 1
    assert batch.asins_without_reviews == ["B0NOREVIEW"]


def test_normalise_does_not_mutate_the_item() -> None:
    raw = item(starsBreakdown={"5star": "79%"})
    before = copy.deepcopy(raw)
    record(raw)
    assert raw == before


@pytest.mark.parametrize("marketplace", ["amazon.com", "amazon.co.jp", "amazon.de", "amazon.in"])
def test_every_simulated_item_normalises(marketplace: str) -> None:
    """The simulator's unblocked items are valid observations on every marketplace."""
    sim = Simulator(SimConfig(seed=11, block_rate=0))
    asins = sample_asins(11, 40)
    sim.clock.advance(days=20)
    items = [sim.product_item(marketplace, a) for a in asins]
    result = normalise_products(items, marketplace=marketplace, requested=asins, observed_at=AT)
    assert result.quarantined == [] and result.missing_asins == []
    assert {r.currency for r in result.records} == {
        {"amazon.com": "USD", "amazon.co.jp": "JPY", "amazon.de": "EUR", "amazon.in": "INR"}[
            marketplace
        ]
    }
    assert any(r.returned_asin for r in result.records)  # some listings redirect to a variant
    assert all(r.bsr is not None and r.bsr > 0 for r in result.records)

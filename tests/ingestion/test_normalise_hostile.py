"""Hostile upstream values: every class is quarantined or cleaned, one item at a time (pure)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from asinwatch.ingestion import column_limits as cols
from asinwatch.ingestion.normalise import (
    ABSURD_VALUE,
    BAD_FIELD,
    BAD_TIME,
    MAX_BULLETS,
    TEXT_LIMITS,
    TOO_DEEP,
    WRONG_ASIN,
    normalise_product,
    normalise_products,
    normalise_review,
)
from asinwatch.ingestion.promotion_plan import StagedItem, plan_promotion
from asinwatch.ingestion.rawjson import (
    CUT_KEY,
    DEEP,
    MAX_RAW_STRING,
    clean_text,
    loads_bounded,
    sanitise_raw,
)
from asinwatch.ingestion.records import ProductRecord, Quarantined, ReviewRecord
from tests.ingestion.test_normalise import ASIN, AT, OTHER, item, review

NOW = AT + timedelta(minutes=5)
INT4_MAX = 2**31 - 1


def norm(raw: Any, *, observed_at: datetime = AT, now: datetime | None = NOW) -> Any:
    return normalise_product(
        raw, marketplace="amazon.com", requested={ASIN}, observed_at=observed_at, now=now
    )


def refused(raw: Any, code: str, **kw: Any) -> Quarantined:
    result = norm(raw, **kw)
    assert isinstance(result, Quarantined), result
    assert result.code == code, result.reason
    assert result.asin == ASIN  # attributed to the ASIN we asked for: counted quarantined
    json.dumps(result.raw, allow_nan=False)  # storable as jsonb
    return result


def accepted(raw: Any, **kw: Any) -> ProductRecord:
    result = norm(raw, **kw)
    assert isinstance(result, ProductRecord), getattr(result, "reason", result)
    return result


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


# --- limits come from the table models ---------------------------------------------------


def test_limits_are_read_from_the_columns() -> None:
    assert cols.REVIEW_COUNT == (-(2**31), INT4_MAX)  # integer
    assert cols.IMAGE_COUNT == cols.BULLET_COUNT == (-(2**15), 2**15 - 1)  # smallint
    assert Decimal("9999999999.99") == cols.PRICE_MAX  # numeric(12, 2)
    assert Decimal("9.99") == cols.RATING_MAX  # numeric(3, 2)


# --- integers beyond the column's range, or below the real-world minimum ------------------


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"reviewsCount": INT4_MAX + 1}, "reviewsCount"),
        ({"reviewsCount": 10**40}, "reviewsCount"),
        ({"reviewsCount": str(INT4_MAX + 1)}, "reviewsCount"),
        ({"bestsellerRanks": [{"rank": INT4_MAX + 1, "category": "Home"}]}, "best-seller rank"),
        (
            {"bestsellerRanks": [{"rank": 5, "category": "A"}, {"rank": 2**40, "category": "B"}]},
            "best-seller rank",
        ),
        ({"monthlyPurchaseVolume": INT4_MAX + 1}, "monthlyPurchaseVolume"),
        ({"monthlyPurchaseVolume": "9999999K+ bought in past month"}, "monthlyPurchaseVolume"),
        ({"highResolutionImages": ["i"] * (2**15)}, "image count"),
        ({"features": ["b"] * (2**15)}, "bullet count"),
    ],
)
def test_integer_beyond_its_column_is_quarantined(overrides: dict[str, Any], name: str) -> None:
    q = refused(item(**overrides), ABSURD_VALUE)
    assert name in q.reason and "outside" in q.reason


def test_integer_at_the_column_limit_is_kept() -> None:
    r = accepted(item(reviewsCount=INT4_MAX, bestsellerRanks=[{"rank": INT4_MAX}]))
    assert r.review_count == INT4_MAX and r.bsr == INT4_MAX


def test_an_absurdly_long_number_is_a_bad_field_not_a_crash() -> None:
    refused(item(reviewsCount="9" * 5000), BAD_FIELD)  # int() refuses > 4,300 digits


def test_negative_counts_and_ranks_are_quarantined() -> None:
    refused(item(reviewsCount=-1), ABSURD_VALUE)
    refused(item(bestsellerRanks=[{"rank": 0}]), ABSURD_VALUE)


# --- prices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ({"value": float("nan"), "currency": "$"}, BAD_FIELD),
        ({"value": "NaN", "currency": "$"}, BAD_FIELD),
        ({"value": float("inf"), "currency": "$"}, BAD_FIELD),
        (float("nan"), BAD_FIELD),
        ({"value": 0, "currency": "$"}, ABSURD_VALUE),
        ({"value": 0.001, "currency": "$"}, ABSURD_VALUE),  # rounds to 0.00
        ({"value": 1e300, "currency": "$"}, ABSURD_VALUE),
    ],
)
def test_price_must_be_finite_and_above_zero(price: Any, code: str) -> None:
    refused(item(price=price), code)


def test_free_shipping_is_a_price_of_zero() -> None:
    assert accepted(item(shippingPrice={"value": 0, "currency": "$"})).shipping_price == 0
    refused(item(listPrice={"value": 0, "currency": "$"}), ABSURD_VALUE)
    refused(item(offers=[{"price": {"value": 0, "currency": "$"}}]), ABSURD_VALUE)


def test_rating_within_one_to_five() -> None:
    refused(item(stars=5.01), ABSURD_VALUE)
    refused(item(stars=float("nan")), BAD_FIELD)
    assert accepted(item(stars=5)).rating == Decimal("5.00")


# --- text ----------------------------------------------------------------------------------


def test_nul_surrogates_bidi_and_zero_width_are_stripped_from_all_text() -> None:
    r = accepted(
        item(
            title="Lumora\x00 Scale\u202e\u200b",
            brand="Lum\ud800ora",
            features=["PRE\u2066CISE\ufeff", "\x00"],
            description="A\x07 scale\nwith lines",
            seller={"id": "A1\x00X", "name": "Shop\u200d"},
            inStockText="In\x00 Stock",
            bestsellerRanks=[{"rank": 3, "category": "Ho\x00me"}],
        )
    )
    assert r.title == "Lumora Scale" and r.brand == "Lumora"
    assert r.content.bullets == ("PRECISE",) and r.bullet_count == 1
    assert r.content.description == "A scale\nwith lines"
    assert (r.buybox_seller_id, r.buybox_seller_name) == ("A1X", "Shop")
    assert r.availability_text == "In Stock" and r.bsr_category == "Home"
    texts = [r.title, r.brand, r.content.description, *r.content.bullets, r.buybox_seller_id]
    "".join(t or "" for t in texts).encode("utf-8")  # no lone surrogate left


def test_text_fields_are_capped() -> None:
    r = accepted(
        item(
            title="T" * 5_000_000,
            brand="B" * 1000,
            features=["x" * 5000] * 50,
            description="d" * 100_000,
            seller={"id": "S" * 500, "name": "N" * 500},
        )
    )
    assert r.title is not None and len(r.title) == TEXT_LIMITS["title"]
    assert r.brand is not None and len(r.brand) == TEXT_LIMITS["brand"]
    assert len(r.content.bullets) == MAX_BULLETS == r.bullet_count
    assert {len(b) for b in r.content.bullets} == {TEXT_LIMITS["bullet"]}
    assert r.content.description is not None
    assert len(r.content.description) == TEXT_LIMITS["description"]
    assert r.buybox_seller_id is not None and len(r.buybox_seller_id) == TEXT_LIMITS["seller_id"]


def test_clean_text_keeps_ordinary_text() -> None:
    text = "Kühlschrank, 冷蔵庫, ثلاجة 👍\tok\n"
    assert clean_text(text) == text


# --- nesting -------------------------------------------------------------------------------


def test_nesting_deeper_than_the_bound_is_quarantined() -> None:
    q = refused(item(attributes=deep(5000)), TOO_DEEP)
    text = json.dumps(q.raw)  # the kept copy is bounded: json can serialise it
    assert CUT_KEY in text and q.raw["title"] == item()["title"]
    accepted(item(attributes=deep(20)))


def test_a_deep_item_that_is_not_an_object_is_quarantined_without_recursing() -> None:
    q = norm(deep(5000))
    assert isinstance(q, Quarantined) and q.code == "not_a_dict"
    assert CUT_KEY in json.dumps(q.raw)
    assert norm(b"\x00bytes").raw == {"value": "b'\\x00bytes'"}


def test_a_page_with_a_5000_deep_item_still_parses() -> None:
    good = json.dumps(item())
    body = f'[{good}, {{"asin": "{ASIN}", "x": {"[" * 5000}1{"]" * 5000}}}, {good}]'
    with pytest.raises(RecursionError):
        json.loads(body)
    page = loads_bounded(body.encode())
    assert len(page) == 3 and page[0] == page[2] == item()
    assert DEEP in sanitise_raw(page[1]).issues
    with pytest.raises(ValueError):
        loads_bounded(b"[" * 5000)  # not JSON at all: still a clear ValueError


def test_sanitise_raw_makes_any_item_jsonb_safe() -> None:
    raw = {"t\x00": "a\x00b\ud800", "n": float("nan"), "i": float("-inf"), "s": "x" * 200_000}
    out = sanitise_raw(raw)
    assert out.value == {"t": "ab", "n": "NaN", "i": "-Infinity", "s": "x" * MAX_RAW_STRING}
    assert out.issues == {"text", "non_finite", "long"}
    json.dumps(out.value, allow_nan=False).encode("utf-8")
    clean = item()
    assert sanitise_raw(clean).value is clean and not sanitise_raw(clean).issues


# --- times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
        NOW + timedelta(hours=2),
    ],
)
def test_a_run_dated_outside_the_sane_window_is_refused(when: datetime) -> None:
    q = refused(item(), BAD_TIME, observed_at=when)
    assert "the run" in q.reason


@pytest.mark.parametrize(
    "scraped", ["0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z"]
)
def test_an_item_scraped_outside_the_sane_window_is_refused(scraped: str) -> None:
    q = refused(item(scrapedAt=scraped), BAD_TIME)
    assert "scrapedAt" in q.reason
    accepted(item(scrapedAt=(AT + timedelta(minutes=2)).isoformat()))
    accepted(item(scrapedAt="yesterday-ish"))  # unreadable secondary field: ignored


def test_review_dates_outside_the_window_are_refused() -> None:
    kw: dict[str, Any] = {"marketplace": "amazon.com", "requested": {ASIN}, "observed_at": AT}
    for bad in ("0001-01-01", "9999-12-31", "1990-01-01"):
        q = normalise_review(review(date=bad), now=NOW, **kw)
        assert isinstance(q, Quarantined) and q.code == BAD_TIME, q
        assert q.asin == ASIN
    ok = normalise_review(review(reviewDescription="Broke\x00 \ud800fast"), now=NOW, **kw)
    assert isinstance(ok, ReviewRecord) and ok.body == "Broke fast"
    nested = normalise_review(review(extra=deep(5000)), now=NOW, **kw)
    assert isinstance(nested, Quarantined) and nested.code == TOO_DEEP


# --- attribution and isolation -------------------------------------------------------------


def test_a_block_page_naming_another_asin_counts_for_the_asked_asin() -> None:
    q = refused(item(asin=OTHER, originalAsin=OTHER), WRONG_ASIN)
    assert OTHER in q.reason


def test_one_bad_item_never_harms_another() -> None:
    second, third = "B0TESTAAA2", "B0TESTAAA3"
    good = [item(), item(input=f"https://www.amazon.com/dp/{second}", originalAsin=second)]
    bad = item(
        input=f"https://www.amazon.com/dp/{third}",
        originalAsin=third,
        reviewsCount=2**40,
        title="\x00" * 10,
    )
    result = normalise_products(
        [good[0], bad, good[1]],
        marketplace="amazon.com",
        requested=[ASIN, second, third],
        observed_at=AT,
        now=NOW,
    )
    assert [r.asin for r in result.records] == [ASIN, second]
    assert [(q.asin, q.code) for q in result.quarantined] == [(third, ABSURD_VALUE)]


def test_promotion_plan_counts_quarantined_and_never_moves_last_seen_to_year_9999() -> None:
    received = AT + timedelta(minutes=1)
    items = [
        StagedItem(1, "product", item(), AT, received),
        StagedItem(
            2,
            "product",
            item(asin=OTHER, originalAsin=OTHER, input="https://www.amazon.com/dp/B0TESTAAA2"),
            AT,
            received,
        ),
        StagedItem(
            3,
            "product",
            item(input="https://www.amazon.com/dp/B0TESTAAA3", originalAsin="B0TESTAAA3"),
            datetime(9999, 12, 31, tzinfo=UTC),
            received,
        ),
    ]
    plan = plan_promotion(
        items,
        marketplace="amazon.com",
        batch_asins=[ASIN, "B0TESTAAA2", "B0TESTAAA3"],
        run_id=uuid.uuid4(),
        run_kind="product_details",
    )
    assert (plan.outcome.succeeded, plan.outcome.quarantined, plan.outcome.failed) == (1, 2, 0)
    assert plan.quarantine_codes == {WRONG_ASIN: 1, BAD_TIME: 1}
    assert len(plan.metrics) == 1
    # Quarantined ASINs are marked seen at the sane time of the batch, not in year 9999.
    seen_at = {row[0]: row[1] for row in plan.products}
    assert seen_at["B0TESTAAA3"] == AT and seen_at["B0TESTAAA2"] == AT

"""KPIs on hand-computed series: windows, changes, BSR, reviews, offers, stock, sales, quality."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asinwatch.ingestion.records import CategoryRank
from asinwatch.metrics.kpis import (
    KpiSettings,
    SalesCurve,
    Velocity,
    bullet_issues,
    compute_kpis,
    estimate_monthly_sales,
    forbidden_title_chars,
    listing_quality,
    low_star_share_from_breakdown,
    promotional_phrases,
    repeated_title_words,
)
from asinwatch.metrics.series import (
    MetricPoint,
    MetricRowError,
    daily_series,
    point_from_row,
    points_from_rows,
)
from tests.analytics.factories import day, listing, pt, review

PRICES = [10, 12, 11, 13, 9, 10, 14, 15, 12, 11]  # days 0..9


def test_empty_history_gives_none_everywhere_not_zero() -> None:
    k = compute_kpis([])
    assert k.as_of is None and k.observed_on is None and k.observations == 0
    assert k.price.current is None
    assert all(v is None for v in k.price.windows.values())
    assert all(v is None for v in k.price.changes.values())
    assert k.price.is_lowest_in_90_days is None
    assert k.bsr.current is None and k.bsr.median_7d is None and k.bsr.trend is None
    assert k.reviews.count is None and all(v is None for v in k.reviews.velocity.values())
    assert k.reviews.share_1_2_star is None and k.reviews.rating_change_30d is None
    assert k.offers.buybox_share_30d is None
    assert k.availability.oos_pct_30d is None and k.availability.oos_pct_90d is None
    assert k.sales is None
    assert k.listing_quality.score is None
    json.dumps(k.to_dict())


def test_one_point() -> None:
    k = compute_kpis(
        [pt(0, "20.00", in_stock=True, bsr=10_000, bsr_category="Kitchen")],
        settings=KpiSettings(own_seller_ids=frozenset({"S1"})),
    )
    assert k.as_of == day(0) and k.observations == 1
    assert k.price.current == 20.0
    w7 = k.price.windows["7d"]
    assert w7 is not None and (w7.min, w7.max, w7.avg, w7.observations) == (20.0, 20.0, 20.0, 1)
    assert all(v is None for v in k.price.changes.values())
    # One observation is trivially the lowest: no verdict.
    assert k.price.is_lowest_in_90_days is None
    # A real validated in-stock observation: 0 % out of stock is data, not a default.
    assert k.availability.oos_pct_30d == 0.0 and k.availability.observations_30d == 1
    # The one observation had no buy-box seller: we did not hold it.
    assert k.offers.buybox_share_30d == 0.0
    assert k.bsr.trend is None and k.bsr.rank_drops_30d is None
    assert k.bsr.median_7d == 10_000


def test_price_windows_and_changes_hand_computed() -> None:
    history = [pt(i, p) for i, p in enumerate(PRICES)]
    k = compute_kpis(history)
    assert k.as_of == day(9) and k.price.current == 11.0
    w7, w30 = k.price.windows["7d"], k.price.windows["30d"]
    # 7d = days 3..9 = 13,9,10,14,15,12,11: min 9, max 15, avg 84/7 = 12.0
    assert w7 is not None and (w7.min, w7.max, w7.avg, w7.observations) == (9.0, 15.0, 12.0, 7)
    # 30d = all ten: sum 117 -> avg 11.7
    assert w30 is not None and (w30.min, w30.max, w30.avg, w30.observations) == (9, 15, 11.7, 10)
    c1, c7 = k.price.changes["1d"], k.price.changes["7d"]
    # 1d: reference day 8 (12) -> 11: -1.00, -1/12 = -8.33 %
    assert c1 is not None and (c1.since, c1.old, c1.new, c1.abs, c1.pct) == (
        day(8),
        12.0,
        11.0,
        -1.0,
        -8.33,
    )
    # 7d: reference window [day -5, day 2] -> day 2 (11) -> 0 change
    assert c7 is not None and (c7.since, c7.abs, c7.pct) == (day(2), 0.0, 0.0)
    # 30d: nothing in [day -51, day -21]
    assert k.price.changes["30d"] is None
    assert k.price.is_lowest_in_90_days is False


def test_is_lowest_in_90_days_true_and_missing_prices_ignored() -> None:
    history = [pt(0, 10), pt(1, None), pt(2, 9), pt(3, "8.50")]
    k = compute_kpis(history)
    assert k.price.is_lowest_in_90_days is True
    w = k.price.windows["90d"]
    # (10 + 9 + 8.5) / 3 = 9.1666.. -> 9.17; the None day does not count.
    assert w is not None and w.observations == 3 and w.avg == 9.17


def test_thirty_day_change_and_bounded_reference() -> None:
    history = [pt(i, 100) for i in range(39)] + [pt(39, 90)]
    k = compute_kpis(history)
    c30 = k.price.changes["30d"]
    # as_of day 39, reference window [day -21, day 9] -> day 9 at 100: -10 (-10 %)
    assert c30 is not None and c30.since == day(9) and (c30.abs, c30.pct) == (-10.0, -10.0)
    # A gap: the 1-day change never reaches back further than 2 days.
    k2 = compute_kpis([pt(0, 100), pt(5, 90)])
    assert k2.price.changes["1d"] is None


def test_unvalidated_and_duplicate_day_points() -> None:
    good = pt(1, 20)
    later_block_page = MetricPoint(
        date=day(1),
        observed_at=datetime.combine(day(1), time(12), tzinfo=UTC),
        buybox_price=Decimal("1.00"),
        in_stock=False,
        validated=False,
    )
    later_good = pt(1, 21, observed_at=datetime.combine(day(1), time(18), tzinfo=UTC))
    series = daily_series([later_good, later_block_page, good])
    assert series == [later_good]
    k = compute_kpis([pt(0, 19), good, later_block_page])
    assert k.price.current == 20.0  # the block page's 1.00 never counts


def test_as_of_cuts_the_history() -> None:
    history = [pt(i, p) for i, p in enumerate(PRICES)]
    k = compute_kpis(history, as_of=day(4))
    assert k.price.current == 9.0 and k.observations == 5


def test_bsr_medians_trend_and_drops() -> None:
    ranks = [100, 120, 90, 80, 110]
    history = [pt(i, 10, bsr=r, bsr_category="Kitchen") for i, r in enumerate(ranks)]
    history[-1] = pt(
        4,
        10,
        bsr=110,
        bsr_category="Kitchen",
        bsr_ranks=(CategoryRank("Kitchen", 110), CategoryRank("Water Bottles", 7)),
    )
    k = compute_kpis(history)
    assert k.bsr.current == 110 and k.bsr.category == "Kitchen"
    assert [(c.category, c.rank) for c in k.bsr.per_category] == [
        ("Kitchen", 110),
        ("Water Bottles", 7),
    ]
    # sorted 80,90,100,110,120 -> median 100 for both windows
    assert k.bsr.median_7d == 100 and k.bsr.median_30d == 100
    # x = -4..0 (mean -2), y - 100 = 0,20,-10,-20,10: sum xy = -20, sxx = 10 -> slope -2
    assert k.bsr.trend is not None
    assert k.bsr.trend.slope_per_day == -2.0 and k.bsr.trend.direction == "improving"
    assert k.bsr.trend.pct_change_7d_vs_30d == 0.0
    # improvements: 120->90, 90->80
    assert k.bsr.rank_drops_30d == 2


def test_bsr_ignores_other_categories() -> None:
    history = [
        pt(0, 10, bsr=5, bsr_category="Home"),
        pt(1, 10, bsr=200, bsr_category="Kitchen"),
        pt(2, 10, bsr=300, bsr_category="Kitchen"),
    ]
    k = compute_kpis(history)
    assert k.bsr.median_7d == 250  # (200 + 300) / 2, the Home rank 5 excluded
    assert k.bsr.trend is None  # only 2 points in the category


def test_review_velocity_from_count_deltas_and_rating_change() -> None:
    def count(d: int) -> int:
        return 100 if d <= 20 else 100 + 3 * (d - 20)

    history = [
        pt(d, 10, review_count=count(d), rating="4.6" if d < 30 else "4.4") for d in range(31)
    ]
    k = compute_kpis(history)
    v7, v30 = k.reviews.velocity["7d"], k.reviews.velocity["30d"]
    # 7d: day 23 had 109, day 30 has 130 -> 21 / 7 = 3.0 per day
    assert v7 == Velocity(per_day=3.0, method="review_count_delta", days=7)
    # 30d: day 0 had 100 -> 30 / 30 = 1.0 per day
    assert v30 == Velocity(per_day=1.0, method="review_count_delta", days=30)
    assert k.reviews.count == 130 and k.reviews.rating == 4.4
    ch = k.reviews.rating_change_30d
    # 4.4 - 4.6 = -0.2; -0.2 / 4.6 = -4.35 %
    assert ch is not None and ch.abs == -0.2 and ch.pct == -4.35


def test_review_velocity_from_review_dates_when_no_counts() -> None:
    reviews = [review(10, 5), review(9, 4), review(4, 1), review(2, 2)]
    k = compute_kpis([pt(10, 10)], reviews=reviews)
    # 7d window = days 4..10 -> 3 reviews / 7 = 0.4286; 30d -> 4 / 30 = 0.1333
    assert k.reviews.velocity["7d"] == Velocity(0.4286, "review_dates", 7)
    assert k.reviews.velocity["30d"] == Velocity(0.1333, "review_dates", 30)
    share = k.reviews.share_1_2_star
    # 2 of 4 sampled reviews are 1-2 stars
    assert share is not None and (share.share, share.method, share.sample_size) == (
        0.5,
        "reviews_sample",
        4,
    )


def test_share_of_low_stars_from_breakdown() -> None:
    assert low_star_share_from_breakdown({"5": 60, "4": 20, "3": 10, "2": 5, "1": 5}) == 0.1
    assert low_star_share_from_breakdown({"5_star": 0.7, "1_star": 0.3}) == 0.3
    # the normaliser's format: "<n>star" -> fraction; 0.05 + 0.03 = 0.08
    ingested = {"5star": 0.7, "4star": 0.15, "3star": 0.07, "2star": 0.05, "1star": 0.03}
    assert low_star_share_from_breakdown(ingested) == 0.08
    assert low_star_share_from_breakdown({}) is None
    assert low_star_share_from_breakdown({"weird": 3.0}) is None
    k = compute_kpis([pt(0, 10, stars_breakdown={"5": 80, "1": 10, "2": 10})])
    assert k.reviews.share_1_2_star is not None
    assert (k.reviews.share_1_2_star.share, k.reviews.share_1_2_star.method) == (
        0.2,
        "stars_breakdown",
    )


def test_buybox_share_with_allow_list() -> None:
    sellers = ["S1", "S1", "X", None]
    history = [pt(i, 10, buybox_seller_id=s) for i, s in enumerate(sellers)]
    own = KpiSettings(own_seller_ids=frozenset({"S1"}))
    k = compute_kpis(history, settings=own)
    # held 2 of 4 observations
    assert k.offers.buybox_share_30d == 0.5 and k.offers.buybox_observations_30d == 4
    assert compute_kpis(history).offers.buybox_share_30d is None  # no own ids: unknown


def test_out_of_stock_pct_counts_only_validated_known_flags() -> None:
    flags = [True, True, False, True, None, True, False, True, True, True]
    history = [pt(i, 10, in_stock=f) for i, f in enumerate(flags)]
    history.append(
        MetricPoint(date=day(10), in_stock=False, validated=False, buybox_price=Decimal(1))
    )
    history.append(pt(40, 10, in_stock=True))  # day 40: outside the 30d window of day 9
    k = compute_kpis(history, as_of=day(9))
    # 2 out of 9 known flags (the None and the unvalidated point are ignored): 22.22 %
    assert k.availability.oos_pct_30d == 22.22 and k.availability.observations_30d == 9
    assert k.availability.oos_pct_90d == 22.22
    k_all = compute_kpis(history)
    # as_of day 40: 30d window (days 11..40) holds only day 40; 90d holds all 10
    assert k_all.availability.oos_pct_30d == 0.0 and k_all.availability.observations_30d == 1
    assert k_all.availability.oos_pct_90d == 20.0  # 2 / 10


def test_sales_estimate_methods_and_errors() -> None:
    mpv = estimate_monthly_sales(pt(0, 10, monthly_purchase_volume=1000, bsr=5))
    assert mpv is not None and mpv.method == "monthly_purchase_volume"
    assert (mpv.monthly_units, mpv.low, mpv.high) == (1000, 1000, None)
    assert "floor" in mpv.expected_error
    curve = KpiSettings(
        sales_curves={"Kitchen": SalesCurve(a=10_000, b=1.0, expected_error_pct=50)}
    )
    est = estimate_monthly_sales(pt(0, 10, bsr=100, bsr_category="Kitchen"), None, curve)
    # 10000 * 100^-1 = 100 units, ±50 % -> 50..150
    assert est is not None and (est.monthly_units, est.low, est.high) == (100, 50, 150)
    assert est.method == "bsr_curve" and est.expected_error == "±50%"
    assert est.basis["generic_curve"] is False
    generic = estimate_monthly_sales(pt(0, 10, bsr=10_000, bsr_category="Toys"))
    # 50000 * 10000^-0.75 = 50000 / 1000 = 50 units, ±100 % -> 0..100
    assert generic is not None and (generic.monthly_units, generic.low, generic.high) == (
        50,
        0,
        100,
    )
    assert generic.expected_error == "±100%" and generic.basis["generic_curve"] is True
    vel = estimate_monthly_sales(pt(0, 10), Velocity(1.0, "review_count_delta", 30))
    # 1 review/day * 30 / 0.02 = 1500 units, ±60 % -> 600..2400
    assert vel is not None and vel.method == "review_velocity"
    assert (vel.monthly_units, vel.low, vel.high) == (1500, 600, 2400)
    assert estimate_monthly_sales(pt(0, 10)) is None
    assert estimate_monthly_sales(None) is None


def test_listing_quality_full_marks() -> None:
    q = listing_quality(listing())
    assert q.score == 100 and q.missing == ()
    assert {p.name: p.points for p in q.parts} == {
        "title_length": 20,
        "title_compliance": 10,
        "bullets_count": 15,
        "bullets_content": 5,
        "images": 20,
        "aplus": 15,
        "description": 15,
    }


def test_listing_quality_poor_listing_hand_computed() -> None:
    title = "Best Seller steel bottle! steel cup steel lid " + "x" * 80  # 126 chars
    content = listing(
        title=title,
        bullets=("Great 👍", "Cold", "Light"),
        images=("a", "b", "c"),
        aplus=None,
        description="d" * 400,
    )
    q = listing_quality(content)
    parts = {p.name: p.points for p in q.parts}
    # title 126 chars: 15 (over 80); compliance 10 - 4 (!) - 3 (promo) - 3 (steel x3) = 0
    # bullets 3*3 = 9; content 0 (emoji); images 20*3/6 = 10; A+ 0; description 15*400/1000 = 6
    assert parts == {
        "title_length": 15,
        "title_compliance": 0,
        "bullets_count": 9,
        "bullets_content": 0,
        "images": 10,
        "aplus": 0,
        "description": 6,
    }
    assert q.score == 40  # 15 + 0 + 9 + 0 + 10 + 0 + 6


def test_listing_quality_without_content_is_partial() -> None:
    q = listing_quality(None, pt(0, 10, image_count=6, bullet_count=5, has_aplus=True))
    assert q.score is None
    assert set(q.missing) == {"title_length", "title_compliance", "bullets_content", "description"}
    assert {p.name: p.points for p in q.parts}["images"] == 20


def test_title_and_bullet_checks() -> None:
    assert forbidden_title_chars("Bottle! {New} ^ $5 ? a_b ¬ ¦") == list("!$?_{}^¬¦")
    assert forbidden_title_chars("Clean title, 750 ml") == []
    assert promotional_phrases("Hot Sale: FREE SHIPPING bottle") == ["free shipping", "hot sale"]
    assert promotional_phrases("Wholesale bottle") == []
    assert repeated_title_words("Bottle for Kids for School for Sports with Lid with Straw") == {}
    assert repeated_title_words("Steel Bottle steel lid STEEL cup") == {"steel": 3}
    assert bullet_issues("Keeps drinks cold for 24 hours") == []
    assert bullet_issues("Great bottle 😀") == ["emoji"]
    assert bullet_issues("Acme™ quality") == ["trademark_symbol"]
    assert bullet_issues("Capacity: N/A") == ["placeholder"]
    assert bullet_issues("Colour TBD") == ["placeholder"]
    assert bullet_issues("Lifetime guarantee") == ["guarantee"]
    assert bullet_issues("See www.acme.com") == ["url"]
    assert bullet_issues("Call 555-123-4567") == ["phone"]


def test_point_from_row_and_bad_rows() -> None:
    row = {
        "marketplace": "amazon.com",
        "asin": "B000TEST01",
        "date": "2026-01-02",
        "observed_at": "2026-01-02T06:00:00+00:00",
        "buybox_price": Decimal("19.99"),
        "list_price": 24.99,
        "in_stock": True,
        "bsr": 1200,
        "bsr_ranks": [{"category": "Kitchen", "rank": 1200}],
        "rating": "4.5",
        "title_fp": "abc",
        "images_fp": "def",
        "stars_breakdown": {"5": 70, "1": 30},
        "run_id": None,
    }
    p = point_from_row(row)
    assert p.date == day(1) and p.buybox_price == Decimal("19.99")
    assert p.list_price == Decimal("24.99") and p.rating == Decimal("4.5")
    assert p.fingerprints == {"title": "abc", "images": "def"}
    assert p.bsr_ranks == (CategoryRank("Kitchen", 1200),) and p.validated is True
    with pytest.raises(MetricRowError, match="buybox_price"):
        point_from_row({**row, "buybox_price": "cheap"})
    with pytest.raises(MetricRowError, match="in_stock"):
        point_from_row({**row, "in_stock": "yes"})
    with pytest.raises(MetricRowError, match="bsr"):
        point_from_row({**row, "bsr": 12.5})
    with pytest.raises(MetricRowError, match="date"):
        point_from_row({"buybox_price": 1})
    rows = [{**row, "buybox_price": 1}, {**row, "date": "2026-01-01", "buybox_price": 2}]
    assert [p.buybox_price for p in points_from_rows(rows)] == [Decimal(2), Decimal(1)]


@given(
    st.lists(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2),
        min_size=1,
        max_size=40,
    )
)
def test_property_price_window_min_le_avg_le_max(prices: list[Decimal]) -> None:
    k = compute_kpis([pt(i, p) for i, p in enumerate(prices)])
    for w in k.price.windows.values():
        if w is not None:
            # avg is rounded to cents, the bounds are exact cents: the order still holds
            assert w.min <= w.avg <= w.max
    json.dumps(k.to_dict())

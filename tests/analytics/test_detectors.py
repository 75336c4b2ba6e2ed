"""Alert detectors on hand-computed series: each rule firing, staying quiet and recovering."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asinwatch.alerts.detectors import (
    ALERT_TYPES,
    DETECTORS,
    CompetitorPrice,
    DetectionContext,
    Finding,
    ThresholdError,
    Thresholds,
    apply_overrides,
    detect,
    is_outlier,
    prior_observations,
    rolling_baseline,
    with_overrides,
)
from asinwatch.alerts.rules.availability import (
    detect_out_of_stock,
    detect_suppressed,
    detect_tracking_stale,
)
from asinwatch.alerts.rules.buybox import detect_buybox_seller_change, detect_hijacker
from asinwatch.alerts.rules.listing import detect_listing_changed
from asinwatch.alerts.rules.price import detect_competitor_undercut, detect_price_change
from asinwatch.alerts.rules.rank import detect_bsr_move
from asinwatch.alerts.rules.ratings import detect_negative_review_spike, detect_rating_drop
from asinwatch.alerts.rules.thresholds import (
    BsrMoveThresholds,
    OutOfStockThresholds,
)
from asinwatch.metrics.series import MetricPoint
from tests.analytics.factories import day, listing, pt, review

T = Thresholds()


def _price(history: list[float], now: float, **overrides: object) -> Finding | None:
    params = (
        with_overrides(T, "price_change", overrides).price_change if overrides else T.price_change
    )
    points = [pt(i, p) for i, p in enumerate(history)]
    return detect_price_change(points, pt(len(history), now), params)


# ---------------------------------------------------------------------------- robust stats


def test_rolling_baseline_and_outlier_hand_computed() -> None:
    values = [10, 12, 11, 13, 50]
    b = rolling_baseline(values, window=5, min_history=3)
    # median 12; |v - 12| = 2,0,1,1,38 -> MAD 1
    assert b is not None and (b.median, b.mad, b.n) == (12, 1, 5)
    # z of 15 = 3 / (1.4826 * 1) = 2.02
    assert round(b.robust_z(15), 2) == 2.02
    assert is_outlier(values, 15, window=5, min_history=3, z=3.5) is False
    assert is_outlier(values, 20, window=5, min_history=3, z=3.5) is True  # 8/1.4826 = 5.4
    # below the minimum history the detector stays silent (None, not False)
    assert rolling_baseline([10, 12], window=5, min_history=3) is None
    assert is_outlier([10, 12], 100, window=5, min_history=3, z=3.5) is None
    # the window keeps only the last values
    assert rolling_baseline([1000, 1, 1, 1], window=3, min_history=3) is not None
    assert rolling_baseline([1000, 1, 1, 1], window=3, min_history=3).median == 1  # type: ignore[union-attr]
    flat = rolling_baseline([5, 5, 5], window=3, min_history=3)
    assert flat is not None and flat.robust_z(5) == 0 and math.isinf(flat.robust_z(6))


@given(
    st.floats(min_value=0.01, max_value=1e6, allow_nan=False),
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=1, max_value=30),
)
def test_property_mad_never_fires_on_constant_series(
    value: float, n: int, min_history: int
) -> None:
    verdict = is_outlier([value] * n, value, window=14, min_history=min_history, z=0.5)
    assert verdict is not True


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2),
    st.integers(min_value=0, max_value=30),
)
def test_property_price_change_never_fires_on_constant_prices(price: Decimal, n: int) -> None:
    history = [pt(i, price) for i in range(n)]
    finding = detect_price_change(history, pt(n, price), T.price_change)
    assert finding is None or finding.recovered


# ---------------------------------------------------------------------------- price change


def test_price_drop_vs_previous() -> None:
    f = _price([20.0], 18.0)
    # -2.00 on 20.00 = -10 % (>= 5 % and >= 0.50)
    assert f is not None and not f.recovered and f.severity == "warning"
    assert f.title == "Price dropped 10.00% (20.00 → 18.00 USD)"
    assert f.details["vs_previous"] == {"old": 20.0, "abs": -2.0, "pct": -10.0}
    assert f.details["triggers"] == ["vs_previous"] and f.details["direction"] == "drop"


def test_price_rise_vs_previous_and_critical() -> None:
    rise = _price([20.0], 22.0)
    assert rise is not None and rise.title.startswith("Price rose 10.00%")
    crit = _price([20.0], 15.0)  # -25 % >= critical 20 %
    assert crit is not None and crit.severity == "critical"


def test_small_change_recovers_not_fires() -> None:
    f = _price([20.0], 19.5)  # -2.5 %, below 5 %
    assert f is not None and f.recovered and f.alert_type == "price_change"


def test_pct_and_absolute_thresholds() -> None:
    # 1.00 -> 0.90: 10 % but only 0.10: with both required, a cheap-item nudge is noise
    assert _price([1.0], 0.9).recovered  # type: ignore[union-attr]
    either = _price([1.0], 0.9, require_both=False)
    assert either is not None and not either.recovered
    # absolute only: 100 -> 98.50 is 1.5 % but 1.50 >= 1.00
    abs_only = _price([100.0], 98.5, min_pct=None, min_abs=1.0)
    assert abs_only is not None and not abs_only.recovered
    assert _price([100.0], 99.5, min_pct=None, min_abs=1.0).recovered  # type: ignore[union-attr]


def test_direction_filter() -> None:
    assert _price([20.0], 22.0, direction="drop").recovered  # type: ignore[union-attr]
    f = _price([20.0], 18.0, direction="drop")
    assert f is not None and not f.recovered
    assert _price([20.0], 18.0, direction="rise").recovered  # type: ignore[union-attr]


def test_price_change_vs_rolling_median() -> None:
    # previous 17.50 = now (no change vs previous); median of the 6 = 20: -12.5 %, MAD 0
    f = _price([20, 20, 20, 20, 20, 17.5], 17.5)
    assert f is not None and not f.recovered
    assert f.details["triggers"] == ["vs_median"]
    assert f.details["vs_median"]["median"] == 20 and f.details["vs_median"]["pct"] == -12.5
    assert f.title == "Price dropped 12.50% vs the rolling median (20.00 → 17.50 USD)"


def test_price_change_silent_with_short_or_no_history() -> None:
    assert _price([], 10.0) is None
    # 4 prices < min_history 5: no median test at all
    f = _price([20, 20, 20, 17.5], 17.5)
    assert f is not None and f.recovered and "vs_median" not in f.details
    assert detect_price_change([pt(0, 20)], pt(1, None), T.price_change) is None


# ---------------------------------------------------------------------------- stock


def test_out_of_stock_and_back_in_stock() -> None:
    f = detect_out_of_stock([pt(0, 10, in_stock=True)], pt(1, 10, in_stock=False), T.out_of_stock)
    assert f is not None and f.title == "Out of stock" and f.severity == "critical"
    assert f.kind == "condition" and not f.recovered
    back = detect_out_of_stock(
        [pt(0, 10, in_stock=False)], pt(1, 10, in_stock=True), T.out_of_stock
    )
    assert back is not None and back.recovered and back.title == "Back in stock"
    assert detect_out_of_stock([], pt(0, 10, in_stock=None), T.out_of_stock) is None


def test_flapping_stock_needs_validated_confirmation() -> None:
    params = OutOfStockThresholds(confirm_runs=2)
    blocked = MetricPoint(date=day(1), in_stock=False, validated=False)
    history = [pt(0, 10, in_stock=True), blocked, pt(2, 10, in_stock=True)]
    ctx = DetectionContext(thresholds=with_overrides(T, "out_of_stock", {"confirm_runs": 2}))
    # first validated OOS: not yet confirmed (the unvalidated OOS does not count)
    first = pt(3, 10, in_stock=False)
    assert detect_out_of_stock(prior_observations(history, first), first, params) is None
    assert [f.alert_type for f in detect(history, first, ctx)].count("out_of_stock") == 0
    # second validated OOS in a row: confirmed
    second = pt(4, 10, in_stock=False)
    found = {f.alert_type: f for f in detect([*history, first], second, ctx)}
    assert found["out_of_stock"].details["consecutive_checks"] == 2
    # an unvalidated "in stock" (block page) never clears it
    fake = MetricPoint(date=day(5), in_stock=True, validated=False)
    blocked_run = replace(ctx, invalid_runs=1)  # this run had no valid observation
    assert detect([*history, first, second], fake, blocked_run) == []


def test_suppressed_needs_consecutive_checks() -> None:
    dead = {"buybox_seller_id": None}
    ok = pt(0, 10, buybox_seller_id="S1")
    one = detect_suppressed([ok], pt(1, None, **dead), T.suppressed)
    assert one is None  # 1 < 2 checks
    two = detect_suppressed([ok, pt(1, None, **dead)], pt(2, None, **dead), T.suppressed)
    assert two is not None and two.severity == "critical" and two.details["consecutive_checks"] == 2
    back = detect_suppressed([pt(1, None), pt(2, None)], pt(3, 10), T.suppressed)
    assert back is not None and back.recovered
    # a price without a seller is still buyable
    assert detect_suppressed(
        [pt(1, None)], pt(2, None, buybox_seller_id="S1"), T.suppressed
    ).recovered  # type: ignore[union-attr]


def test_tracking_stale() -> None:
    assert detect_tracking_stale(1, T.tracking_stale) is None
    warn = detect_tracking_stale(3, T.tracking_stale)
    assert warn is not None and warn.severity == "warning" and warn.details["invalid_runs"] == 3
    crit = detect_tracking_stale(6, T.tracking_stale)
    assert crit is not None and crit.severity == "critical"
    ok = detect_tracking_stale(0, T.tracking_stale)
    assert ok is not None and ok.recovered
    # no valid observation this run: only tracking_stale speaks
    only = detect([pt(0, 10)], None, DetectionContext(invalid_runs=4))
    assert [f.alert_type for f in only] == ["tracking_stale"] and not only[0].recovered


# ---------------------------------------------------------------------------- buy box


ALLOW = frozenset({"OWN1", "OWN2"})


def test_allow_listed_seller_change_is_info_and_no_hijacker() -> None:
    prev = pt(0, 10, buybox_seller_id="OWN1", buybox_seller_name="Acme")
    cur = pt(1, 10, buybox_seller_id="OWN2", buybox_seller_name="Acme FBM")
    change = detect_buybox_seller_change([prev], cur, T.buybox_seller_change, ALLOW)
    assert change is not None and change.severity == "info"
    assert change.title == "Buy-box seller changed: “Acme” (OWN1) → “Acme FBM” (OWN2)"
    hijack = detect_hijacker(cur, ALLOW, T.hijacker)
    assert hijack is not None and hijack.recovered


def test_hijacker_takes_the_buy_box() -> None:
    prev = pt(0, 10, buybox_seller_id="OWN1", buybox_seller_name="Acme")
    cur = pt(1, "9.49", buybox_seller_id="HJ9", buybox_seller_name="Cheap Co", offer_count=3)
    found = {f.alert_type: f for f in detect([prev], cur, DetectionContext(seller_allowlist=ALLOW))}
    assert found["buybox_seller_change"].severity == "warning"
    h = found["hijacker"]
    assert h.severity == "critical" and not h.recovered and h.kind == "condition"
    assert h.title == "Hijacker on the buy box: “Cheap Co” (HJ9) at 9.49 USD"
    assert h.details["offer_count"] == 3 and h.details["allowlist"] == ["OWN1", "OWN2"]
    json.dumps(h.to_dict())  # Decimal price becomes a float


def test_buy_box_lost_and_unchanged() -> None:
    prev = pt(0, 10, buybox_seller_id="OWN1")
    lost = detect_buybox_seller_change([prev], pt(1, None), T.buybox_seller_change)
    assert lost is not None and lost.title.startswith("Buy box lost")
    ignored = with_overrides(T, "buybox_seller_change", {"include_lost": False})
    assert detect_buybox_seller_change([prev], pt(1, None), ignored.buybox_seller_change) is None
    same = detect_buybox_seller_change(
        [prev], pt(1, 10, buybox_seller_id="OWN1"), T.buybox_seller_change
    )
    assert same is not None and same.recovered
    assert detect_buybox_seller_change([], prev, T.buybox_seller_change) is None
    # no allow-list or no seller: the hijacker rule cannot tell
    assert detect_hijacker(pt(1, 10, buybox_seller_id="X"), frozenset(), T.hijacker) is None
    assert detect_hijacker(pt(1, None), ALLOW, T.hijacker) is None


# ---------------------------------------------------------------------------- listing


def test_listing_changed_reports_fields_and_diff() -> None:
    old = listing()
    new = listing(
        title="Acme Steel Water Bottle 1 l, Leak Proof",
        bullets=(*old.bullets[:4], "Hand wash only"),
        images=("new-main.jpg", *old.images[1:]),
    )
    f = detect_listing_changed(old, new, T.listing_changed)
    assert f is not None and f.severity == "warning" and f.kind == "event"
    assert f.details["fields"] == ["title", "bullets", "images"]
    assert f.title == "Listing changed: title, bullets, images"
    title = f.details["changes"]["title"]
    assert title["old"] == old.title and title["new"] == new.title
    assert f"-{old.title}" in title["diff"] and f"+{new.title}" in title["diff"]
    bullets = f.details["changes"]["bullets"]
    assert "-Dishwasher-safe lid; hand wash the bottle" in bullets["diff"]
    assert "+Hand wash only" in bullets["diff"] and bullets["added"] == 1
    assert f.details["changes"]["images"]["main_image_changed"] is True


def test_listing_description_change_is_info_and_watch_fields_override() -> None:
    old = listing(description="First sentence. Second sentence.")
    new = listing(description="First sentence. Second sentence, reworded.")
    f = detect_listing_changed(old, new, T.listing_changed)
    assert f is not None and f.severity == "info" and f.details["fields"] == ["description"]
    assert "+Second sentence, reworded." in f.details["changes"]["description"]["diff"]
    only_bullets = with_overrides(T, "listing_changed", {"watch_fields": ["bullets"]})
    g = detect_listing_changed(old, new, only_bullets.listing_changed)
    assert g is not None and g.recovered
    assert detect_listing_changed(None, new, T.listing_changed) is None
    unchanged = detect_listing_changed(old, old, T.listing_changed)
    assert unchanged is not None and unchanged.recovered


def test_listing_diff_is_truncated() -> None:
    old = listing(bullets=tuple(f"b{i}" for i in range(50)))
    new = listing(bullets=tuple(f"c{i}" for i in range(50)))
    params = with_overrides(T, "listing_changed", {"max_diff_lines": 10}).listing_changed
    f = detect_listing_changed(old, new, params)
    assert f is not None
    diff = f.details["changes"]["bullets"]["diff"]
    assert len(diff) == 11 and diff[-1].endswith("more diff lines)")


# ---------------------------------------------------------------------------- BSR


def _bsr(history: list[int], now: int, **kw: object) -> Finding | None:
    params = BsrMoveThresholds(**kw) if kw else T.bsr_move  # type: ignore[arg-type]
    points = [pt(i, 10, bsr=r, bsr_category="Kitchen") for i, r in enumerate(history)]
    return detect_bsr_move(points, pt(len(history), 10, bsr=now, bsr_category="Kitchen"), params)


def test_bsr_move_vs_the_previous_check_by_default() -> None:
    assert (T.bsr_move.reference, T.bsr_move.top_n) == ("previous", None)
    worse = _bsr([1000] * 6, 1500)  # +50 % vs the previous 1000
    assert worse is not None and worse.severity == "warning"
    assert worse.details["triggers"] == ["worsened_vs_previous"]
    assert worse.details["pct_vs_previous"] == 50.0
    assert worse.title == "BSR worsened 50% vs the previous check (1000 → 1500) in “Kitchen”"
    better = _bsr([1000], 600)  # -40 %: one previous check is enough
    assert better is not None and better.severity == "info"
    assert better.details["triggers"] == ["improved_vs_previous"]
    # a slow drift: +25 % vs the previous check although +69 % vs the median (1000)
    drift = _bsr([1000, 1000, 1000, 1100, 1350], 1690)
    assert drift is not None and drift.recovered and drift.details["pct"] == 69.0
    # no top-N test unless the product sets one: 120 -> 90 is -25 %
    quiet = _bsr([120], 90)
    assert quiet is not None and quiet.recovered and quiet.details["triggers"] == []
    assert _bsr([], 5000) is None


def test_bsr_move_vs_median_both_ways() -> None:
    worse = _bsr([1000] * 6, 1500, reference="median")  # +50 % vs median 1000
    assert worse is not None and worse.severity == "warning" and worse.details["pct"] == 50.0
    assert worse.title == "BSR worsened 50% vs median (1000 → 1500) in “Kitchen”"
    better = _bsr([1000] * 6, 600, reference="median")  # -40 %
    assert better is not None and better.severity == "info"
    assert better.details["triggers"] == ["improved_vs_median"]
    steady = _bsr([1000] * 6, 1200, reference="median")  # +20 % < 30 %
    assert steady is not None and steady.recovered


def test_bsr_top_n_and_short_history() -> None:
    entered = _bsr([120], 90, reference="median", top_n=100)
    assert entered is not None and entered.details["triggers"] == ["entered_top_n"]
    assert entered.title == "Entered the top 100 in “Kitchen”"
    left = _bsr([90], 130, reference="median", top_n=100)
    assert (
        left is not None and left.severity == "warning" and "left the top 100" in left.title.lower()
    )
    # the median rule with a short history and no top-N crossing: silent
    assert _bsr([1000, 1000, 1000], 5000, reference="median", top_n=100) is None
    assert _bsr([1000, 1000, 1000], 5000, reference="median") is None
    assert _bsr([], 5000, reference="median", top_n=100) is None


# ---------------------------------------------------------------------------- ratings, reviews


def test_rating_drop() -> None:
    f = detect_rating_drop([pt(0, 10, rating="4.5")], pt(1, 10, rating="4.4"), T.rating_drop)
    assert f is not None and not f.recovered and f.details["drop"] == 0.1  # 4.5 - 4.4
    assert f.title == "Rating dropped 0.10 (4.50 → 4.40)"
    small = detect_rating_drop([pt(0, 10, rating="4.5")], pt(1, 10, rating="4.45"), T.rating_drop)
    assert small is not None and small.recovered
    floor = with_overrides(T, "rating_drop", {"floor": 4.3}).rating_drop
    below = detect_rating_drop([pt(0, 10, rating="4.2")], pt(1, 10, rating="4.2"), floor)
    assert below is not None and below.severity == "critical" and below.kind == "condition"
    assert detect_rating_drop([], pt(0, 10, rating="4.0"), T.rating_drop) is None


# market.md's rule: 1-2★ reviews in 7 days above 2 x the 90-day rate (now an override)
MARKET_MD_SPIKE = {
    "window_days": 7,
    "max_p_value": None,
    "baseline_coverage": "window",
    "min_baseline_days": 0,
}


def test_negative_review_spike_by_default() -> None:
    as_of = day(40)
    # reviews known since day 10 (the 5-star): 30 days of baseline before day 40, with three
    # 1-star reviews in it -> 0.1 a day is this product's normal
    base = [review(10, 5), review(10, 1), review(20, 1), review(30, 1)]
    today = [review(40, 1), review(40, 2), review(40, 1, review_id="R40-1b"), review(40, 5)]
    f = detect_negative_review_spike(base + today, as_of, T.negative_review_spike)
    assert f is not None and not f.recovered and f.details["count"] == 3
    assert f.details["expected"] == 0.1 and f.details["baseline_count"] == 3
    # P(X >= 3 | 0.1) = 1 - e^-0.1 (1 + 0.1 + 0.005)
    assert f.details["p_value"] == round(1 - math.exp(-0.1) * 1.105, 6)
    assert [r["review_id"] for r in f.details["reviews"]] == ["R40-1", "R40-1b", "R40-2"]
    two = detect_negative_review_spike(base + today[:2], as_of, T.negative_review_spike)
    assert two is not None and two.recovered  # 2 < min_count 3
    # yesterday's reviews are not today's window
    late = detect_negative_review_spike(base + today, day(41), T.negative_review_spike)
    assert late is not None and late.recovered and late.details["count"] == 0
    # reviews known for 10 days only: less than the 14 days of baseline needed, no verdict
    short = [review(30, 5), *today]
    assert detect_negative_review_spike(short, as_of, T.negative_review_spike) is None
    assert detect_negative_review_spike([], as_of, T.negative_review_spike) is None


def test_negative_reviews_at_normal_velocity_are_not_a_spike() -> None:
    # two 1-star reviews a day on days 10..39: 2.0 a day is normal for this product
    base = [review(n, 1, review_id=f"B{n}-{i}") for n in range(10, 40) for i in range(2)]
    four = [review(40, 1, review_id=f"T{i}") for i in range(4)]
    f = detect_negative_review_spike(base + four, day(40), T.negative_review_spike)
    # P(X >= 4 | 2) = 1 - e^-2 (1 + 2 + 2 + 4/3) = 0.142877 >= 0.01
    assert f is not None and f.recovered and f.details["expected"] == 2.0
    assert f.details["p_value"] == 0.142877
    eight = [review(40, 2, review_id=f"T{i}") for i in range(8)]
    g = detect_negative_review_spike(base + eight, day(40), T.negative_review_spike)
    tail = 1 - sum(math.exp(-2) * 2**k / math.factorial(k) for k in range(8))
    assert g is not None and not g.recovered and g.details["p_value"] == round(tail, 6)
    assert g.severity == "critical"  # 8 >= 2 x min_count


def test_negative_review_spike_market_md_rule() -> None:
    params = with_overrides(T, "negative_review_spike", MARKET_MD_SPIKE).negative_review_spike
    as_of = day(40)
    spike = [review(40, 1), review(38, 2), review(35, 1), review(36, 5)]
    f = detect_negative_review_spike(spike, as_of, params)
    # 3 reviews of 1-2 stars in days 34..40, no baseline: a spike (the 5-star is ignored)
    assert f is not None and not f.recovered and f.details["count"] == 3
    assert [r["review_id"] for r in f.details["reviews"]] == ["R35-1", "R38-2", "R40-1"]
    two = detect_negative_review_spike(spike[:2], as_of, params)
    assert two is not None and two.recovered
    # 45 low reviews in the 90 days before the window: 0.5/day -> 3.5 expected in 7 days;
    # 3 in the window is not above 3.5 x 2 = 7
    baseline = [review(33 - (i * 2) % 90, 1, review_id=f"B{i}") for i in range(45)]
    normal = detect_negative_review_spike(baseline + spike[:3], as_of, params)
    assert normal is not None and normal.recovered and normal.details["expected"] == 3.5


# ---------------------------------------------------------------------------- competitors


def test_competitor_undercut() -> None:
    comps = (
        CompetitorPrice("B0COMPA001", Decimal("18.00"), "USD", "Rival"),
        CompetitorPrice("B0COMPB001", Decimal("19.50"), "USD"),
        CompetitorPrice("B0COMPC001", None, "USD"),
        CompetitorPrice("B0COMPD001", Decimal("10.00"), "EUR"),
    )
    f = detect_competitor_undercut(pt(0, "20.00"), comps, T.competitor_undercut)
    # A: 2.00 below = 10 % >= 5 %; B: 2.5 % no; C no price; D other currency
    assert f is not None and not f.recovered
    assert f.title == "Competitor B0COMPA001 undercuts us by 10.00% (18.00 vs 20.00)"
    assert [u["asin"] for u in f.details["undercutters"]] == ["B0COMPA001"]
    assert f.details["compared"] == ["B0COMPA001", "B0COMPB001"]
    strict = with_overrides(T, "competitor_undercut", {"min_abs": 3.0}).competitor_undercut
    g = detect_competitor_undercut(pt(0, "20.00"), comps, strict)
    assert g is not None and g.recovered
    assert detect_competitor_undercut(pt(0, None), comps, T.competitor_undercut) is None
    assert detect_competitor_undercut(pt(0, 20), comps[2:3], T.competitor_undercut) is None


# ---------------------------------------------------------------------------- thresholds


def test_per_product_override_changes_the_verdict() -> None:
    assert not _price([20.0], 18.0).recovered  # type: ignore[union-attr]
    assert _price([20.0], 18.0, min_pct=15.0).recovered  # type: ignore[union-attr]
    merged = apply_overrides(T, {"price_change": {"min_pct": 15}, "tracking_stale": {"runs": 5}})
    assert merged.price_change.min_pct == 15.0 and merged.tracking_stale.runs == 5
    assert T.price_change.min_pct == 5.0  # the defaults are untouched


@pytest.mark.parametrize(
    ("alert_type", "overrides", "message"),
    [
        ("price_change", {"min_pct": 5, "treshold": 1}, "unknown threshold key(s) 'treshold'"),
        ("price_change", {"min_pct": "5"}, "min_pct: Input should be a valid number"),
        ("price_change", {"min_pct": True}, "min_pct"),
        ("price_change", {"direction": "up"}, "direction"),
        ("price_change", {"min_pct": None, "min_abs": None}, "at least one of min_pct"),
        ("tracking_stale", {"runs": 0}, "runs: Input should be greater than or equal to 1"),
        ("no_such_alert", {}, "unknown alert type 'no_such_alert'"),
    ],
)
def test_bad_overrides_raise_clear_errors(
    alert_type: str, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ThresholdError) as err:
        with_overrides(T, alert_type, overrides)
    assert message in str(err.value)
    if alert_type == "price_change" and "treshold" in overrides:
        assert "allowed: enabled, min_pct" in str(err.value)


def test_disabled_alert_type_is_not_run() -> None:
    ctx = DetectionContext(thresholds=with_overrides(T, "price_change", {"enabled": False}))
    found = [f.alert_type for f in detect([pt(0, 20)], pt(1, 10), ctx)]
    assert "price_change" not in found
    assert "price_change" in [f.alert_type for f in detect([pt(0, 20)], pt(1, 10))]


# ---------------------------------------------------------------------------- detect()


def test_detect_runs_every_rule_in_order() -> None:
    hist = [
        pt(i, 20, in_stock=True, buybox_seller_id="OWN1", bsr=1000, bsr_category="K", rating="4.5")
        for i in range(6)
    ]
    cur = pt(6, 15, in_stock=False, buybox_seller_id="HJ", bsr=2000, bsr_category="K", rating="4.3")
    ctx = DetectionContext(
        seller_allowlist=frozenset({"OWN1"}),
        competitor_prices=(CompetitorPrice("B0COMP0001", Decimal("12.00"), "USD"),),
        previous_listing=listing(),
        current_listing=listing(title="New title for the bottle"),
        # 16 days of quiet baseline (a 5-star on day -10), then three low-star reviews today
        recent_reviews=(review(-10, 5), review(6, 1), review(6, 2), review(6, 1, "R6-1b")),
        invalid_runs=0,
    )
    findings = detect(hist, cur, ctx)
    active = [f.alert_type for f in findings if not f.recovered]
    assert active == [
        "price_change",
        "out_of_stock",
        "buybox_seller_change",
        "hijacker",
        "listing_changed",
        "bsr_move",
        "rating_drop",
        "negative_review_spike",
        "competitor_undercut",
    ]
    recovered = [f.alert_type for f in findings if f.recovered]
    assert recovered == ["suppressed", "tracking_stale"]
    order = [ALERT_TYPES.index(f.alert_type) for f in findings]
    assert order == sorted(order)
    json.dumps([f.to_dict() for f in findings])


def test_prior_observations_drop_the_current_and_later_points() -> None:
    cur = pt(2, 10)
    history = [pt(0, 20), pt(1, 20), cur, pt(3, 5)]
    assert prior_observations(history, cur) == history[:2]
    # a current without observed_at compares by date
    bare = replace(cur, observed_at=None)
    assert prior_observations(history, bare) == history[:2]
    # an intra-day earlier observation of the same day is prior
    early = pt(2, 12, observed_at=datetime.combine(day(2), time(1), tzinfo=UTC))
    assert prior_observations([*history, early], cur)[-1] == early


def test_alert_types_and_thresholds_follow_the_detector_registry() -> None:
    # The API enums list this order (docs/openapi.json); it must not move.
    assert ALERT_TYPES == (
        "price_change",
        "out_of_stock",
        "buybox_seller_change",
        "hijacker",
        "listing_changed",
        "suppressed",
        "bsr_move",
        "rating_drop",
        "negative_review_spike",
        "competitor_undercut",
        "tracking_stale",
    )
    assert tuple(DETECTORS) == ALERT_TYPES == tuple(Thresholds.model_fields)
    defaults = Thresholds()
    for alert_type, detector in DETECTORS.items():
        assert type(defaults.for_type(alert_type)) is detector.params, alert_type


def test_a_disabled_type_is_not_run() -> None:
    off = with_overrides(Thresholds(), "tracking_stale", {"enabled": False})
    assert detect([], None, DetectionContext(invalid_runs=5)) != []
    assert detect([], None, DetectionContext(thresholds=off, invalid_runs=5)) == []

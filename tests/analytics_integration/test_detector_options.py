"""The detector semantics added while measuring alert accuracy (pure, no database):
out-of-stock is neither a buy-box change nor a suppression, BSR moves vs the previous check,
and the negative-review spike's Poisson test and observed baseline."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from asinwatch.alerts.rules.availability import detect_suppressed
from asinwatch.alerts.rules.buybox import detect_buybox_seller_change
from asinwatch.alerts.rules.rank import detect_bsr_move
from asinwatch.alerts.rules.ratings import detect_negative_review_spike, poisson_tail
from asinwatch.alerts.rules.thresholds import Thresholds, with_overrides
from asinwatch.ingestion.records import ReviewRecord
from asinwatch.metrics.series import MetricPoint

T = Thresholds()
D0 = date(2026, 1, 1)


def pt(n: int, price: float | None = 10.0, **kw: Any) -> MetricPoint:
    return MetricPoint(
        date=D0 + timedelta(days=n),
        observed_at=datetime.combine(D0 + timedelta(days=n), time(6), tzinfo=UTC),
        buybox_price=None if price is None else Decimal(str(price)),
        currency="USD",
        **kw,
    )


def oos(n: int) -> MetricPoint:
    return pt(n, None, in_stock=False)


def rv(n: int, rating: int, i: int) -> ReviewRecord:
    return ReviewRecord(
        "amazon.com", "B000TEST01", f"R{n}-{i}", rating, None, None,
        D0 + timedelta(days=n), True, False, None,
        datetime.combine(D0 + timedelta(days=n), time(6), tzinfo=UTC),
    )  # fmt: skip


def test_out_of_stock_is_not_a_buy_box_change() -> None:
    brand = pt(0, buybox_seller_id="BRAND", in_stock=True)
    assert detect_buybox_seller_change([brand], oos(1), T.buybox_seller_change) is None
    same = detect_buybox_seller_change(
        [brand, oos(1)], pt(2, buybox_seller_id="BRAND", in_stock=True), T.buybox_seller_change
    )
    assert same is not None and same.recovered  # a restock by the same seller: no change
    other = detect_buybox_seller_change(
        [brand, oos(1)], pt(2, buybox_seller_id="AMZN", in_stock=True), T.buybox_seller_change
    )
    assert other is not None and not other.recovered
    assert other.details["old_seller_id"] == "BRAND"  # the last seller seen, not "nobody"
    # in stock and nobody holds the buy box: still "buy box lost"
    lost = detect_buybox_seller_change([brand], pt(1, None, in_stock=True), T.buybox_seller_change)
    assert lost is not None and lost.title.startswith("Buy box lost")


def test_out_of_stock_is_not_suppression() -> None:
    assert detect_suppressed([oos(0), oos(1)], oos(2), T.suppressed) is None
    gone = pt(2, None, in_stock=True)
    found = detect_suppressed([pt(1, None, in_stock=True)], gone, T.suppressed)
    assert found is not None and not found.recovered and found.details["consecutive_checks"] == 2
    # an out-of-stock day breaks the not-buyable streak
    assert detect_suppressed([oos(0)], pt(1, None, in_stock=True), T.suppressed) is None


def test_bsr_move_vs_the_previous_check() -> None:
    prev = T.bsr_move  # the default: vs the previous check, no top-N test
    assert prev == with_overrides(T, "bsr_move", {"reference": "previous", "top_n": None}).bsr_move
    median = with_overrides(T, "bsr_move", {"reference": "median"}).bsr_move
    ranks = [1000, 1100, 1210, 1330, 1460, 1600]  # a slow drift: +60 % over the window
    history = [pt(i, bsr=r, bsr_category="K") for i, r in enumerate(ranks)]
    drift = pt(6, bsr=1700, bsr_category="K")
    assert detect_bsr_move(history, drift, median) is not None  # the median rule fires
    assert not detect_bsr_move(history, drift, median).recovered  # type: ignore[union-attr]
    quiet = detect_bsr_move(history, drift, prev)
    assert quiet is not None and quiet.recovered  # +6 % vs the previous check
    jump = detect_bsr_move(history[:2], pt(2, bsr=700, bsr_category="K"), prev)
    assert jump is not None and jump.details["triggers"] == ["improved_vs_previous"]
    assert jump.severity == "info" and "vs the previous check (1100 → 700)" in jump.title
    both = with_overrides(T, "bsr_move", {"reference": "both"}).bsr_move
    worse = detect_bsr_move(history, pt(6, bsr=2400, bsr_category="K"), both)
    assert worse is not None and worse.severity == "warning"
    assert worse.details["triggers"] == ["worsened_vs_median", "worsened_vs_previous"]


def test_poisson_tail() -> None:
    assert poisson_tail(0, 2.0) == 1.0 and poisson_tail(1, 0.0) == 0.0
    lam = 0.62
    expected = 1 - sum(math.exp(-lam) * lam**k / math.factorial(k) for k in range(3))
    assert math.isclose(poisson_tail(3, lam), expected, rel_tol=1e-12)


def test_spike_poisson_test_with_observed_baseline() -> None:
    day31 = D0 + timedelta(days=31)
    params = T.negative_review_spike  # the default: 1 day, p < 0.01, observed baseline
    assert (params.window_days, params.max_p_value, params.baseline_coverage) == (
        1,
        0.01,
        "observed",
    )
    # 30 days known, 2 low-star reviews every 3 days: 0.67/day is normal for this product
    base = [rv(n, 1, i) for n in range(1, 31) if n % 3 == 0 for i in range(2)]
    base += [rv(n, 5, 9) for n in range(1, 31)]
    normal = detect_negative_review_spike([*base, *(rv(31, 1, i) for i in range(3))], day31, params)
    assert normal is not None and normal.recovered
    assert normal.details["expected"] == 0.67 and normal.details["p_value"] > 0.01
    spike = detect_negative_review_spike([*base, *(rv(31, 2, i) for i in range(6))], day31, params)
    assert spike is not None and not spike.recovered and spike.details["p_value"] < 0.01
    # the same data with a 90-day coverage understates "normal" (0.22/day): 3 looks a spike
    window = with_overrides(
        T, "negative_review_spike", {"baseline_coverage": "window"}
    ).negative_review_spike
    naive = detect_negative_review_spike([*base, *(rv(31, 1, i) for i in range(3))], day31, window)
    assert naive is not None and not naive.recovered and naive.details["expected"] == 0.22
    # every review is in the window: no baseline at all, no verdict
    assert detect_negative_review_spike([rv(31, 1, i) for i in range(4)], day31, params) is None
    # too little baseline for a verdict: 30 days known, the product asks for 31
    strict = with_overrides(
        T, "negative_review_spike", {"min_baseline_days": 31}
    ).negative_review_spike
    assert (
        detect_negative_review_spike([*base, *(rv(31, 2, i) for i in range(6))], day31, strict)
        is None
    )
    # and by default 14 days: reviews known since day 21 (10 days) give no verdict either
    recent = [r for r in base if r.review_date and r.review_date > D0 + timedelta(days=20)]
    assert len({r.review_date for r in recent}) == 10
    assert (
        detect_negative_review_spike([*recent, *(rv(31, 2, i) for i in range(6))], day31, params)
        is None
    )

"""Availability detectors: out of stock / back in stock, suppressed (not buyable), stale."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from asinwatch.alerts.rules.base import Finding, Severity, recovery
from asinwatch.alerts.rules.thresholds import (
    OUT_OF_STOCK,
    SUPPRESSED,
    TRACKING_STALE,
    OutOfStockThresholds,
    SuppressedThresholds,
    TrackingStaleThresholds,
)
from asinwatch.metrics.series import MetricPoint


def _run_length(
    history: Sequence[MetricPoint], current: MetricPoint, pred: Callable[[MetricPoint], bool]
) -> int:
    """How many observations in a row, ending with `current`, satisfy `pred`."""
    count = 0
    for point in [*history, current][::-1]:
        if not pred(point):
            break
        count += 1
    return count


def detect_out_of_stock(
    history: Sequence[MetricPoint], current: MetricPoint, params: OutOfStockThresholds
) -> Finding | None:
    """Out of stock on `confirm_runs` validated observations in a row; back in stock clears it.

    Observations with an unknown stock flag are skipped (they neither confirm nor clear).
    """
    if current.in_stock is None:
        return None
    if current.in_stock:
        return recovery(OUT_OF_STOCK, "Back in stock", "condition", in_stock=True)
    known = [p for p in history if p.in_stock is not None]
    streak = _run_length(known, current, lambda p: p.in_stock is False)
    if streak < params.confirm_runs:
        return None
    return Finding(
        OUT_OF_STOCK,
        "critical",
        "Out of stock" + (f" ({streak} checks in a row)" if streak > 1 else ""),
        {"in_stock": False, "consecutive_checks": streak, "confirm_runs": params.confirm_runs},
        kind="condition",
    )


def _not_buyable(point: MetricPoint) -> bool:
    # Out of stock explains a missing price and buy box: that is the out-of-stock alert.
    return (
        point.buybox_price is None
        and point.buybox_seller_id is None
        and point.in_stock is not False
    )


def detect_suppressed(
    history: Sequence[MetricPoint], current: MetricPoint, params: SuppressedThresholds
) -> Finding | None:
    """No price and no buy-box seller for `consecutive_checks` validated checks in a row,
    while not out of stock (an out-of-stock listing gives no verdict here)."""
    if current.in_stock is False and current.buybox_price is None:
        return None
    if not _not_buyable(current):
        return recovery(SUPPRESSED, "Listing buyable again", "condition")
    streak = _run_length(history, current, _not_buyable)
    if streak < params.consecutive_checks:
        return None
    return Finding(
        SUPPRESSED,
        "critical",
        f"Listing suppressed or not buyable: no price and no buy box for {streak} checks",
        {"consecutive_checks": streak, "threshold": params.consecutive_checks},
        kind="condition",
    )


def detect_tracking_stale(invalid_runs: int, params: TrackingStaleThresholds) -> Finding | None:
    """No valid observation for `runs` runs in a row; a valid one (0 invalid runs) clears it."""
    if invalid_runs <= 0:
        return recovery(TRACKING_STALE, "Tracking recovered: valid data again", "condition")
    if invalid_runs < params.runs:
        return None
    severity: Severity = "critical" if invalid_runs >= 2 * params.runs else "warning"
    return Finding(
        TRACKING_STALE,
        severity,
        f"No valid data for {invalid_runs} runs (upstream blocked or ASIN gone?)",
        {"invalid_runs": invalid_runs, "threshold": params.runs},
        kind="condition",
    )

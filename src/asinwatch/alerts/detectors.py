"""Alert detection for one product and one observation (pure): `detect()` runs every rule.

Detectors live in `asinwatch.alerts.rules` by family; this module is the entry point and
re-exports the types callers need (`Finding`, `Thresholds`, `CompetitorPrice`, ...).

Only validated observations produce verdicts: with no current observation or an
unvalidated one, only `tracking_stale` speaks. The history is the product's earlier
validated observations (the window of the rolling detectors counts observations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from asinwatch.alerts.rules.availability import (
    detect_out_of_stock,
    detect_suppressed,
    detect_tracking_stale,
)
from asinwatch.alerts.rules.base import (
    Baseline,
    Finding,
    FindingKind,
    Severity,
    is_outlier,
    rolling_baseline,
)
from asinwatch.alerts.rules.buybox import detect_buybox_seller_change, detect_hijacker
from asinwatch.alerts.rules.listing import detect_listing_changed
from asinwatch.alerts.rules.price import (
    CompetitorPrice,
    detect_competitor_undercut,
    detect_price_change,
)
from asinwatch.alerts.rules.rank import detect_bsr_move
from asinwatch.alerts.rules.ratings import detect_negative_review_spike, detect_rating_drop
from asinwatch.alerts.rules.thresholds import (
    ALERT_TYPES,
    ThresholdError,
    Thresholds,
    apply_overrides,
    with_overrides,
)
from asinwatch.ingestion.records import ListingContent, ReviewRecord
from asinwatch.metrics.series import MetricPoint

__all__ = [
    "ALERT_TYPES",
    "Baseline",
    "CompetitorPrice",
    "DetectionContext",
    "Finding",
    "FindingKind",
    "Severity",
    "ThresholdError",
    "Thresholds",
    "apply_overrides",
    "detect",
    "is_outlier",
    "prior_observations",
    "rolling_baseline",
    "with_overrides",
]


@dataclass(frozen=True, slots=True)
class DetectionContext:
    """Everything besides the series that the detectors of one product need."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    seller_allowlist: frozenset[str] = frozenset()
    competitor_prices: tuple[CompetitorPrice, ...] = ()
    previous_listing: ListingContent | None = None
    current_listing: ListingContent | None = None
    recent_reviews: tuple[ReviewRecord, ...] = ()
    # Consecutive runs without a valid observation, this run included (products.invalid_runs).
    invalid_runs: int = 0


def _key(point: MetricPoint) -> tuple[int, float]:
    observed = point.observed_at
    if observed is None:
        return (point.date.toordinal(), float("-inf"))
    if observed.tzinfo is not None:
        observed = observed.replace(tzinfo=None) - (observed.utcoffset() or timedelta(0))
    return (point.date.toordinal(), (observed - datetime(1970, 1, 1)).total_seconds())


def prior_observations(history: Sequence[MetricPoint], current: MetricPoint) -> list[MetricPoint]:
    """The validated observations strictly before `current`, oldest first.

    A history that already holds the current observation (today's stored row) is fine:
    it is dropped here, so "previous" never means "itself".
    """
    cur = _key(current)
    points = [p for p in history if p.validated]
    if current.observed_at is None:
        points = [p for p in points if p.date < current.date]
    else:
        points = [p for p in points if _key(p) < cur and p.observed_at != current.observed_at]
    return sorted(points, key=_key)


def detect(
    history: Sequence[MetricPoint],
    current: MetricPoint | None,
    context: DetectionContext | None = None,
) -> list[Finding]:
    """Run every enabled detector; findings come in `ALERT_TYPES` order.

    Each alert type yields at most one Finding: active, recovered, or nothing (no verdict).
    """
    ctx = context or DetectionContext()
    t = ctx.thresholds
    results: list[Finding | None] = []
    if current is not None and current.validated:
        prior = prior_observations(history, current)
        if t.price_change.enabled:
            results.append(detect_price_change(prior, current, t.price_change))
        if t.out_of_stock.enabled:
            results.append(detect_out_of_stock(prior, current, t.out_of_stock))
        if t.buybox_seller_change.enabled:
            results.append(
                detect_buybox_seller_change(
                    prior, current, t.buybox_seller_change, ctx.seller_allowlist
                )
            )
        if t.hijacker.enabled:
            results.append(detect_hijacker(current, ctx.seller_allowlist, t.hijacker))
        if t.listing_changed.enabled:
            results.append(
                detect_listing_changed(ctx.previous_listing, ctx.current_listing, t.listing_changed)
            )
        if t.suppressed.enabled:
            results.append(detect_suppressed(prior, current, t.suppressed))
        if t.bsr_move.enabled:
            results.append(detect_bsr_move(prior, current, t.bsr_move))
        if t.rating_drop.enabled:
            results.append(detect_rating_drop(prior, current, t.rating_drop))
        if t.negative_review_spike.enabled:
            results.append(
                detect_negative_review_spike(
                    ctx.recent_reviews, current.date, t.negative_review_spike
                )
            )
        if t.competitor_undercut.enabled:
            results.append(
                detect_competitor_undercut(current, ctx.competitor_prices, t.competitor_undercut)
            )
    if t.tracking_stale.enabled:
        results.append(detect_tracking_stale(ctx.invalid_runs, t.tracking_stale))
    findings = [f for f in results if f is not None]
    order = {name: i for i, name in enumerate(ALERT_TYPES)}
    return sorted(findings, key=lambda f: order[f.alert_type])

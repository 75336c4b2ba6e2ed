"""Alert detection for one product and one observation (pure): `detect()` runs every rule.

Detectors live in `asinwatch.alerts.rules` by family; this module owns their registry
(`DETECTORS`, keyed by alert type: `ALERT_TYPES` is derived from it, and the `Thresholds`
model is checked against it at import), is the entry point, and re-exports the types
callers need (`Finding`, `Thresholds`, `CompetitorPrice`, ...).

Only validated observations produce verdicts: with no current observation or an
unvalidated one, only `tracking_stale` speaks. The history is the product's earlier
validated observations (the window of the rolling detectors counts observations).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

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
    BSR_MOVE,
    BUYBOX_SELLER_CHANGE,
    COMPETITOR_UNDERCUT,
    HIJACKER,
    LISTING_CHANGED,
    NEGATIVE_REVIEW_SPIKE,
    OUT_OF_STOCK,
    PRICE_CHANGE,
    RATING_DROP,
    SUPPRESSED,
    TRACKING_STALE,
    BsrMoveThresholds,
    BuyboxSellerChangeThresholds,
    CompetitorUndercutThresholds,
    HijackerThresholds,
    ListingChangedThresholds,
    NegativeReviewSpikeThresholds,
    OutOfStockThresholds,
    PriceChangeThresholds,
    RatingDropThresholds,
    SuppressedThresholds,
    ThresholdError,
    ThresholdParams,
    Thresholds,
    TrackingStaleThresholds,
    apply_overrides,
    with_overrides,
)
from asinwatch.ingestion.records import ListingContent, ReviewRecord
from asinwatch.metrics.series import MetricPoint

__all__ = [
    "ALERT_TYPES",
    "DETECTORS",
    "Baseline",
    "CompetitorPrice",
    "DetectionContext",
    "Detector",
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


@dataclass(frozen=True, slots=True)
class Detector:
    """One alert type's detector: its params model (a `Thresholds` field) and its rule.

    `run(prior, current, ctx, params)` gets `current` None (or unvalidated) only when the
    detector speaks without an observation (`tracking_stale`).
    """

    params: type[ThresholdParams]
    run: Callable[[list[MetricPoint], MetricPoint | None, DetectionContext, Any], Finding | None]


ObservationRule = Callable[[list[MetricPoint], MetricPoint, DetectionContext, Any], Finding | None]


def _on_observation(params: type[ThresholdParams], rule: ObservationRule) -> Detector:
    """A detector that speaks only on a validated current observation."""

    def run(
        prior: list[MetricPoint], current: MetricPoint | None, ctx: DetectionContext, p: Any
    ) -> Finding | None:
        if current is None or not current.validated:
            return None
        return rule(prior, current, ctx, p)

    return Detector(params, run)


# The registry, keyed by alert type, in the order findings (and the API enums) list them.
DETECTORS: dict[str, Detector] = {
    PRICE_CHANGE: _on_observation(
        PriceChangeThresholds, lambda prior, cur, ctx, p: detect_price_change(prior, cur, p)
    ),
    OUT_OF_STOCK: _on_observation(
        OutOfStockThresholds, lambda prior, cur, ctx, p: detect_out_of_stock(prior, cur, p)
    ),
    BUYBOX_SELLER_CHANGE: _on_observation(
        BuyboxSellerChangeThresholds,
        lambda prior, cur, ctx, p: detect_buybox_seller_change(prior, cur, p, ctx.seller_allowlist),
    ),
    HIJACKER: _on_observation(
        HijackerThresholds,
        lambda prior, cur, ctx, p: detect_hijacker(cur, ctx.seller_allowlist, p),
    ),
    LISTING_CHANGED: _on_observation(
        ListingChangedThresholds,
        lambda prior, cur, ctx, p: detect_listing_changed(
            ctx.previous_listing, ctx.current_listing, p
        ),
    ),
    SUPPRESSED: _on_observation(
        SuppressedThresholds, lambda prior, cur, ctx, p: detect_suppressed(prior, cur, p)
    ),
    BSR_MOVE: _on_observation(
        BsrMoveThresholds, lambda prior, cur, ctx, p: detect_bsr_move(prior, cur, p)
    ),
    RATING_DROP: _on_observation(
        RatingDropThresholds, lambda prior, cur, ctx, p: detect_rating_drop(prior, cur, p)
    ),
    NEGATIVE_REVIEW_SPIKE: _on_observation(
        NegativeReviewSpikeThresholds,
        lambda prior, cur, ctx, p: detect_negative_review_spike(ctx.recent_reviews, cur.date, p),
    ),
    COMPETITOR_UNDERCUT: _on_observation(
        CompetitorUndercutThresholds,
        lambda prior, cur, ctx, p: detect_competitor_undercut(cur, ctx.competitor_prices, p),
    ),
    TRACKING_STALE: Detector(
        TrackingStaleThresholds,
        lambda prior, cur, ctx, p: detect_tracking_stale(ctx.invalid_runs, p),
    ),
}

ALERT_TYPES: tuple[str, ...] = tuple(DETECTORS)


def _check_thresholds_model() -> None:
    """`Thresholds` has one field per registered alert type, in order, of its params model."""
    fields = {name: info.annotation for name, info in Thresholds.model_fields.items()}
    expected = {name: d.params for name, d in DETECTORS.items()}
    if list(fields.items()) != list(expected.items()):
        raise RuntimeError(
            f"Thresholds fields {fields} do not match the detector registry {expected}"
        )


_check_thresholds_model()


def detect(
    history: Sequence[MetricPoint],
    current: MetricPoint | None,
    context: DetectionContext | None = None,
) -> list[Finding]:
    """Run every enabled detector of `DETECTORS`; findings come in `ALERT_TYPES` order.

    Each alert type yields at most one Finding: active, recovered, or nothing (no verdict).
    """
    ctx = context or DetectionContext()
    prior = (
        prior_observations(history, current) if current is not None and current.validated else []
    )
    findings = []
    for alert_type, detector in DETECTORS.items():
        params = ctx.thresholds.for_type(alert_type)
        if params.enabled and (found := detector.run(prior, current, ctx, params)) is not None:
            findings.append(found)
    return findings

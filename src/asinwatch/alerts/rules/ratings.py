"""Rating and review detectors: rating drop / below floor, and a spike of negative reviews."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

from asinwatch.alerts.rules.base import EPSILON, Finding, Severity, ge, recovery
from asinwatch.alerts.rules.thresholds import (
    NEGATIVE_REVIEW_SPIKE,
    RATING_DROP,
    NegativeReviewSpikeThresholds,
    RatingDropThresholds,
)
from asinwatch.ingestion.records import ReviewRecord
from asinwatch.metrics.series import MetricPoint


def detect_rating_drop(
    history: Sequence[MetricPoint], current: MetricPoint, params: RatingDropThresholds
) -> Finding | None:
    """Rating fell >= min_drop vs the previous rating, or is below the per-ASIN floor."""
    if current.rating is None:
        return None
    now = float(current.rating)
    ratings = [float(p.rating) for p in history if p.rating is not None]
    previous = ratings[-1] if ratings else None
    # Ratings are shown to 0.1: round the drop so 4.5 -> 4.4 is exactly 0.1.
    drop = None if previous is None else round(previous - now, 4)
    dropped = drop is not None and ge(drop, params.min_drop)
    below = params.floor is not None and now < params.floor - EPSILON
    details = {
        "new": now,
        "old": previous,
        "drop": drop,
        "threshold_drop": params.min_drop,
        "floor": params.floor,
    }
    if not dropped and not below:
        if previous is None and params.floor is None:
            return None
        return recovery(RATING_DROP, "Rating steady", "event", **details)
    parts = []
    if dropped:
        parts.append(f"Rating dropped {drop:.2f} ({previous:.2f} → {now:.2f})")
    if below:
        parts.append(f"rating {now:.2f} is below the floor {params.floor:.2f}")
    title = "; ".join(parts)
    title = title[0].upper() + title[1:]
    severity: Severity = "critical" if below else "warning"
    return Finding(RATING_DROP, severity, title, details, kind="condition" if below else "event")


def poisson_tail(count: int, expected: float) -> float:
    """P(X >= count) for X ~ Poisson(expected): how unusual `count` is at the normal rate."""
    if count <= 0:
        return 1.0
    if expected <= 0:
        return 0.0
    term = math.exp(-expected)
    below = term
    for k in range(1, count):
        term *= expected / k
        below += term
    return max(0.0, 1.0 - below)


def _day(review: ReviewRecord) -> date:
    return review.review_date or review.observed_at.date()


def detect_negative_review_spike(
    reviews: Sequence[ReviewRecord], as_of: date, params: NegativeReviewSpikeThresholds
) -> Finding | None:
    """>= min_count low-star reviews in the window, and unusually many for this product.

    "Unusually many" is a Poisson tail below `max_p_value` (default) or, without it, more
    than baseline velocity x window x `baseline_factor`. The baseline is the low-star rate of
    the `baseline_days` before the window, or with "observed" coverage (default) of the part
    of them since the oldest review at hand. Silent without any reviews at hand, or with
    less observed baseline than `min_baseline_days`.
    """
    if not reviews:
        return None
    start = as_of - timedelta(days=params.window_days)
    base_start = start - timedelta(days=params.baseline_days)
    base_days = params.baseline_days
    if params.baseline_coverage == "observed":
        # Reviews are only known since the oldest one at hand: a rate over days without
        # data would understate "normal" and make every burst look like a spike.
        oldest = min(_day(r) for r in reviews) - timedelta(days=1)
        if oldest > base_start:
            base_start = oldest
            base_days = (start - base_start).days
        if base_days <= 0 or base_days < params.min_baseline_days:
            return None
    low = [r for r in reviews if r.rating <= params.max_stars]
    in_window = sorted(
        (r for r in low if start < _day(r) <= as_of), key=lambda r: (_day(r), r.review_id)
    )
    in_base = [r for r in low if base_start < _day(r) <= start]
    expected = len(in_base) / base_days * params.window_days
    count = len(in_window)
    details: dict[str, object] = {
        "count": count,
        "window_days": params.window_days,
        "max_stars": params.max_stars,
        "baseline_count": len(in_base),
        "baseline_days": params.baseline_days,
        "expected": round(expected, 2),
        "min_count": params.min_count,
        "baseline_factor": params.baseline_factor,
    }
    if params.max_p_value is not None:
        p_value = poisson_tail(count, expected)
        details.update(p_value=round(p_value, 6), max_p_value=params.max_p_value)
        normal = p_value >= params.max_p_value
    else:
        normal = count <= expected * params.baseline_factor + EPSILON
    if count < params.min_count or normal:
        return recovery(NEGATIVE_REVIEW_SPIKE, "No negative review spike", "event", **details)
    details["reviews"] = [
        {"review_id": r.review_id, "rating": r.rating, "date": _day(r), "title": r.title}
        for r in in_window
    ]
    severity: Severity = "critical" if count >= 2 * params.min_count else "warning"
    title = (
        f"{count} new {params.max_stars}★-or-lower reviews in {params.window_days} days "
        f"(normal ≈ {expected:.1f})"
    )
    return Finding(NEGATIVE_REVIEW_SPIKE, severity, title, details, kind="event")

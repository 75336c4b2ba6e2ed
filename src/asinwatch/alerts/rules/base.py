"""What every detector shares: the `Finding` it returns and robust rolling statistics.

A detector answers one of three things for its alert type on the current observation:
an active `Finding`, a `Finding` with ``recovered=True`` (the condition has cleared, so the
lifecycle can auto-resolve and re-arm), or None (no verdict: not enough data, or the data
cannot tell). Never a verdict from an unvalidated observation.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from asinwatch.metrics.kpis import to_jsonable

Severity = Literal["info", "warning", "critical"]
FindingKind = Literal["condition", "event"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

# Scale factor that makes the MAD a consistent estimator of the standard deviation.
MAD_SCALE = 1.4826
# Float tolerance for threshold comparisons (4.5 - 4.4 is 0.09999... in binary).
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Finding:
    """What a detector saw: an active problem/event, or that a condition has cleared.

    `kind` tells the lifecycle how to treat recovery: a "condition" (out of stock, hijacker,
    ...) notifies when it clears; an "event" (price change, listing change, ...) clears
    silently on the next quiet observation so the next event opens a new alert.
    """

    alert_type: str
    severity: Severity
    title: str
    details: dict[str, Any] = field(default_factory=dict)
    recovered: bool = False
    kind: FindingKind = "event"

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert_type": self.alert_type,
            "severity": self.severity,
            "title": self.title,
            "details": to_jsonable(self.details),
            "recovered": self.recovered,
            "kind": self.kind,
        }


def recovery(alert_type: str, title: str, kind: FindingKind, **details: Any) -> Finding:
    return Finding(alert_type, "info", title, dict(details), recovered=True, kind=kind)


@dataclass(frozen=True, slots=True)
class Baseline:
    """Median and MAD of the last `n` values of a series (the rolling reference)."""

    median: float
    mad: float
    n: int

    def robust_z(self, value: float) -> float:
        """Distance from the median in scaled MADs; a flat baseline makes any move infinite."""
        deviation = abs(value - self.median)
        if deviation <= EPSILON:
            return 0.0
        if self.mad <= EPSILON:
            return math.inf
        return deviation / (MAD_SCALE * self.mad)

    def pct_from_median(self, value: float) -> float | None:
        if self.median == 0:
            return None
        return (value - self.median) / self.median * 100


def rolling_baseline(
    values: Sequence[float | Decimal | int], *, window: int, min_history: int
) -> Baseline | None:
    """Median/MAD of the last `window` values, or None below `min_history` values."""
    recent = [float(v) for v in values[-window:]] if window > 0 else []
    if len(recent) < max(1, min_history):
        return None
    med = statistics.median(recent)
    mad = statistics.median(abs(v - med) for v in recent)
    return Baseline(median=med, mad=mad, n=len(recent))


def is_outlier(
    values: Sequence[float | Decimal | int],
    value: float | Decimal | int,
    *,
    window: int,
    min_history: int,
    z: float,
) -> bool | None:
    """Robust outlier test (rolling median/MAD); None while the history is too short."""
    baseline = rolling_baseline(values, window=window, min_history=min_history)
    if baseline is None:
        return None
    return baseline.robust_z(float(value)) >= z - EPSILON


def ge(value: float, threshold: float) -> bool:
    """value >= threshold, tolerant of binary float error."""
    return value >= threshold - EPSILON


def r2(value: float) -> float:
    return round(value, 2)

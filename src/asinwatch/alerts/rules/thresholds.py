"""Thresholds of every alert type, with defaults, and per-product overrides.

Defaults are market.md's heuristics, except where the alert-accuracy bench measured better
rules (BSR moves vs the previous check; the negative-review spike as a 1-day Poisson test
against the product's observed rate). A product overrides one alert type with a dict (the
``params`` JSON of ``core.alert_thresholds``); unknown keys and wrong types raise
`ThresholdError` with a readable message instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PRICE_CHANGE = "price_change"
OUT_OF_STOCK = "out_of_stock"
BUYBOX_SELLER_CHANGE = "buybox_seller_change"
HIJACKER = "hijacker"
LISTING_CHANGED = "listing_changed"
SUPPRESSED = "suppressed"
BSR_MOVE = "bsr_move"
RATING_DROP = "rating_drop"
NEGATIVE_REVIEW_SPIKE = "negative_review_spike"
COMPETITOR_UNDERCUT = "competitor_undercut"
TRACKING_STALE = "tracking_stale"

ListingField = Literal["title", "bullets", "description", "images", "aplus", "variants"]
LISTING_FIELDS: tuple[ListingField, ...] = (
    "title",
    "bullets",
    "description",
    "images",
    "aplus",
    "variants",
)


class ThresholdError(ValueError):
    """A threshold override that cannot apply (unknown type or key, wrong type or range)."""


class ThresholdParams(BaseModel):
    """What every alert type's params have: `enabled` (a subclass per type)."""

    # strict: "5" is not 5 and true is not 1; extra keys are errors, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = True


class PriceChangeThresholds(ThresholdParams):
    """Change vs the previous price and vs the rolling median (both directions)."""

    min_pct: float | None = Field(5.0, gt=0)
    min_abs: float | None = Field(0.5, gt=0)
    # True: a change must pass both the % and the absolute threshold (kills 0.10 nudges on
    # cheap items); False: either is enough. A None threshold is not checked.
    require_both: bool = True
    direction: Literal["both", "drop", "rise"] = "both"
    median_window: int = Field(14, ge=2)
    min_history: int = Field(5, ge=2)
    median_pct: float | None = Field(10.0, gt=0)
    median_z: float | None = Field(3.5, gt=0)
    critical_pct: float = Field(20.0, gt=0)

    @model_validator(mode="after")
    def _something_to_check(self) -> PriceChangeThresholds:
        if self.min_pct is None and self.min_abs is None:
            raise ValueError("at least one of min_pct and min_abs must be set")
        return self


class OutOfStockThresholds(ThresholdParams):
    # Validated out-of-stock observations in a row before alerting (damps flapping).
    confirm_runs: int = Field(1, ge=1, le=50)


class BuyboxSellerChangeThresholds(ThresholdParams):
    # Losing the buy box entirely (seller -> none) counts as a change.
    include_lost: bool = True


class HijackerThresholds(ThresholdParams):
    pass


class ListingChangedThresholds(ThresholdParams):
    # Lists from JSON are fine here (strict mode would want a tuple); items stay checked.
    watch_fields: tuple[ListingField, ...] = Field(LISTING_FIELDS, strict=False, min_length=1)
    max_diff_lines: int = Field(40, ge=1, le=1000)


class SuppressedThresholds(ThresholdParams):
    consecutive_checks: int = Field(2, ge=1, le=50)


class BsrMoveThresholds(ThresholdParams):
    min_pct: float = Field(30.0, gt=0)
    # What the move is measured against: the previous observation (day-over-day jumps, the
    # default: a rank is a random walk, so market.md's rolling-median rule also fires on slow
    # drifts nobody acts on), the rolling median, or either.
    reference: Literal["median", "previous", "both"] = "previous"
    median_window: int = Field(14, ge=2)
    min_history: int = Field(5, ge=2)
    # Entering / leaving the top N: off by default, a per-product override (the seller sets
    # the rank that matters for that product).
    top_n: int | None = Field(None, ge=1)


class RatingDropThresholds(ThresholdParams):
    min_drop: float = Field(0.1, gt=0)
    floor: float | None = Field(None, ge=0, le=5)


class NegativeReviewSpikeThresholds(ThresholdParams):
    """The day's new low-star reviews vs the product's own normal rate (measured defaults:
    docs/BENCHMARKS.md, "Alert accuracy"; market.md's 7-day x 2 rule is an override away)."""

    max_stars: int = Field(2, ge=1, le=4)
    window_days: int = Field(1, ge=1, le=90)
    min_count: int = Field(3, ge=1)
    baseline_days: int = Field(90, ge=1, le=730)
    # Without max_p_value: the window count must exceed baseline rate x window x factor.
    baseline_factor: float = Field(2.0, ge=1)
    # "Above normal" as a Poisson test: P(X >= count | expected) < this. None: use the
    # baseline_factor rule instead.
    max_p_value: float | None = Field(0.01, gt=0, lt=1)
    # "observed": the rate is over the days since the oldest review at hand (a product
    # tracked for 10 days has 10 days of baseline, not 90); "window": over all baseline_days.
    baseline_coverage: Literal["window", "observed"] = "observed"
    # With "observed" coverage: no verdict until the baseline spans this many days.
    min_baseline_days: int = Field(14, ge=0, le=730)


class CompetitorUndercutThresholds(ThresholdParams):
    min_pct: float = Field(5.0, gt=0)
    min_abs: float | None = Field(None, gt=0)


class TrackingStaleThresholds(ThresholdParams):
    runs: int = Field(3, ge=1)


class Thresholds(BaseModel):
    """The thresholds of every alert type (defaults unless overridden)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price_change: PriceChangeThresholds = PriceChangeThresholds()
    out_of_stock: OutOfStockThresholds = OutOfStockThresholds()
    buybox_seller_change: BuyboxSellerChangeThresholds = BuyboxSellerChangeThresholds()
    hijacker: HijackerThresholds = HijackerThresholds()
    listing_changed: ListingChangedThresholds = ListingChangedThresholds()
    suppressed: SuppressedThresholds = SuppressedThresholds()
    bsr_move: BsrMoveThresholds = BsrMoveThresholds()
    rating_drop: RatingDropThresholds = RatingDropThresholds()
    negative_review_spike: NegativeReviewSpikeThresholds = NegativeReviewSpikeThresholds()
    competitor_undercut: CompetitorUndercutThresholds = CompetitorUndercutThresholds()
    tracking_stale: TrackingStaleThresholds = TrackingStaleThresholds()

    def for_type(self, alert_type: str) -> ThresholdParams:
        known = type(self).model_fields
        if alert_type not in known:
            raise ThresholdError(f"unknown alert type {alert_type!r}; known: {', '.join(known)}")
        params = getattr(self, alert_type)
        assert isinstance(params, ThresholdParams)
        return params


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r}")
        elif not loc:
            parts.append(str(err["msg"]).removeprefix("Value error, "))
        else:
            parts.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def with_overrides(
    thresholds: Thresholds, alert_type: str, overrides: Mapping[str, Any]
) -> Thresholds:
    """`thresholds` with one alert type's params replaced by `overrides` merged on top.

    Raises `ThresholdError` naming the alert type, the bad keys and the allowed keys.
    """
    current = thresholds.for_type(alert_type)
    cls = type(current)
    if not isinstance(overrides, Mapping):
        raise ThresholdError(f"{alert_type}: overrides must be a mapping, got {overrides!r}")
    unknown = sorted(set(overrides) - set(cls.model_fields))
    if unknown:
        raise ThresholdError(
            f"{alert_type}: unknown threshold key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(cls.model_fields)}"
        )
    try:
        merged = cls.model_validate({**current.model_dump(), **dict(overrides)})
    except ValidationError as exc:
        raise ThresholdError(f"{alert_type}: {_describe(exc)}") from exc
    return thresholds.model_copy(update={alert_type: merged})


def apply_overrides(
    thresholds: Thresholds, overrides_by_type: Mapping[str, Mapping[str, Any]]
) -> Thresholds:
    """Apply the overrides of several alert types (e.g. every row of a product)."""
    for alert_type in sorted(overrides_by_type):
        thresholds = with_overrides(thresholds, alert_type, overrides_by_type[alert_type])
    return thresholds

"""Price detectors: price change (vs previous and vs rolling median) and competitor undercut."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from asinwatch.alerts.rules.base import Finding, Severity, ge, r2, recovery, rolling_baseline
from asinwatch.alerts.rules.thresholds import (
    COMPETITOR_UNDERCUT,
    PRICE_CHANGE,
    CompetitorUndercutThresholds,
    PriceChangeThresholds,
)
from asinwatch.metrics.series import MetricPoint


@dataclass(frozen=True, slots=True)
class CompetitorPrice:
    """A linked competitor's current buy-box price."""

    asin: str
    price: Decimal | float | None
    currency: str | None = None
    seller_name: str | None = None


def _passes(change: float, pct: float | None, params: PriceChangeThresholds) -> bool:
    checks: list[bool] = []
    if params.min_pct is not None:
        checks.append(pct is not None and ge(abs(pct), params.min_pct))
    if params.min_abs is not None:
        checks.append(ge(abs(change), params.min_abs))
    return all(checks) if params.require_both else any(checks)


def _direction_ok(change: float, params: PriceChangeThresholds) -> bool:
    if change == 0:
        return False
    return params.direction == "both" or (params.direction == "drop") == (change < 0)


def detect_price_change(
    history: Sequence[MetricPoint], current: MetricPoint, params: PriceChangeThresholds
) -> Finding | None:
    """Buy-box price moved by the thresholds vs the previous price or the rolling median.

    Silent (None) without a current price, or with neither a previous price nor
    `min_history` prices for the median.
    """
    if current.buybox_price is None:
        return None
    now = float(current.buybox_price)
    prices = [float(p.buybox_price) for p in history if p.buybox_price is not None]
    previous = prices[-1] if prices else None
    baseline = rolling_baseline(prices, window=params.median_window, min_history=params.min_history)
    if previous is None and baseline is None:
        return None
    triggers: list[str] = []
    details: dict[str, object] = {"new": now, "currency": current.currency}
    pct_prev: float | None = None
    if previous is not None:
        change = now - previous
        pct_prev = None if previous == 0 else change / previous * 100
        details["vs_previous"] = {
            "old": previous,
            "abs": r2(change),
            "pct": None if pct_prev is None else r2(pct_prev),
        }
        if _passes(change, pct_prev, params) and _direction_ok(change, params):
            triggers.append("vs_previous")
    pct_med: float | None = None
    if baseline is not None and params.median_pct is not None:
        pct_med = baseline.pct_from_median(now)
        z = baseline.robust_z(now)
        change_med = now - baseline.median
        details["vs_median"] = {
            "median": baseline.median,
            "window": baseline.n,
            "abs": r2(change_med),
            "pct": None if pct_med is None else r2(pct_med),
            "robust_z": None if z == float("inf") else round(z, 2),
        }
        ok = (
            pct_med is not None
            and ge(abs(pct_med), params.median_pct)
            and (params.median_z is None or ge(z, params.median_z))
            and (
                not params.require_both
                or params.min_abs is None
                or ge(abs(change_med), params.min_abs)
            )
            and _direction_ok(change_med, params)
        )
        if ok:
            triggers.append("vs_median")
    details["thresholds"] = params.model_dump(exclude={"enabled"})
    if not triggers:
        return recovery(PRICE_CHANGE, "Price steady", "event", **details)
    pct = pct_prev if "vs_previous" in triggers else pct_med
    old = previous if "vs_previous" in triggers else baseline.median if baseline else None
    assert pct is not None and old is not None
    verb = "dropped" if now < old else "rose"
    details.update(triggers=triggers, direction="drop" if now < old else "rise", old=old)
    severity: Severity = "critical" if ge(abs(pct), params.critical_pct) else "warning"
    ref = "" if "vs_previous" in triggers else " vs the rolling median"
    cur = f" {current.currency}" if current.currency else ""
    title = f"Price {verb} {abs(pct):.2f}%{ref} ({old:.2f} → {now:.2f}{cur})"
    return Finding(PRICE_CHANGE, severity, title, details, kind="event")


def detect_competitor_undercut(
    current: MetricPoint,
    competitors: Sequence[CompetitorPrice],
    params: CompetitorUndercutThresholds,
) -> Finding | None:
    """A linked competitor's price is below ours by >= min_pct (and >= min_abs if set).

    Competitors in another currency are not compared. Silent without our price or any
    comparable competitor price.
    """
    if current.buybox_price is None or current.buybox_price <= 0:
        return None
    ours = float(current.buybox_price)
    comparable = [
        c
        for c in competitors
        if c.price is not None
        and (c.currency is None or current.currency is None or c.currency == current.currency)
    ]
    if not comparable:
        return None
    under: list[tuple[float, str, float, float, str | None]] = []
    for comp in comparable:
        assert comp.price is not None
        price = float(comp.price)
        gap = ours - price
        pct = gap / ours * 100
        if ge(pct, params.min_pct) and (params.min_abs is None or ge(gap, params.min_abs)):
            under.append((r2(pct), comp.asin, price, r2(gap), comp.seller_name))
    base = {
        "our_price": ours,
        "currency": current.currency,
        "compared": sorted(c.asin for c in comparable),
        "threshold_pct": params.min_pct,
        "threshold_abs": params.min_abs,
    }
    if not under:
        return recovery(
            COMPETITOR_UNDERCUT, "No competitor undercuts our price", "condition", **base
        )
    under.sort(key=lambda u: (-u[0], u[1]))
    top_pct, top_asin, top_price, _, _ = under[0]
    more = f" (+{len(under) - 1} more)" if len(under) > 1 else ""
    title = (
        f"Competitor {top_asin} undercuts us by {top_pct:.2f}% "
        f"({top_price:.2f} vs {ours:.2f}){more}"
    )
    undercutters = [
        {"asin": a, "price": p, "seller_name": n, "gap_abs": g, "gap_pct": pc}
        for pc, a, p, g, n in under
    ]
    return Finding(
        COMPETITOR_UNDERCUT,
        "warning",
        title,
        {**base, "undercutters": undercutters},
        kind="condition",
    )

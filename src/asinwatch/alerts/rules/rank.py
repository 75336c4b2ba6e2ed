"""BSR detector: a move vs the previous check (or the rolling median), and the top N."""

from __future__ import annotations

from collections.abc import Sequence

from asinwatch.alerts.rules.base import Finding, Severity, ge, r2, recovery, rolling_baseline
from asinwatch.alerts.rules.thresholds import BSR_MOVE, BsrMoveThresholds
from asinwatch.kit import escaping
from asinwatch.metrics.series import MetricPoint


def detect_bsr_move(
    history: Sequence[MetricPoint], current: MetricPoint, params: BsrMoveThresholds
) -> Finding | None:
    """Rank moved >= min_pct vs the reference of the same category, or crossed the top N.

    The reference is the previous rank (default), the rolling median or either; the median
    test stays silent below `min_history` observations in the category. The top-N test
    (off unless `top_n` is set) needs only the previous rank. A lower rank number is better.
    """
    if current.bsr is None:
        return None
    ranks = [
        float(p.bsr)
        for p in history
        if p.bsr is not None and p.bsr_category == current.bsr_category
    ]
    baseline = rolling_baseline(ranks, window=params.median_window, min_history=params.min_history)
    previous = ranks[-1] if ranks else None
    if baseline is None and previous is None:
        return None
    now = current.bsr
    triggers: list[str] = []
    details: dict[str, object] = {
        "new": now,
        "category": current.bsr_category,
        "previous": previous,
    }
    moved = ""
    pct: float | None = None
    use_median = params.reference in ("median", "both")
    if baseline is not None:
        pct = baseline.pct_from_median(now)
        details.update(
            median=baseline.median, window=baseline.n, pct=None if pct is None else r2(pct)
        )
        if use_median and pct is not None and ge(abs(pct), params.min_pct):
            moved = "worsened" if pct > 0 else "improved"
            triggers.append(f"{moved}_vs_median")
    moved_prev = ""
    pct_prev: float | None = None
    if params.reference in ("previous", "both") and previous:
        pct_prev = (now - previous) / previous * 100
        details["pct_vs_previous"] = r2(pct_prev)
        if ge(abs(pct_prev), params.min_pct):
            moved_prev = "worsened" if pct_prev > 0 else "improved"
            triggers.append(f"{moved_prev}_vs_previous")
    if params.top_n is not None and previous is not None:
        if previous > params.top_n >= now:
            triggers.append("entered_top_n")
        elif previous <= params.top_n < now:
            triggers.append("left_top_n")
    details.update(
        threshold_pct=params.min_pct,
        top_n=params.top_n,
        reference=params.reference,
        triggers=triggers,
    )
    if not triggers:
        # Without the median test (history too short) a quiet top-N check proves little.
        if baseline is None and not (params.reference != "median" and previous):
            return None
        return recovery(BSR_MOVE, "BSR steady", "event", **details)
    parts: list[str] = []
    if moved:
        assert baseline is not None
        parts.append(
            f"BSR {moved} {abs(pct or 0.0):.0f}% vs median ({baseline.median:.0f} → {now})"
        )
    elif moved_prev:
        parts.append(
            f"BSR {moved_prev} {abs(pct_prev or 0.0):.0f}% vs the previous check"
            f" ({previous:.0f} → {now})"
        )
    if "entered_top_n" in triggers:
        parts.append(f"entered the top {params.top_n}")
    if "left_top_n" in triggers:
        parts.append(f"left the top {params.top_n}")
    # The category name comes from upstream: one line, quoted.
    category = escaping.quote(escaping.plain(current.bsr_category))
    where = f" in {category}" if current.bsr_category else ""
    title = "; ".join(parts) + where
    title = title[0].upper() + title[1:]
    worse = "worsened" in (moved, moved_prev)
    severity: Severity = "warning" if worse or "left_top_n" in triggers else "info"
    return Finding(BSR_MOVE, severity, title, details, kind="event")

"""Buy-box detectors: the buy-box seller changed, and a hijacker holds the buy box."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from asinwatch.alerts.rules.base import Finding, Severity, recovery
from asinwatch.alerts.rules.thresholds import (
    BUYBOX_SELLER_CHANGE,
    HIJACKER,
    BuyboxSellerChangeThresholds,
    HijackerThresholds,
)
from asinwatch.kit import escaping
from asinwatch.metrics.series import MetricPoint


def _who(seller_id: str | None, name: str | None) -> str:
    """A seller as the alert title names it: the (upstream) name quoted, on one line."""
    if seller_id is None:
        return "nobody"
    sid = escaping.plain(seller_id)
    return f"{escaping.quote(escaping.plain(name))} ({sid})" if name else escaping.quote(sid)


def detect_buybox_seller_change(
    history: Sequence[MetricPoint],
    current: MetricPoint,
    params: BuyboxSellerChangeThresholds,
    allowlist: Collection[str] = (),
) -> Finding | None:
    """The buy-box seller differs from the last validated observation that had one.

    Out of stock, nobody holds the buy box: that is the out-of-stock alert, not a seller
    change, so such observations are skipped on both sides (a restock by the same seller is
    no change; no seller while out of stock gives no verdict).
    """
    if current.buybox_seller_id is None and current.in_stock is False:
        return None
    known = [p for p in history if p.buybox_seller_id is not None or p.in_stock is not False]
    if not known:
        return None
    prev = known[-1]
    old, new = prev.buybox_seller_id, current.buybox_seller_id
    details = {
        "old_seller_id": old,
        "old_seller_name": prev.buybox_seller_name,
        "new_seller_id": new,
        "new_seller_name": current.buybox_seller_name,
        "price": current.buybox_price,
        "currency": current.currency,
    }
    if old == new:
        return recovery(BUYBOX_SELLER_CHANGE, "Buy-box seller unchanged", "event", **details)
    if new is None:
        if not params.include_lost:
            return None
        title = f"Buy box lost: no buy-box seller (was {_who(old, prev.buybox_seller_name)})"
        severity: Severity = "warning"
    else:
        was = _who(old, prev.buybox_seller_name)
        title = f"Buy-box seller changed: {was} → {_who(new, current.buybox_seller_name)}"
        # A switch between our own seller accounts is worth knowing, not worth a page.
        severity = "info" if new in allowlist else "warning"
    return Finding(BUYBOX_SELLER_CHANGE, severity, title, details, kind="event")


def detect_hijacker(
    current: MetricPoint, allowlist: Collection[str], params: HijackerThresholds
) -> Finding | None:
    """The buy-box seller is not in the product's seller allow-list.

    Silent without an allow-list (nothing to compare against) or without a buy-box seller.
    """
    if not allowlist or current.buybox_seller_id is None:
        return None
    seller = current.buybox_seller_id
    details = {
        "seller_id": seller,
        "seller_name": current.buybox_seller_name,
        "price": current.buybox_price,
        "currency": current.currency,
        "offer_count": current.offer_count,
        "allowlist": sorted(allowlist),
    }
    if seller in allowlist:
        return recovery(HIJACKER, "Buy box held by an authorised seller", "condition", **details)
    price = f" at {current.buybox_price}" if current.buybox_price is not None else ""
    cur = f" {current.currency}" if current.currency and price else ""
    title = f"Hijacker on the buy box: {_who(seller, current.buybox_seller_name)}{price}{cur}"
    return Finding(HIJACKER, "critical", title, details, kind="condition")

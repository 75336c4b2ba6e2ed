"""Cache key names of one tracked product's reads (architecture §2b, with the marketplace):
its summary, its daily metric ranges and its competition view. Catalog owns them because a
product and its competitor links are catalog's, and catalog invalidates them when they change.
"""

from __future__ import annotations

from asinwatch.kit.cache import key_part


def summary_key(marketplace: str, asin: str) -> str:
    return f"product:{key_part(marketplace, 'marketplace')}:{key_part(asin, 'asin')}:summary"


def metrics_daily_key(marketplace: str, asin: str, range_: str) -> str:
    m, a = key_part(marketplace, "marketplace"), key_part(asin, "asin")
    return f"product:{m}:{a}:metrics:daily:{key_part(range_, 'range')}"


def compare_key(marketplace: str, asin_main: str, asin_comp: str) -> str:
    m = key_part(marketplace, "marketplace")
    main, comp = key_part(asin_main, "asin_main"), key_part(asin_comp, "asin_comp")
    return f"compare:{m}:{main}:{comp}"


def product_keys(
    marketplace: str, asin: str, ranges: tuple[str, ...] = ("7d", "30d", "90d")
) -> list[str]:
    """The summary and daily-metrics keys of one product (what a new snapshot invalidates)."""
    return [summary_key(marketplace, asin)] + [
        metrics_daily_key(marketplace, asin, r) for r in ranges
    ]

"""Cache key name of a product's latest recommendation (architecture §2b)."""

from __future__ import annotations

from asinwatch.kit.cache import key_part


def recommendation_key(marketplace: str, asin: str) -> str:
    m, a = key_part(marketplace, "marketplace"), key_part(asin, "asin")
    return f"recommendation:{m}:{a}:latest"

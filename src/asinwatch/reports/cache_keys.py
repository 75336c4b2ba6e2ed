"""Cache key name of a product's latest competitive report (architecture §2b)."""

from __future__ import annotations

from asinwatch.kit.cache import key_part


def report_key(marketplace: str, asin: str) -> str:
    return f"report:{key_part(marketplace, 'marketplace')}:{key_part(asin, 'asin')}:latest"

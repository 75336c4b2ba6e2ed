"""Marketplace look-ups over the table in `asinwatch.amazon_marketplaces` (re-exported here),
and ASIN validation (pure, no I/O).

The same ASIN is a different listing on each marketplace, so every product is keyed by
(marketplace, ASIN). The currency of a marketplace turns Apify's price symbol into ISO 4217.
"""

from __future__ import annotations

import re

from asinwatch.amazon_marketplaces import MARKETPLACES, Marketplace

__all__ = [
    "ASIN_PATTERN",
    "MARKETPLACES",
    "InvalidAsinError",
    "Marketplace",
    "UnknownMarketplaceError",
    "get_marketplace",
    "is_asin",
    "normalise_asin",
    "product_url",
]

# ASINs are 10 characters: "B" + 9 alphanumerics, or an ISBN-10 for books. The one pattern of
# an ASIN: the API's parameters and bodies take it in either case (normalise_asin upper-cases);
# `is_asin` asks for the upper-case form.
ASIN_PATTERN = r"^(?:[Bb][0-9A-Za-z]{9}|[0-9]{9}[0-9Xx])$"
_ASIN_RE = re.compile(ASIN_PATTERN)


class InvalidAsinError(ValueError):
    """Raised for a string that is not an ASIN."""


class UnknownMarketplaceError(ValueError):
    """Raised for a marketplace domain asinwatch does not know."""


def is_asin(value: str) -> bool:
    return value == value.upper() and bool(_ASIN_RE.match(value))


def normalise_asin(value: str) -> str:
    """Upper-case and strip an ASIN, or raise InvalidAsinError with a readable message."""
    asin = value.strip().upper()
    if not is_asin(asin):
        raise InvalidAsinError(f"invalid ASIN {value!r}: expected 10 characters like B0ABCDEFGH")
    return asin


def get_marketplace(domain: str) -> Marketplace:
    """The marketplace for a domain such as "amazon.de" (a leading "www." is accepted)."""
    key = domain.strip().lower().removeprefix("www.")
    try:
        return MARKETPLACES[key]
    except KeyError:
        known = ", ".join(sorted(MARKETPLACES))
        raise UnknownMarketplaceError(f"unknown marketplace {domain!r}; known: {known}") from None


def product_url(marketplace: str, asin: str) -> str:
    """The canonical product page URL Apify's actors take as input."""
    return f"https://www.{get_marketplace(marketplace).domain}/dp/{normalise_asin(asin)}"

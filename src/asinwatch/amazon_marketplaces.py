"""The Amazon marketplaces asinwatch knows: a static table (domain, country, currency,
timezone), pure data with no imports of asinwatch. A leaf module so that settings can check
`default_marketplace` without importing the catalog domain (catalog.marketplaces re-exports
it next to ASIN validation).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Marketplace:
    domain: str
    country: str
    currency: str
    timezone: str


MARKETPLACES: dict[str, Marketplace] = {
    m.domain: m
    for m in (
        Marketplace("amazon.com", "US", "USD", "America/Los_Angeles"),
        Marketplace("amazon.ca", "CA", "CAD", "America/Los_Angeles"),
        Marketplace("amazon.com.mx", "MX", "MXN", "America/Mexico_City"),
        Marketplace("amazon.com.br", "BR", "BRL", "America/Sao_Paulo"),
        Marketplace("amazon.co.uk", "GB", "GBP", "Europe/London"),
        Marketplace("amazon.de", "DE", "EUR", "Europe/Berlin"),
        Marketplace("amazon.fr", "FR", "EUR", "Europe/Paris"),
        Marketplace("amazon.it", "IT", "EUR", "Europe/Rome"),
        Marketplace("amazon.es", "ES", "EUR", "Europe/Madrid"),
        Marketplace("amazon.nl", "NL", "EUR", "Europe/Amsterdam"),
        Marketplace("amazon.se", "SE", "SEK", "Europe/Stockholm"),
        Marketplace("amazon.pl", "PL", "PLN", "Europe/Warsaw"),
        Marketplace("amazon.com.tr", "TR", "TRY", "Europe/Istanbul"),
        Marketplace("amazon.ae", "AE", "AED", "Asia/Dubai"),
        Marketplace("amazon.sa", "SA", "SAR", "Asia/Riyadh"),
        Marketplace("amazon.in", "IN", "INR", "Asia/Kolkata"),
        Marketplace("amazon.co.jp", "JP", "JPY", "Asia/Tokyo"),
        Marketplace("amazon.sg", "SG", "SGD", "Asia/Singapore"),
        Marketplace("amazon.com.au", "AU", "AUD", "Australia/Sydney"),
    )
}

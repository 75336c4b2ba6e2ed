"""Catalog business logic: track, list and untrack products (never commits itself), and the
product summary read through the cache (the read behind GET /v1/products/{asin}: one
PostgreSQL statement, `repository.product_summary`, over the product, its latest metrics,
KPIs and open alerts)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from asinwatch.catalog import repository
from asinwatch.catalog.cache_keys import summary_key
from asinwatch.catalog.marketplaces import get_marketplace, normalise_asin
from asinwatch.catalog.models import CompetitorLink, Product
from asinwatch.catalog.schemas import ProductIn
from asinwatch.config import get_settings
from asinwatch.kit.cache import Cache
from asinwatch.kit.db import async_engine
from asinwatch.kit.readthrough import Cached, read_through


class CsvFormatError(ValueError):
    """A product CSV that cannot be read: the message names the line."""


def read_products_csv(path: Path, default_marketplace: str) -> list[ProductIn]:
    """Products from a CSV with a header: `asin` required; `marketplace`, `own` optional.

    Every line is validated before anything is written, so a bad line changes nothing.
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvFormatError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "asin" not in fields:
            raise CsvFormatError(f"{path}: the header must have an 'asin' column")
        products: list[ProductIn] = []
        for line_no, raw in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            if not row.get("asin"):
                continue
            try:
                asin = normalise_asin(row["asin"])
                market = get_marketplace(row.get("marketplace") or default_marketplace).domain
            except ValueError as exc:
                raise CsvFormatError(f"{path} line {line_no}: {exc}") from None
            own = row.get("own", "").lower() not in ("0", "false", "no", "competitor")
            products.append(ProductIn(asin=asin, marketplace=market, is_own=own))
    return products


def products_from_asins(
    asins: Iterable[str], marketplace: str, *, is_own: bool = True
) -> list[ProductIn]:
    market = get_marketplace(marketplace).domain
    return [ProductIn(asin=normalise_asin(a), marketplace=market, is_own=is_own) for a in asins]


async def track(session: AsyncSession, marketplace: str, products: Sequence[ProductIn]) -> int:
    return await repository.upsert_products(session, get_marketplace(marketplace).domain, products)


async def untrack(session: AsyncSession, marketplace: str, asins: Sequence[str]) -> int:
    market = get_marketplace(marketplace).domain
    return await repository.untrack_products(session, market, [normalise_asin(a) for a in asins])


async def tracked(session: AsyncSession, marketplace: str | None = None) -> list[Product]:
    market = get_marketplace(marketplace).domain if marketplace else None
    return await repository.list_products(session, market)


class ProductNotFoundError(LookupError):
    """No product with that (marketplace, ASIN)."""


class SelfLinkError(ValueError):
    """A product cannot be its own competitor."""


async def link_competitor(
    session: AsyncSession, marketplace: str, asin: str, competitor_asin: str, note: str | None
) -> CompetitorLink:
    """Link `competitor_asin` to our product `asin`; the competitor is tracked (not own) when
    it is new, and re-activated when it was untracked."""
    market = get_marketplace(marketplace).domain
    asin, competitor_asin = normalise_asin(asin), normalise_asin(competitor_asin)
    if asin == competitor_asin:
        raise SelfLinkError("a product cannot be its own competitor")
    if await repository.get_product(session, market, asin) is None:
        raise ProductNotFoundError(f"product {asin} is not known on {market}")
    competitor = await repository.get_product(session, market, competitor_asin)
    if competitor is None or competitor.tracking_state == "untracked":
        await repository.upsert_products(
            session,
            market,
            [
                ProductIn(
                    asin=competitor_asin,
                    marketplace=market,
                    is_own=competitor.is_own if competitor else False,
                )
            ],
        )
    return await repository.upsert_competitor_link(session, market, asin, competitor_asin, note)


async def unlink_competitor(
    session: AsyncSession, marketplace: str, asin: str, competitor_asin: str
) -> bool:
    """Remove the link (the competitor stays tracked); False when there was none."""
    market = get_marketplace(marketplace).domain
    return await repository.delete_competitor_link(
        session, market, normalise_asin(asin), normalise_asin(competitor_asin)
    )


# ---------------------------------------------------------------------------- cached reads

# The whole competition view of a product is cached under one compare key with this
# "competitor" (never an ASIN), so it is invalidated with the product's other keys.
ALL_COMPETITORS = "all"


async def read_summary(cache: Cache | None, marketplace: str, asin: str) -> Cached[Any]:
    """The product summary (`catalog.api_schemas.ProductSummaryOut` as JSON, without
    ``stale_at``) through the cache under its summary key; None: the product is unknown."""

    async def load() -> dict[str, Any] | None:
        async with async_engine().connect() as conn:
            return await repository.product_summary(conn, marketplace, asin)

    return await read_through(
        cache,
        summary_key(marketplace, asin),
        load,
        fresh_s=get_settings().cache.summary_fresh_s,
        kind="summary",
    )

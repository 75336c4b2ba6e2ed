"""The API's cache-first reads of metrics: a product's daily series over a window, and our
product against its linked competitors. Each reads through the cache (`kit.readthrough`)
under the architecture's key and returns the JSON document of its response model
(`metrics.api_schemas`, without ``stale_at``), or None when the product is unknown.

Only the named ranges ending today are cached: writes invalidate those keys, never a custom
``from``/``to`` window, so a window is read from the database every time.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from asinwatch.catalog.cache_keys import compare_key, metrics_daily_key
from asinwatch.catalog.service import ALL_COMPETITORS
from asinwatch.config import get_settings
from asinwatch.kit.cache import Cache
from asinwatch.kit.db import async_engine
from asinwatch.kit.readthrough import Cached, read_through
from asinwatch.metrics import queries


async def read_metric_range(
    cache: Cache | None,
    marketplace: str,
    asin: str,
    first: date,
    last: date,
    named: str | None,
) -> Cached[Any]:
    """The daily series from `first` to `last`; cached only when `named` (a named range that
    ends today) is given."""

    async def load() -> dict[str, Any] | None:
        async with async_engine().connect() as conn:
            return await queries.metric_range(conn, marketplace, asin, first, last, named)

    key = None if named is None else metrics_daily_key(marketplace, asin, named)
    return await read_through(
        cache, key, load, fresh_s=get_settings().cache.metrics_fresh_s, kind="metrics"
    )


async def read_competition(cache: Cache | None, marketplace: str, asin: str) -> Cached[Any]:
    """Our product's latest metrics against each linked competitor's, with the gaps."""

    async def load() -> dict[str, Any] | None:
        async with async_engine().connect() as conn:
            return await queries.competition(conn, marketplace, asin)

    return await read_through(
        cache,
        compare_key(marketplace, asin, ALL_COMPETITORS),
        load,
        fresh_s=get_settings().cache.compare_fresh_s,
        kind="compare",
    )

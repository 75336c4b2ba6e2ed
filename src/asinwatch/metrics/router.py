"""Metric reads: GET /v1/products/{asin}/metrics (daily series) and /v1/competitions/{asin}
(our product against its linked competitors). Viewer and up. (The product summary, GET
/v1/products/{asin}, is the catalog's: one package owns one path.)

Both read through the cache in `metrics.reads` (a custom ``from``/``to`` window is not
cached: only the named ranges are invalidated by writes); the router only turns the read into
the response (`api_deps.cached_json`). They take the cache with
`api_deps.optional_cache(request)` rather than the `OptionalCache` dependency: these are the
hottest reads, and each dependency FastAPI resolves costs several microseconds.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BeforeValidator
from starlette.responses import Response

from asinwatch.api_deps import (
    NOT_MODIFIED,
    Asin,
    Marketplace,
    Viewer,
    cached_json,
    errors,
    optional_cache,
)
from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.catalog.marketplaces import get_marketplace
from asinwatch.config import get_settings
from asinwatch.metrics import reads
from asinwatch.metrics.api_schemas import (
    RANGE_DAYS,
    CompetitionOut,
    MetricsRangeOut,
    RangeName,
)


def _iso_date(value: object) -> object:
    # Dates come as YYYY-MM-DD only: pydantic's lax mode would read "0" as 1970-01-01.
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
IsoDate = Annotated[date, BeforeValidator(_iso_date)]

router = APIRouter(
    prefix="/v1", tags=["products"], dependencies=[Depends(enforce_principal_rate_limit)]
)


def marketplace_today(marketplace: str) -> date:
    """Today in the marketplace's time zone (metric days are marketplace-local)."""
    return datetime.now(ZoneInfo(get_marketplace(marketplace).timezone)).date()


def resolve_window(
    today: date, range_name: str, start: date | None, end: date | None
) -> tuple[date, date, str | None]:
    """(from, to, named range or None); pure. ``to`` defaults to today; ``from`` defaults to
    the named range's length before ``to``. The named range is cached only when it ends today.
    A window with ``from`` after ``to`` is empty (no points), not an error."""
    last = end or today
    if start is not None:
        return start, last, None
    try:
        first = last - timedelta(days=RANGE_DAYS[range_name] - 1)
    except OverflowError:
        first = date.min
    return first, last, range_name if end is None or end == today else None


@router.get(
    "/products/{asin}/metrics",
    response_model=MetricsRangeOut,
    summary="Daily metric series over a named range or a from/to window",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def product_metrics(
    request: Request,
    asin: Asin,
    marketplace: Marketplace,
    _: Viewer,
    range_name: Annotated[
        RangeName, Query(alias="range", description="window length, ending at `to`")
    ] = "30d",
    start: Annotated[
        IsoDate | None, Query(alias="from", description="first day (overrides `range`)")
    ] = None,
    end: Annotated[
        IsoDate | None, Query(alias="to", description="last day (default: today)")
    ] = None,
) -> Response:
    first, last, named = resolve_window(marketplace_today(marketplace), range_name, start, end)
    read = await reads.read_metric_range(
        optional_cache(request), marketplace, asin, first, last, named
    )
    return cached_json(
        request,
        read,
        max_age=get_settings().cache.metrics_fresh_s,
        missing=f"product {asin} is not known on {marketplace}",
    )


@router.get(
    "/competitions/{asin}",
    response_model=CompetitionOut,
    tags=["competitions"],
    summary="Our product against each linked competitor (latest metrics and gaps)",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def competition(
    request: Request, asin: Asin, marketplace: Marketplace, _: Viewer
) -> Response:
    read = await reads.read_competition(optional_cache(request), marketplace, asin)
    return cached_json(
        request,
        read,
        max_age=get_settings().cache.compare_fresh_s,
        missing=f"product {asin} is not known on {marketplace}",
    )

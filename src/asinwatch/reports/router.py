"""GET /v1/competitions/{asin}/report (the latest competitive report, or ``?version=N``) and
GET /v1/competitions/{asin}/report/versions. Viewer and up.

The latest report is cache-first under ``report:{marketplace}:{asin}:latest``; a given version
never changes, so it is read from the database and may be kept by the client for a day.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from asinwatch.api_deps import (
    NOT_MODIFIED,
    Asin,
    Marketplace,
    OptionalCache,
    Paging,
    Session,
    Viewer,
    cached_json,
    errors,
    not_found,
    require_product,
    uncached_json,
    validation_problem,
)
from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.config import get_settings
from asinwatch.kit.pagination import Page, paginate
from asinwatch.reports import service
from asinwatch.reports.api_schemas import ReportOut, ReportVersionOut

VERSION_MAX_AGE_S = 86_400

router = APIRouter(
    prefix="/v1", tags=["competitions"], dependencies=[Depends(enforce_principal_rate_limit)]
)


@router.get(
    "/competitions/{asin}/report",
    response_model=ReportOut,
    summary="The latest competitive report of a product, or a given version",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def get_report(
    request: Request,
    asin: Asin,
    marketplace: Marketplace,
    _: Viewer,
    cache: OptionalCache,
    session: Session,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="a version")] = None,
) -> Response:
    missing = f"no competitive report for {asin} on {marketplace}"
    if version is not None:
        report = await service.get_report(session, marketplace, asin, version)
        if report is None:
            raise not_found(f"{missing} at version {version}")
        return uncached_json(request, report.model_dump(mode="json"), max_age=VERSION_MAX_AGE_S)

    read = await service.read_latest_report(cache, marketplace, asin)
    return cached_json(request, read, max_age=get_settings().cache.report_fresh_s, missing=missing)


@router.get(
    "/competitions/{asin}/report/versions",
    response_model=Page[ReportVersionOut],
    summary="The versions of a product's competitive report, newest first",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def list_report_versions(
    request: Request,
    asin: Asin,
    marketplace: Marketplace,
    page: Paging,
    session: Session,
    _: Viewer,
) -> Response:
    await require_product(session, marketplace, asin)
    scope = f"report-versions:{marketplace}:{asin}"
    after = page.after(scope=scope)
    if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
        raise validation_problem(["query", "cursor"], "cursor does not belong to this list")
    rows = await service.list_report_versions(
        session, marketplace, asin, before_version=after, limit=page.fetch_limit
    )
    return uncached_json(request, paginate(rows, page, key=lambda r: r.version, scope=scope))

"""Tracking and competitor links: list products and read one product's summary (viewer; the
summary is cache-first); track / untrack, one or in bulk, and link / unlink competitors
(admin). This package owns every method of /v1/products/{asin}. Every write queues the
cached reads of the products it touched on the request's unit of work, which drops them once
it has committed (never when it rolls back).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from asinwatch.api_deps import (
    ALL_COMPETITORS,
    ASIN_PATTERN,
    NOT_MODIFIED,
    Admin,
    Asin,
    Idem,
    Marketplace,
    Paging,
    Session,
    Uow,
    Viewer,
    cached_json,
    errors,
    not_found,
    optional_cache,
    product_read_keys,
    require_product,
    uncached_json,
    validation_problem,
    write_json,
)
from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.catalog import repository, service
from asinwatch.catalog.api_schemas import (
    BulkTrackIn,
    BulkTrackOut,
    BulkUntrackIn,
    BulkUntrackOut,
    CompetitorLinkOut,
    LinkIn,
    ProductSummaryOut,
    TrackIn,
)
from asinwatch.catalog.cache_keys import compare_key
from asinwatch.catalog.marketplaces import normalise_asin
from asinwatch.catalog.schemas import ProductOut
from asinwatch.config import get_settings
from asinwatch.kit.pagination import Page, paginate
from asinwatch.kit.problems import ProblemError

# Tags per route: GET /products/{asin} is documented with the other product reads.
router = APIRouter(prefix="/v1", dependencies=[Depends(enforce_principal_rate_limit)])


@router.get(
    "/products",
    tags=["catalog"],
    response_model=Page[ProductOut],
    summary="Tracked products (cursor pagination)",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def list_products(
    request: Request,
    marketplace: Marketplace,
    page: Paging,
    session: Session,
    _: Viewer,
    include_untracked: Annotated[bool, Query(description="also list untracked products")] = False,
) -> Response:
    scope = f"products:{marketplace}:{include_untracked}"
    after = page.after(scope=scope)
    if after is not None and not isinstance(after, int):
        raise validation_problem(["query", "cursor"], "cursor does not belong to this list")
    rows = await repository.list_products(
        session,
        marketplace,
        include_untracked=include_untracked,
        after_id=after,
        limit=page.fetch_limit,
    )
    ids = {r.asin: r.id for r in rows}
    result = paginate(
        [ProductOut.model_validate(r) for r in rows], page, key=lambda p: ids[p.asin], scope=scope
    )
    return uncached_json(request, result)


@router.get(
    "/products/{asin}",
    response_model=ProductSummaryOut,
    tags=["products"],
    summary="Product summary: latest metrics, KPIs and open alerts",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def product_summary(
    request: Request, asin: Asin, marketplace: Marketplace, _: Viewer
) -> Response:
    read = await service.read_summary(optional_cache(request), marketplace, asin)
    return cached_json(
        request,
        read,
        max_age=get_settings().cache.summary_fresh_s,
        missing=f"product {asin} is not known on {marketplace}",
    )


@router.put(
    "/products/{asin}",
    tags=["catalog"],
    response_model=ProductOut,
    summary="Track one product (or re-activate it)",
    responses=errors(),
)
async def track_product(
    asin: Asin,
    marketplace: Marketplace,
    body: TrackIn,
    uow: Uow,
    _: Admin,
) -> Response:
    await service.track(uow.session, marketplace, [body.product(marketplace, asin)])
    row = await repository.get_product(uow.session, marketplace, asin)
    assert row is not None
    out = ProductOut.model_validate(row)
    uow.invalidate(*product_read_keys(marketplace, asin))
    return write_json(out)


@router.delete(
    "/products/{asin}",
    tags=["catalog"],
    status_code=204,
    summary="Stop tracking one product (its history is kept)",
    responses=errors(404),
)
async def untrack_product(asin: Asin, marketplace: Marketplace, uow: Uow, _: Admin) -> Response:
    await require_product(uow.session, marketplace, asin)
    await service.untrack(uow.session, marketplace, [asin])
    uow.invalidate(*product_read_keys(marketplace, asin))
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@router.post(
    "/products",
    tags=["catalog"],
    response_model=BulkTrackOut,
    summary="Track products in bulk (Idempotency-Key accepted)",
    responses=errors(409),
)
async def track_products(
    marketplace: Marketplace,
    body: BulkTrackIn,
    uow: Uow,
    _: Admin,
    idem: Idem,
) -> Response:
    async def work() -> Response:
        products = body.to_products(marketplace)
        count = await service.track(uow.session, marketplace, products)
        asins = list(dict.fromkeys(p.asin for p in products))
        uow.invalidate(*[k for a in asins for k in product_read_keys(marketplace, a)])
        return write_json(BulkTrackOut(tracked=count, asins=asins))

    return await idem.run(work)


@router.post(
    "/products:untrack",
    tags=["catalog"],
    response_model=BulkUntrackOut,
    summary="Stop tracking products in bulk (Idempotency-Key accepted)",
    responses=errors(409),
)
async def untrack_products(
    marketplace: Marketplace,
    body: BulkUntrackIn,
    uow: Uow,
    _: Admin,
    idem: Idem,
) -> Response:
    async def work() -> Response:
        count = await service.untrack(uow.session, marketplace, body.asins)
        uow.invalidate(*[k for a in body.asins for k in product_read_keys(marketplace, a)])
        return write_json(BulkUntrackOut(untracked=count))

    return await idem.run(work)


# --- competitor links --------------------------------------------------------------------


@router.get(
    "/products/{asin}/competitors",
    tags=["catalog"],
    response_model=Page[CompetitorLinkOut],
    summary="The competitors linked to a product",
    responses={**NOT_MODIFIED, **errors(404)},
)
async def list_competitors(
    request: Request,
    asin: Asin,
    marketplace: Marketplace,
    page: Paging,
    session: Session,
    _: Viewer,
) -> Response:
    await require_product(session, marketplace, asin)
    scope = f"competitors:{marketplace}:{asin}"
    after = page.after(scope=scope)
    if after is not None and not isinstance(after, str):
        raise validation_problem(["query", "cursor"], "cursor does not belong to this list")
    rows = await repository.list_competitor_links(
        session, marketplace, asin, after=after, limit=page.fetch_limit
    )
    result = paginate(
        [CompetitorLinkOut.model_validate(r) for r in rows],
        page,
        key=lambda link: link.competitor_asin,
        scope=scope,
    )
    return uncached_json(request, result)


def _competitor(competitor_asin: str) -> str:
    return normalise_asin(competitor_asin)


@router.put(
    "/products/{asin}/competitors/{competitor_asin}",
    tags=["catalog"],
    response_model=CompetitorLinkOut,
    summary="Link a competitor to a product (the competitor is tracked if new)",
    responses=errors(404, 409),
)
async def link_competitor(
    asin: Asin,
    competitor_asin: Annotated[str, Path(pattern=ASIN_PATTERN, description="competitor ASIN")],
    marketplace: Marketplace,
    body: LinkIn,
    uow: Uow,
    _: Admin,
) -> Response:
    comp = _competitor(competitor_asin)
    try:
        link = await service.link_competitor(uow.session, marketplace, asin, comp, body.note)
    except service.ProductNotFoundError as exc:
        raise not_found(str(exc)) from None
    except service.SelfLinkError as exc:
        # Both ASINs are well formed; it is the pair that cannot exist (like a duplicate).
        raise ProblemError(409, detail=str(exc), type_suffix="self-link") from None
    out = CompetitorLinkOut.model_validate(link)
    uow.invalidate(
        compare_key(marketplace, asin, ALL_COMPETITORS),
        compare_key(marketplace, asin, comp),
        *product_read_keys(marketplace, comp),
    )
    return write_json(out)


@router.delete(
    "/products/{asin}/competitors/{competitor_asin}",
    tags=["catalog"],
    status_code=204,
    summary="Unlink a competitor (it stays tracked)",
    responses=errors(404),
)
async def unlink_competitor(
    asin: Asin,
    competitor_asin: Annotated[str, Path(pattern=ASIN_PATTERN, description="competitor ASIN")],
    marketplace: Marketplace,
    uow: Uow,
    _: Admin,
) -> Response:
    comp = _competitor(competitor_asin)
    if not await service.unlink_competitor(uow.session, marketplace, asin, comp):
        raise not_found(f"{comp} is not linked to {asin} on {marketplace}")
    uow.invalidate(
        compare_key(marketplace, asin, ALL_COMPETITORS),
        compare_key(marketplace, asin, comp),
    )
    return Response(status_code=204, headers={"Cache-Control": "no-store"})

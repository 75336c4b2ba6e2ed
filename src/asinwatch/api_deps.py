"""What every /v1 router shares: the DB session, the `marketplace` and ASIN parameters, the
role dependencies, the documented error responses, and cache-first JSON reads.

Routers stay thin: validate input here (422 problem, never 500), call a service, answer with
`cached_json` (a service's read through the cache: ETag + Cache-Control) or `uncached_json`.

Cache-first reads: the service reads through the cache (`kit.readthrough`: SWR, single
flight; a stale hit carries its ``stale_at``; Redis down is ``X-Cache: bypass``) and
`cached_json` turns the read into the response. The ETag is weak and computed from the cached
value only, so the same data revalidates to 304 whether it is served fresh or stale. The ETag
and the fresh body are derived once per cached value (kept in the entry's memo), not per
request. ``Cache-Control: private, max-age=<fresh>``
and ``Vary: Authorization``: the data is per-user-authorised, so no shared cache (edge) may
keep it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from asinwatch.auth.dependencies import require_role
from asinwatch.auth.guards import idempotency
from asinwatch.auth.roles import Principal
from asinwatch.catalog.cache_keys import compare_key, product_keys
from asinwatch.catalog.marketplaces import ASIN_PATTERN, MARKETPLACES, normalise_asin
from asinwatch.catalog.models import Product
from asinwatch.catalog.repository import get_product
from asinwatch.catalog.service import ALL_COMPETITORS
from asinwatch.config import get_settings
from asinwatch.kit import readthrough
from asinwatch.kit.cache import Cache
from asinwatch.kit.etag import dumps, json_bytes_response, json_response, make_etag
from asinwatch.kit.idempotency import Idempotency
from asinwatch.kit.pagination import MAX_CURSOR_CHARS, PageParams
from asinwatch.kit.problems import PROBLEM_MEDIA_TYPE, ProblemError
from asinwatch.kit.readthrough import Cached
from asinwatch.kit.unavailable import retry_db
from asinwatch.kit.unit_of_work import UnitOfWork, unit_of_work

CACHE_HEADER = "X-Cache"
VARY = "Authorization"

# --- roles ---------------------------------------------------------------------------------

Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]


# --- problems in the OpenAPI document ------------------------------------------------------


class Problem(BaseModel):
    """An RFC 9457 problem (``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None


def problem_doc(description: str) -> dict[str, Any]:
    return {
        "model": Problem,
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


_DESCRIPTIONS = {
    400: "Malformed request (cursor, header)",
    401: "Missing or invalid bearer token",
    403: "The token's role is not allowed to do this",
    404: "Not found",
    409: "Conflict (a request with this Idempotency-Key is in flight)",
    413: "Request body too large",
    422: "Validation failed",
    429: "Rate limit exceeded (see Retry-After)",
    503: "A dependency (database, Redis) is briefly unavailable (see Retry-After)",
}
AUTH_ERRORS = (400, 401, 403, 413, 422, 429, 503)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the given problem status codes (plus the auth ones)."""
    return {code: problem_doc(_DESCRIPTIONS[code]) for code in sorted({*AUTH_ERRORS, *codes})}


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified (If-None-Match matched the ETag)"}
}


# --- database ------------------------------------------------------------------------------


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work (kit.unit_of_work): committed once, when the endpoint
    returns and before the response is sent (``scope="function"``), then the cache keys and
    jobs queued on it are flushed; rolled back, dropping them, when the endpoint raises.
    Endpoints never commit."""
    cache = getattr(request.app.state, "cache", None)
    async with unit_of_work(cache if isinstance(cache, Cache) else None) as uow:
        # Connect first, retried on a connection error (a database restart), so the endpoint
        # starts with a working connection; still down: 503 (kit.unavailable).
        await retry_db(lambda: _connect(uow.session))
        yield uow


async def _connect(session: AsyncSession) -> None:
    try:
        await session.connection()
    except BaseException:
        await session.rollback()
        raise


Uow = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


async def get_session(uow: Uow) -> AsyncSession:
    """The request unit of work's session (the same one for every dependency)."""
    return uow.session


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def request_idempotency(
    idem: Annotated[Idempotency, Depends(idempotency)], uow: Uow
) -> Idempotency:
    """The request's Idempotency-Key context, committing the unit of work before it stores
    the response (a replay never stands for a write that was rolled back)."""
    idem.commit = uow.commit
    return idem


Idem = Annotated[Idempotency, Depends(request_idempotency, scope="function")]


# --- parameters ----------------------------------------------------------------------------

MARKETPLACE_PATTERN = "^(?:" + "|".join(re.escape(m) for m in sorted(MARKETPLACES)) + ")$"


async def marketplace_param(
    marketplace: Annotated[
        str | None,
        Query(
            pattern=MARKETPLACE_PATTERN,
            description="Amazon marketplace domain; default: the server's default marketplace",
            examples=["amazon.com"],
        ),
    ] = None,
) -> str:
    return marketplace or get_settings().default_marketplace


Marketplace = Annotated[str, Depends(marketplace_param)]


async def asin_param(
    asin: Annotated[
        str, Path(pattern=ASIN_PATTERN, description="ASIN (10 characters)", examples=["B0C1234567"])
    ],
) -> str:
    try:
        return normalise_asin(asin)
    except ValueError as exc:  # the pattern makes this unreachable; kept as a guard
        raise validation_problem(["path", "asin"], str(exc)) from None


Asin = Annotated[str, Depends(asin_param)]


# What the kit's cursors look like: base64url(sort key) "." base64url(12-byte HMAC tag).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}$"
# The schema's bound; the configured settings.api.max_page_size (at most this) applies too.
PAGE_LIMIT_MAX = 1000


class ApiPage(PageParams):
    """The kit's page parameters; a well-formed cursor this server did not issue for this list
    (edited, foreign, or signed with an older secret) names no page: 404 ``unknown-cursor``."""

    def after(self, *, scope: str = "") -> Any:
        try:
            return super().after(scope=scope)
        except ProblemError as exc:
            raise ProblemError(
                404,
                title="Unknown cursor",
                detail="this cursor was not issued for this list; start again without it",
                type_suffix="unknown-cursor",
            ) from exc


async def page_params(
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_CHARS,
            pattern=CURSOR_PATTERN,
            description="next_cursor of the previous page (opaque)",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=PAGE_LIMIT_MAX,
            description="page size; default and cap from the server's settings",
        ),
    ] = None,
) -> PageParams:
    """``?limit=`` (clamped to settings.api.max_page_size) and ``?cursor=``."""
    api = get_settings().api
    size = min(limit or api.default_page_size, api.max_page_size)
    return ApiPage(limit=size, cursor=cursor)


Paging = Annotated[PageParams, Depends(page_params)]


def uuid_or_404(value: str, what: str) -> uuid.UUID:
    """A resource id in the path: anything that is not a UUID names no resource (404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(f"no {what} {value[:64]!r}") from None


UuidPath = Annotated[str, Path(json_schema_extra={"format": "uuid"})]


def validation_problem(loc: list[str], msg: str) -> ProblemError:
    """A 422 shaped like the kit's validation errors, for checks pydantic cannot express."""
    return ProblemError(
        422,
        title="Request validation failed",
        detail=msg,
        type_suffix="validation-error",
        extra={"errors": [{"loc": loc, "msg": msg, "type": "value_error"}]},
    )


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, detail=detail, type_suffix="not-found")


# --- cache-first reads ---------------------------------------------------------------------


async def require_product(session: AsyncSession, marketplace: str, asin: str) -> Product:
    """The product, or a 404 problem when the ASIN is not known on that marketplace."""
    product = await get_product(session, marketplace, asin)
    if product is None:
        raise not_found(f"product {asin} is not known on {marketplace}")
    return product


def optional_cache(request: Request) -> Cache | None:
    """The app's cache, or None when reads are configured to go straight to the database."""
    if not get_settings().api.read_cache_enabled:
        return None
    cache = getattr(request.app.state, "cache", None)
    return cache if isinstance(cache, Cache) else None


async def get_optional_cache(request: Request) -> Cache | None:
    """Dependency form of `optional_cache` (hot endpoints call the function directly: every
    dependency FastAPI resolves costs several microseconds per request)."""
    return optional_cache(request)


OptionalCache = Annotated[Cache | None, Depends(get_optional_cache)]


def cached_json(request: Request, read: Cached[Any], *, max_age: int, missing: str) -> Response:
    """The HTTP face of a value read through the cache (`kit.readthrough`): 404 ``missing``
    when the value is None (a cached "not found"), else the JSON body with ``stale_at``, a
    weak ETag of the value (304 on a match), ``Cache-Control: private, max-age=<max_age>``
    and ``X-Cache: <outcome>``."""
    headers = {CACHE_HEADER: read.outcome}
    value, memo = read.value, read.memo
    if value is None:
        raise ProblemError(404, detail=missing, type_suffix="not-found", headers=headers)
    etag = memo.get("etag")
    if etag is None:
        etag = memo["etag"] = make_etag(dumps(value), weak=True)
    if read.stale_at is None:
        body = memo.get("fresh_body")
        if body is None:
            body = memo["fresh_body"] = dumps({**value, "stale_at": None})
    else:
        body = dumps({**value, "stale_at": read.stale_at.isoformat()})
    return json_bytes_response(
        request,
        body,
        etag=etag,
        cache_control=f"private, max-age={max_age}",
        vary=VARY,
        headers=headers,
    )


def product_read_keys(marketplace: str, asin: str) -> list[str]:
    """Every cached read about one product: summary, named metric ranges, competition."""
    return [*product_keys(marketplace, asin), compare_key(marketplace, asin, ALL_COMPETITORS)]


async def invalidate(request: Request, *keys: str) -> None:
    """Drop `keys` everywhere (Redis + every process's local layer) after a committed write.
    Redis down: the keys expire by themselves (local TTL backstop, Redis fresh time)."""
    cache = getattr(request.app.state, "cache", None)
    await readthrough.invalidate(cache if isinstance(cache, Cache) else None, *keys)


def uncached_json(
    request: Request, content: Any, *, max_age: int = 0, status_code: int = 200
) -> Response:
    """A JSON read that is not cached server-side (lists, admin views): ETag + 304 still."""
    cache_control = f"private, max-age={max_age}" if max_age else "private, no-cache"
    return json_response(
        request, content, status_code=status_code, cache_control=cache_control, vary=VARY
    )


def write_json(
    content: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """The response of a write: never stored by any cache."""
    return Response(
        content=dumps(content),
        status_code=status_code,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )

"""ETags and conditional GET (RFC 9110 §8.8.3, §13.1.2), and JSON responses built with orjson.

- `make_etag(body)` / `etag_for_version(version)`: strong or weak validators.
- `if_none_match_matches(header, etag)`: the weak comparison If-None-Match uses (``*``,
  lists, ``W/`` prefixes ignored on both sides).
- `not_modified_response(...)`: a 304 carrying the ETag, Cache-Control and Vary the 200 would.
- `json_response(request, content, ...)`: orjson body + ETag + Cache-Control + Vary, answering
  304 by itself when a GET/HEAD's If-None-Match matches; `json_bytes_response` does the same
  for a body serialised beforehand (kept with a cached value). Endpoint use::

      @router.get("/v1/products/{asin}")
      async def product(asin: str, request: Request, ...) -> Response:
          value, stale_at, _ = await cache.get_or_load(...)
          return json_response(request, {**value, "stale_at": stale_at})
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

# Authenticated data: clients may keep it but must revalidate (cheap with If-None-Match).
DEFAULT_CACHE_CONTROL = "private, no-cache"
DEFAULT_VARY = "Authorization, Accept-Encoding"
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def make_etag(body: bytes, *, weak: bool = False) -> str:
    """A validator for exactly these bytes: strong ``"<hash>"`` or weak ``W/"<hash>"``."""
    tag = f'"{_digest(body)}"'
    return "W/" + tag if weak else tag


def etag_for_version(version: object, *, weak: bool = True) -> str:
    """A validator from a version (row version, updated_at ...): weak by default, because two
    serialisations of the same version are equivalent but not byte-identical."""
    return make_etag(str(version).encode(), weak=weak)


def _opaque(tag: str) -> str | None:
    m = _ENTITY_TAG.fullmatch(tag.strip())
    return m.group(2) if m else None


def if_none_match_matches(if_none_match: str | None, etag: str) -> bool:
    """True when the If-None-Match header matches `etag` by weak comparison.

    ``*`` matches any current representation; a malformed header matches nothing.
    """
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    current = _opaque(etag)
    if current is None:
        return False
    pos = 0
    text = if_none_match
    while pos < len(text):
        m = _ENTITY_TAG.match(text, pos)
        if m is None or m.end() == pos:
            return False
        if m.group(2) == current:
            return True
        pos = m.end()
    return False


def _caching_headers(
    etag: str, cache_control: str | None, vary: str | None, extra: Mapping[str, str] | None
) -> dict[str, str]:
    headers = dict(extra or {})
    headers["ETag"] = etag
    if cache_control:
        headers["Cache-Control"] = cache_control
    if vary:
        headers["Vary"] = vary
    return headers


def not_modified_response(
    etag: str,
    *,
    cache_control: str | None = DEFAULT_CACHE_CONTROL,
    vary: str | None = DEFAULT_VARY,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """304 with no body and the validator/caching headers of the 200 it stands for."""
    return Response(status_code=304, headers=_caching_headers(etag, cache_control, vary, headers))


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(content: Any) -> bytes:
    """orjson with pydantic models (JSON mode) and Decimal (as string) supported."""
    return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


def json_response(
    request: Request,
    content: Any,
    *,
    status_code: int = 200,
    etag: str | None = None,
    weak: bool = False,
    cache_control: str | None = DEFAULT_CACHE_CONTROL,
    vary: str | None = DEFAULT_VARY,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON response with an ETag (from the body unless `etag` is given) that answers 304
    itself when the request is a GET/HEAD whose If-None-Match matches."""
    body = dumps(content)
    return json_bytes_response(
        request,
        body,
        etag=etag or make_etag(body, weak=weak),
        status_code=status_code,
        cache_control=cache_control,
        vary=vary,
        headers=headers,
    )


def json_bytes_response(
    request: Request,
    body: bytes,
    *,
    etag: str,
    status_code: int = 200,
    cache_control: str | None = DEFAULT_CACHE_CONTROL,
    vary: str | None = DEFAULT_VARY,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """`json_response` for a body already serialised (JSON bytes) with its validator."""
    if request.method in ("GET", "HEAD") and if_none_match_matches(
        request.headers.get("if-none-match"), etag
    ):
        return not_modified_response(etag, cache_control=cache_control, vary=vary, headers=headers)
    return Response(
        content=body,
        status_code=status_code,
        media_type="application/json",
        headers=_caching_headers(etag, cache_control, vary, headers),
    )

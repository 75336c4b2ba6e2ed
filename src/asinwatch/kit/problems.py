"""RFC 9457 problem details (``application/problem+json``) for every API error.

Owns `ProblemError` (the one exception endpoints raise for an HTTP error), `problem_response`
(the one place a problem body is built, also used by pure ASGI middlewares) and the FastAPI
exception handlers installed by `install_problem_handlers(app)`:

- `ProblemError` (and subclasses such as the auth errors) → its own status and headers;
- `RequestValidationError` → 422 with an ``errors`` list (``loc``, ``msg``, ``type``; the
  offending input is not echoed back);
- Starlette's `HTTPException` (router 404 / 405 with ``Allow`` ...) → same status as problem;
- any other exception → 500 with a generic body; the exception is logged with the request id.

Every body carries ``type`` (``https://asinwatch.dev/problems/<slug>``), ``title``, ``status``,
``detail``, ``instance`` (the request path) and ``request_id``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_BASE_URI = "https://asinwatch.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger(__name__)

# Members a caller may not override through `extra`: they are the RFC 9457 core.
_RESERVED = frozenset({"type", "title", "status", "detail", "instance", "request_id"})


def status_slug(status: int) -> str:
    """``404`` → ``not-found``: the default problem type slug for a status."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "http-error"
    return re.sub(r"[^a-z0-9]+", "-", phrase.lower()).strip("-")


def status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "HTTP error"


class ProblemError(StarletteHTTPException):
    """An HTTP error rendered as problem+json.

    It subclasses Starlette's `HTTPException` on purpose: FastAPI re-raises HTTP exceptions from
    body parsing and dependencies untouched, so a `ProblemError` raised anywhere (including a
    request-body reader) reaches the problem handler with its own status.
    """

    def __init__(
        self,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        type_suffix: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail or "", headers=dict(headers or {}))
        self.status = status
        self.title = title or status_title(status)
        self.type_suffix = type_suffix or status_slug(status)
        self.extra: dict[str, Any] = {k: v for k, v in (extra or {}).items() if k not in _RESERVED}

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE_URI + self.type_suffix


def request_id_of(scope_or_request: Request | Mapping[str, Any]) -> str | None:
    """The request id the request-id middleware stored in the ASGI scope state, if any."""
    scope = scope_or_request.scope if isinstance(scope_or_request, Request) else scope_or_request
    state = scope.get("state")
    if isinstance(state, Mapping):
        rid = state.get("request_id")
        if isinstance(rid, str):
            return rid
    bound = structlog.contextvars.get_contextvars().get("request_id")
    return bound if isinstance(bound, str) else None


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_suffix: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """A problem+json response; usable from handlers and from raw ASGI (`await resp(s, r, s)`)."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE_URI + (type_suffix or status_slug(status)),
        "title": title or status_title(status),
        "status": status,
        "detail": detail or "",
    }
    if instance is not None:
        body["instance"] = instance
    if request_id is not None:
        body["request_id"] = request_id
    for key, value in (extra or {}).items():
        if key not in _RESERVED:
            body[key] = value
    return Response(
        content=orjson.dumps(body, default=str),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_MEDIA_TYPE,
    )


def response_for(exc: ProblemError, request: Request) -> Response:
    return problem_response(
        exc.status,
        title=exc.title,
        detail=exc.detail,
        type_suffix=exc.type_suffix,
        instance=request.url.path,
        request_id=request_id_of(request),
        headers=exc.headers,
        extra=exc.extra,
    )


def internal_error_response(path: str, request_id: str | None) -> Response:
    """The 500 body: generic on purpose, the details are in the log under the request id."""
    return problem_response(
        500,
        detail="An unexpected error occurred; quote the request_id when reporting it.",
        type_suffix="internal-error",
        instance=path,
        request_id=request_id,
    )


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return response_for(exc, request)


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    return problem_response(
        422,
        title="Request validation failed",
        detail=f"{len(errors)} invalid field(s)",
        type_suffix="validation-error",
        instance=request.url.path,
        request_id=request_id_of(request),
        extra={"errors": errors},
    )


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == status_title(exc.status_code):
        detail = None
    return problem_response(
        exc.status_code,
        detail=detail,
        instance=request.url.path,
        request_id=request_id_of(request),
        headers=exc.headers,
    )


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    rid = request_id_of(request)
    log.error("unhandled_exception", request_id=rid, path=request.url.path, exc_info=exc)
    return internal_error_response(request.url.path, rid)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error of `app` as problem+json.

    The `Exception` handler runs in Starlette's outermost middleware, outside the app's own
    middlewares; `install_middleware` also converts unhandled errors further in, so the 500
    still carries the request id header and the security headers.
    """
    app.add_exception_handler(ProblemError, _problem_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(Exception, _unhandled_handler)

"""Pure ASGI middlewares for the API and `install_middleware(app)` that stacks them.

Pure ASGI (not `BaseHTTPMiddleware`) because they run on every request: no extra task, no
body buffering. The stack, outermost first:

1. `RequestIdMiddleware`: keeps a safe incoming ``X-Request-Id`` or makes a uuid4 hex; puts it
   on the response, in ``scope["state"]["request_id"]`` (= ``request.state.request_id``) and
   in structlog's context variables for every log line of the request.
2. `AccessLogMiddleware`: one ``http_request`` log line and the HTTP_REQUESTS / HTTP_LATENCY
   metrics, labelled by route template (``/v1/products/{asin}``), never the raw path.
3. `SecurityHeadersMiddleware`: nosniff, ``X-Frame-Options: DENY``, ``Referrer-Policy``, a
   strict CSP on non-HTML responses, HSTS when the request came over https (directly or, as
   the server believes it, ``X-Forwarded-Proto: https`` from a trusted proxy).
4. Starlette's `CORSMiddleware` with settings.api.cors_origins (exact origins, no
   credentials; not installed when the list is empty, so browsers get no CORS grant).
5. `IpRateLimitMiddleware` (kit.ratelimit): per-client-IP limit.
6. `BodySizeLimitMiddleware`: settings.api.max_body_bytes on Content-Length and on the stream.
7. `UnhandledErrorMiddleware`: turns an exception escaping the app into a 500 problem, inside
   the other middlewares so the 500 still gets its request id, headers and metrics.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asinwatch.config import Settings, get_settings
from asinwatch.kit.problems import (
    ProblemError,
    internal_error_response,
    problem_response,
    request_id_of,
)
from asinwatch.observability.metrics import HTTP_LATENCY, HTTP_REQUESTS

if TYPE_CHECKING:
    from asinwatch.kit.ratelimit import RateLimiter, SubjectLookup

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
# Letters, digits and a few separators: safe in logs and headers, bounded in length.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "<unmatched>"

CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-Id",
]
CORS_EXPOSE_HEADERS = [
    "ETag",
    "X-Request-Id",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Location",
    "Idempotent-Replayed",
]


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER)
        rid = incoming if incoming and SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        _state(scope)["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        # Cleared on both sides: a connection task may serve several requests.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.clear_contextvars()


def route_template(scope: Scope) -> str:
    """The matched route's path template (set by the router in the shared scope)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    return UNMATCHED_ROUTE


def _info_logged() -> bool:
    """False when the configured structlog level drops INFO lines (skip building them)."""
    is_enabled_for = getattr(structlog.get_config()["wrapper_class"], "is_enabled_for", None)
    if is_enabled_for is None:
        return True  # a wrapper class that does not say: let it decide
    return bool(is_enabled_for(None, logging.INFO))


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Metric children by label values (bounded: methods x route templates x statuses);
        # labels() takes a lock and builds its key on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _metrics(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                HTTP_REQUESTS.labels(method, route, str(status)),
                HTTP_LATENCY.labels(method, route),
            )
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_capturing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_capturing)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            route = route_template(scope)
            requests, latency = self._metrics(method, route, status)
            requests.inc()
            latency.observe(elapsed)
            if _info_logged():
                log.info(
                    "http_request",
                    method=method,
                    route=route,
                    path=scope.get("path", ""),
                    status=status,
                    latency_ms=round(elapsed * 1000, 2),
                )


STRICT_JSON_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS_VALUE = "max-age=31536000; includeSubDomains"


def came_over_https(scope: Scope) -> bool:
    """The scheme the server believes: uvicorn rewrites it from ``X-Forwarded-Proto`` only for
    a peer in ``api.trusted_proxies``; the header from anyone else is ignored."""
    return scope.get("scheme") == "https"


_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_CSP = (b"content-security-policy", STRICT_JSON_CSP.encode())
_HSTS = (b"strict-transport-security", HSTS_VALUE.encode())


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = came_over_https(scope)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                # One pass over the raw headers; each is added only when the app did not set it.
                raw = list(message.get("headers", ()))
                present = {name.lower() for name, _ in raw}
                content_type = next((v for n, v in raw if n.lower() == b"content-type"), b"")
                wanted = list(_SECURITY_HEADERS)
                # HTML (the dev docs UI) loads scripts; every API body is JSON and gets none.
                if not content_type.startswith(b"text/html"):
                    wanted.append(_CSP)
                if https:
                    wanted.append(_HSTS)
                raw.extend(header for header in wanted if header[0] not in present)
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_secured)


class BodySizeLimitMiddleware:
    """413 problem for bodies over `max_bytes`: by Content-Length up front, else while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ProblemError:
        return ProblemError(
            413,
            detail=f"request body exceeds {self.max_bytes} bytes",
            type_suffix="body-too-large",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await problem_response(
                    400,
                    detail="invalid Content-Length header",
                    instance=scope.get("path"),
                    request_id=request_id_of(scope),
                )(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await self._send_problem(self._too_large(), scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException subclass: FastAPI re-raises it from body parsing and the
                    # problem handler renders the 413.
                    raise self._too_large()
            return message

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, send_tracking)
        except ProblemError as exc:
            if started or exc.status != 413:
                raise
            await self._send_problem(exc, scope, receive, send)

    @staticmethod
    async def _send_problem(exc: ProblemError, scope: Scope, receive: Receive, send: Send) -> None:
        await problem_response(
            exc.status,
            detail=exc.detail,
            type_suffix=exc.type_suffix,
            instance=scope.get("path"),
            request_id=request_id_of(scope),
            headers={"Connection": "close"},
        )(scope, receive, send)


class UnhandledErrorMiddleware:
    """Renders an exception that escaped the app as a problem (500, or a stray ProblemError)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            path = str(scope.get("path", ""))
            rid = request_id_of(scope)
            if started:
                log.error("unhandled_exception_after_response_start", path=path, exc_info=exc)
                raise
            if isinstance(exc, ProblemError):
                response = problem_response(
                    exc.status,
                    title=exc.title,
                    detail=exc.detail,
                    type_suffix=exc.type_suffix,
                    instance=path,
                    request_id=rid,
                    headers=exc.headers,
                    extra=exc.extra,
                )
            else:
                log.error("unhandled_exception", path=path, request_id=rid, exc_info=exc)
                response = internal_error_response(path, rid)
            await response(scope, receive, send)


def install_middleware(
    app: FastAPI,
    settings: Settings | None = None,
    *,
    rate_limit: bool = True,
    rate_limiter: RateLimiter | None = None,
    known_subject: SubjectLookup | None = None,
) -> None:
    """Stack the API middlewares on `app` in the order given in the module docstring.

    Call it once, before the app starts; pair it with `install_problem_handlers(app)`.
    With `rate_limit`, `rate_limiter` (default: a new `RateLimiter` on the settings' Redis) is
    kept as ``app.state.rate_limiter``; the per-principal dependency uses the same one, and
    `known_subject` (auth.guards.known_subject) lets both limits take one Redis call.
    """
    from asinwatch.kit.ratelimit import IpRateLimitMiddleware, RateLimiter

    s = settings or get_settings()
    # add_middleware puts each new middleware outside the previous ones: innermost first.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=s.api.max_body_bytes)
    if rate_limit:
        limiter = rate_limiter or RateLimiter()
        app.state.rate_limiter = limiter
        app.add_middleware(
            IpRateLimitMiddleware,
            limiter=limiter,
            limit=s.api.rate_limit_per_ip_per_minute,
            known_subject=known_subject,
        )
    if s.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=s.api.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            allow_credentials=False,  # bearer tokens, no cookies
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)

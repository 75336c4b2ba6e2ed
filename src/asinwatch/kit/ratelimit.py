"""API rate limits in Redis: per client IP (middleware) and per principal (dependency).

Algorithm: GCRA (generic cell rate algorithm) in one Lua script. Why not the `limits`
library: its asyncio Redis backend needs `coredis` (another client stack next to redis-py) and
its window stats take a second round trip, while the RateLimit headers need remaining/reset for
every request. GCRA gives, atomically and in one call, the decision, remaining quota, reset and
Retry-After, stores one number per caller, and allows a burst of the full per-minute quota
without the double-burst at window edges of fixed windows. The clock is Redis' own (TIME), so
API processes with skewed clocks agree.

A limit never breaks the API: when Redis is down or slow, requests pass (fail open) and Redis
is not retried for `retry_after_failure_s`.

Headers (draft-ietf-httpapi-ratelimit-headers): every limited response carries
``RateLimit-Policy: "ip";q=1200;w=60, "principal";q=600;w=60`` and
``RateLimit: "<most constrained policy>";r=<remaining>;t=<seconds to reset>``; a 429 adds
``Retry-After``.

Per-principal use (a router-level dependency; `authenticate` is resolved once per request)::

    router = APIRouter(prefix="/v1", dependencies=[Depends(enforce_principal_rate_limit)])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio as aioredis
import structlog
from fastapi import Depends, Request
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asinwatch.auth.dependencies import authenticate
from asinwatch.auth.roles import Principal
from asinwatch.config import get_settings
from asinwatch.kit.problems import ProblemError, problem_response, request_id_of
from asinwatch.kit.redis_client import async_redis

log = structlog.get_logger(__name__)

WINDOW_S = 60
DEFAULT_EXEMPT_PATHS = ("/v1/health", "/v1/metrics")

# KEYS[1] = bucket; ARGV[1] = limit per period; ARGV[2] = period in ms.
# Returns {allowed, remaining, retry_after_ms, reset_ms}.
_GCRA_LUA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = period / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
return {1, math.floor((now - allow_at) / interval), 0, math.ceil(new_tat - now)}
"""

_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class RateLimitDecision:
    policy: str
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int
    reset_s: int
    window_s: int = WINDOW_S

    def policy_item(self) -> str:
        return f'"{self.policy}";q={self.limit};w={self.window_s}'

    def state_item(self) -> str:
        return f'"{self.policy}";r={self.remaining};t={self.reset_s}'


def rate_limit_headers(decisions: list[RateLimitDecision]) -> dict[str, str]:
    """``RateLimit-Policy`` for all policies, ``RateLimit`` for the most constrained one."""
    if not decisions:
        return {}
    tightest = min(decisions, key=lambda d: (d.remaining, -d.reset_s))
    headers = {
        "RateLimit-Policy": ", ".join(d.policy_item() for d in decisions),
        "RateLimit": tightest.state_item(),
    }
    if not tightest.allowed:
        headers["Retry-After"] = str(max(1, tightest.retry_after_s))
    return headers


def too_many_requests(decisions: list[RateLimitDecision]) -> ProblemError:
    denied = next(d for d in decisions if not d.allowed)
    return ProblemError(
        429,
        detail=f"rate limit exceeded ({denied.limit} requests per {denied.window_s} s); "
        f"retry in {max(1, denied.retry_after_s)} s",
        type_suffix="rate-limited",
        headers=rate_limit_headers(decisions),
    )


class RateLimiter:
    """GCRA buckets in Redis under ``<key_prefix>ratelimit:<bucket>``; fails open."""

    def __init__(
        self,
        redis: aioredis.Redis | None = None,
        *,
        key_prefix: str | None = None,
        window_s: int = WINDOW_S,
        retry_after_failure_s: float = 1.0,
    ) -> None:
        self._redis = redis
        self._prefix = key_prefix if key_prefix is not None else get_settings().redis.key_prefix
        self._window_s = window_s
        self._retry_after_failure_s = retry_after_failure_s
        self._down_until = 0.0
        self._script: AsyncScript | None = None
        self.healthy = True

    def _gcra(self) -> AsyncScript:
        if self._script is None:
            if self._redis is None:
                self._redis = async_redis()
            self._script = self._redis.register_script(_GCRA_LUA)  # EVALSHA, EVAL on a miss
        return self._script

    async def hit(self, bucket: str, limit: int, policy: str) -> RateLimitDecision | None:
        """Count one request against `bucket`; None when Redis is unavailable (allow it)."""
        if time.monotonic() < self._down_until:
            return None
        try:
            raw: Any = await self._gcra()(
                keys=[self._prefix + "ratelimit:" + bucket], args=[limit, self._window_s * 1000]
            )
        except _REDIS_ERRORS as exc:
            self._down_until = time.monotonic() + self._retry_after_failure_s
            if self.healthy:
                log.warning("rate_limit_redis_unavailable", error=str(exc))
            self.healthy = False
            return None
        self.healthy = True
        allowed, remaining, retry_ms, reset_ms = (int(x) for x in raw)
        return RateLimitDecision(
            policy=policy,
            allowed=bool(allowed),
            limit=limit,
            remaining=max(0, remaining),
            retry_after_s=math.ceil(retry_ms / 1000),
            reset_s=math.ceil(reset_ms / 1000),
            window_s=self._window_s,
        )

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _decisions(scope: Scope) -> list[RateLimitDecision]:
    state: dict[str, Any] = scope.setdefault("state", {})
    found: list[RateLimitDecision] = state.setdefault("rate_limit_decisions", [])
    return found


class IpRateLimitMiddleware:
    """Per-client-IP limit before anything else runs; also writes the RateLimit headers.

    The client IP is the ASGI ``client``: behind the proxy, run uvicorn with
    ``--proxy-headers --forwarded-allow-ips=<proxy>`` so it is the real client, never a
    header an attacker can set.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        limit: int,
        exempt_paths: tuple[str, ...] = DEFAULT_EXEMPT_PATHS,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.limit = limit
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        decision = await self.limiter.hit(f"ip:{ip}", self.limit, "ip")
        decisions = _decisions(scope)
        if decision is not None:
            decisions.append(decision)
            if not decision.allowed:
                exc = too_many_requests(decisions)
                await problem_response(
                    429,
                    detail=exc.detail,
                    type_suffix=exc.type_suffix,
                    instance=scope.get("path"),
                    request_id=request_id_of(scope),
                    headers=exc.headers,
                )(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "ratelimit" not in headers:
                    for name, value in rate_limit_headers(decisions).items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def get_rate_limiter(request: Request) -> RateLimiter:
    """The app's limiter (``app.state.rate_limiter``, set by `install_middleware`)."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = request.app.state.rate_limiter = RateLimiter()
    assert isinstance(limiter, RateLimiter)
    return limiter


async def enforce_principal_rate_limit(
    request: Request,
    principal: Annotated[Principal, Depends(authenticate)],
    limiter: Annotated[RateLimiter, Depends(get_rate_limiter)],
) -> Principal:
    """Dependency: settings.api.rate_limit_per_minute per token subject, else 429 problem."""
    limit = get_settings().api.rate_limit_per_minute
    decision = await limiter.hit(f"sub:{principal.sub}", limit, "principal")
    if decision is not None:
        decisions = _decisions(request.scope)
        decisions.append(decision)
        if not decision.allowed:
            raise too_many_requests(decisions)
    return principal

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

Per-principal use (a router-level dependency; `authenticate` is resolved once per request;
`auth.guards.enforce_principal_rate_limit` authenticates, then calls `charge_principal` here,
since kit imports no auth)::

    router = APIRouter(prefix="/v1", dependencies=[Depends(enforce_principal_rate_limit)])

One round trip when both limits apply: the IP middleware also charges the principal bucket in
the same Lua call when (a) the bearer token verified recently (the verifier's claims cache: a
dictionary look-up, no verification) and (b) earlier requests showed that this method and
path reach the per-principal dependency. The script checks the IP bucket
first and stops at the first refusal, exactly like the two separate calls. The dependency still
authenticates the token in full and then uses that decision (same limiter, limit and subject)
instead of calling Redis again, so a principal refusal is the same 429 from the same place.
Anything else (an unknown token, another route, overridden dependencies) takes the two-call
path.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from fastapi import Request
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asinwatch.config import get_settings
from asinwatch.kit.problems import ProblemError, problem_response, request_id_of
from asinwatch.kit.redis_client import async_redis

log = structlog.get_logger(__name__)

WINDOW_S = 60
DEFAULT_EXEMPT_PATHS = ("/v1/health", "/v1/metrics")

# KEYS = buckets, checked in order; ARGV[1] = period in ms; ARGV[1 + i] = limit of KEYS[i].
# Returns "allowed remaining retry_after_ms reset_ms" per bucket checked, space-separated (one
# bulk string parses much faster than nested arrays), and stops after the first refusal (later
# buckets are not charged): the same as one call per bucket in turn.
_GCRA_LUA = """
local period = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local out = {}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 1])
  local interval = period / limit
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - period
  if allow_at > now then
    table.insert(out, string.format('0 0 %d %d', math.ceil(allow_at - now), math.ceil(tat - now)))
    return table.concat(out, ' ')
  end
  redis.call('SET', key, string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
  table.insert(out, string.format('1 %d 0 %d', math.floor((now - allow_at) / interval),
    math.ceil(new_tat - now)))
end
return table.concat(out, ' ')
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
        decisions = await self.hit_many([(bucket, limit, policy)])
        return decisions[0] if decisions else None

    async def hit_many(
        self, buckets: Sequence[tuple[str, int, str]]
    ) -> list[RateLimitDecision] | None:
        """Count one request against each (bucket, limit, policy) in order, in one Redis call,
        stopping at the first refusal (the last decision returned); None when Redis is
        unavailable (allow it)."""
        if time.monotonic() < self._down_until:
            return None
        try:
            raw: Any = await self._gcra()(
                keys=[self._prefix + "ratelimit:" + bucket for bucket, _, _ in buckets],
                args=[self._window_s * 1000, *(limit for _, limit, _ in buckets)],
            )
        except _REDIS_ERRORS as exc:
            self._down_until = time.monotonic() + self._retry_after_failure_s
            if self.healthy:
                log.warning("rate_limit_redis_unavailable", error=str(exc))
            self.healthy = False
            return None
        self.healthy = True
        numbers = [int(x) for x in raw.split()]
        decisions = []
        for (_, limit, policy), at in zip(buckets, range(0, len(numbers), 4), strict=False):
            allowed, remaining, retry_ms, reset_ms = numbers[at : at + 4]
            decisions.append(
                RateLimitDecision(
                    policy=policy,
                    allowed=bool(allowed),
                    limit=limit,
                    remaining=max(0, remaining),
                    retry_after_s=math.ceil(retry_ms / 1000),
                    reset_s=math.ceil(reset_ms / 1000),
                    window_s=self._window_s,
                )
            )
        return decisions

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _decisions(scope: Scope) -> list[RateLimitDecision]:
    state: dict[str, Any] = scope.setdefault("state", {})
    found: list[RateLimitDecision] = state.setdefault("rate_limit_decisions", [])
    return found


@dataclass(frozen=True)
class _PrincipalPrecharge:
    """The principal decision the IP middleware already took for this request."""

    limiter: RateLimiter
    sub: str
    limit: int
    decision: RateLimitDecision


_PRECHARGE_STATE = "principal_rate_limit_precharge"
_APPLIED_STATE = "principal_rate_limit_applied"
_GUARDED_PATHS_MAX = 8192


# The subject of the request's bearer token when it is known without verifying it (a recent
# verification), else None: what lets the IP middleware charge the principal bucket too.
SubjectLookup = Callable[[Scope], str | None]


class IpRateLimitMiddleware:
    """Per-client-IP limit before anything else runs; also writes the RateLimit headers.

    The client IP is the ASGI ``client``: behind the proxy, run uvicorn with
    ``--proxy-headers --forwarded-allow-ips=<proxy>`` so it is the real client, never a
    header an attacker can set.

    One Redis call for both limits (see the module docstring): the middleware learns which
    (method, path) pairs reach the per-principal dependency (`charge_principal`) from the
    dependency itself (it marks the request), keeps them in a bounded LRU, and forgets a pair
    as soon as a request it charged in advance does not reach the dependency. Learning from
    what actually ran keeps this independent of how the framework routes. Without
    `known_subject` (kit knows no tokens: auth.guards.known_subject) every request takes the
    two-call path.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        limit: int,
        exempt_paths: tuple[str, ...] = DEFAULT_EXEMPT_PATHS,
        known_subject: SubjectLookup | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.limit = limit
        self.exempt_paths = exempt_paths
        self.known_subject = known_subject
        self._guarded: OrderedDict[tuple[str, str], None] = OrderedDict()

    def _principal_bucket(self, scope: Scope, key: tuple[str, str]) -> tuple[str, int] | None:
        """(subject, limit) when the principal limit will apply and the token is known."""
        if self.known_subject is None or key not in self._guarded:
            return None
        app = scope.get("app")
        if getattr(getattr(app, "state", None), "rate_limiter", None) is not self.limiter:
            return None  # the dependency would use another limiter
        sub = self.known_subject(scope)  # None too when a test overrides the auth dependencies
        if sub is None:
            return None
        self._guarded.move_to_end(key)
        return sub, get_settings().api.rate_limit_per_minute

    def _learn(self, key: tuple[str, str], state: dict[str, Any], precharged: bool) -> None:
        if state.get(_APPLIED_STATE):
            self._guarded[key] = None
            self._guarded.move_to_end(key)
            while len(self._guarded) > _GUARDED_PATHS_MAX:
                self._guarded.popitem(last=False)
        elif precharged:
            self._guarded.pop(key, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        key = (scope["method"], scope["path"])
        buckets = [(f"ip:{ip}", self.limit, "ip")]
        principal = self._principal_bucket(scope, key)
        if principal is not None:
            buckets.append((f"sub:{principal[0]}", principal[1], "principal"))
        found = await self.limiter.hit_many(buckets)
        decisions = _decisions(scope)
        state: dict[str, Any] = scope["state"]
        if found:
            decisions.append(found[0])
            if not found[0].allowed:
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
            if principal is not None and len(found) > 1:
                state[_PRECHARGE_STATE] = _PrincipalPrecharge(
                    self.limiter, principal[0], principal[1], found[1]
                )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "ratelimit" not in headers:
                    for name, value in rate_limit_headers(decisions).items():
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self._learn(key, state, principal is not None)


def app_rate_limiter(request: Request) -> RateLimiter:
    """The app's limiter (``app.state.rate_limiter``, set by `install_middleware`)."""
    limiter = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = request.app.state.rate_limiter = RateLimiter()
    assert isinstance(limiter, RateLimiter)
    return limiter


async def charge_principal(request: Request, sub: str) -> None:
    """settings.api.rate_limit_per_minute per token subject `sub`, else 429 problem: the body of
    the per-principal dependency, which authenticates first (auth.guards, since kit imports no
    auth)."""
    # The limiter is looked up here, not as a sub-dependency: each dependency FastAPI
    # resolves costs several microseconds, and this one runs on every /v1 request.
    limiter = app_rate_limiter(request)
    limit = get_settings().api.rate_limit_per_minute
    state: dict[str, Any] = request.scope.setdefault("state", {})
    state[_APPLIED_STATE] = True  # teaches the IP middleware that this route is guarded
    pre = state.pop(_PRECHARGE_STATE, None)
    if (
        isinstance(pre, _PrincipalPrecharge)
        and pre.limiter is limiter
        and pre.sub == sub
        and pre.limit == limit
    ):
        decision: RateLimitDecision | None = pre.decision  # charged with the IP, one call
    else:
        decision = await limiter.hit(f"sub:{sub}", limit, "principal")
    if decision is not None:
        decisions = _decisions(request.scope)
        decisions.append(decision)
        if not decision.allowed:
            raise too_many_requests(decisions)

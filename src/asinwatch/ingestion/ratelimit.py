"""The global upstream rate limit and the bound on in-flight batches, both shared in Redis.

Every worker process of every host draws from ONE token bucket per upstream, so the sum of
their requests stays under `settings.ingest.rate_limit_per_s` (burst `rate_limit_burst`).
Celery's own `rate_limit` is per worker and cannot do this.

* The limiting itself is pyrate-limiter's GCRA token bucket on its Redis state store (atomic
  Lua inside the library). GCRA keeps one timestamp per key and takes the rate as an argument
  on every call, which is what makes the limit adaptive without resetting the bucket.
* Adaptive (AIMD): a 429 halves an `allowed fraction` kept in Redis (at most once per
  `cut_interval_s`, so a burst of 429s from 8 workers is one cut, not eight), down to
  `min_factor`; every success adds `recover_step` back, up to 1. The effective rate is
  `rate_per_s * factor`. The factor lives in a Redis hash with a TTL so a slowdown from an old
  incident does not outlive it. No library offers the adaptive part; the tiny Lua script below
  only makes the read-modify-write of that factor atomic across workers.
* `BatchSlots` bounds the batches in flight across all workers
  (`settings.ingest.max_concurrent_batches`): a counting semaphore of leases in a sorted set
  (score = lease expiry). A worker killed with SIGKILL cannot release its slot, so leases
  expire by themselves and are renewed on every upstream request and by the batch's
  heartbeat (pipeline.py), so a short lease frees a dead worker's slot within seconds.
  redis-py has locks but no semaphore, hence the second short script.

Every key starts with `settings.redis.key_prefix`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any

import redis.asyncio as aioredis
import structlog
from pyrate_limiter import Rate, RateItem, RedisStateStore, StateBucket, TokenBucket

from asinwatch.observability.metrics import RATE_LIMIT_WAIT

log = structlog.get_logger(__name__)

# AIMD on the allowed fraction: halve on 429 (once per cut interval), add a step on success.
_ADJUST_LUA = """
local key = KEYS[1]
local mode = ARGV[1]
local now_ms = tonumber(ARGV[2])
local min_factor = tonumber(ARGV[3])
local step = tonumber(ARGV[4])
local cut_interval_ms = tonumber(ARGV[5])
local ttl_ms = tonumber(ARGV[6])
local factor = tonumber(redis.call('HGET', key, 'factor') or '1')
local last_cut = tonumber(redis.call('HGET', key, 'last_cut_ms') or '0')
if mode == 'cut' then
  if now_ms - last_cut >= cut_interval_ms then
    factor = math.max(min_factor, factor / 2)
    redis.call('HSET', key, 'factor', tostring(factor), 'last_cut_ms', tostring(now_ms))
    redis.call('HINCRBY', key, 'cuts', 1)
  end
else
  if factor >= 1 then
    return tostring(factor)
  end
  factor = math.min(1, factor + step)
  redis.call('HSET', key, 'factor', tostring(factor))
end
redis.call('PEXPIRE', key, ttl_ms)
return tostring(factor)
"""

# Counting semaphore with expiring leases: drop expired leases, then take one if any is free.
_SLOT_ACQUIRE_LUA = """
local key = KEYS[1]
local now_ms = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local token = ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms)
if redis.call('ZSCORE', key, token) then
  redis.call('ZADD', key, now_ms + lease_ms, token)
  return 1
end
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now_ms + lease_ms, token)
  redis.call('PEXPIRE', key, lease_ms * 2)
  return 1
end
return 0
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class LimiterConfig:
    rate_per_s: float
    burst: int
    min_factor: float = 1 / 64
    recover_step: float = 0.05
    cut_interval_s: float = 1.0
    factor_ttl_s: int = 900


def effective_rate(config: LimiterConfig, factor: float) -> Rate:
    """The token bucket for a factor: `burst` tokens refilling at `rate_per_s * factor`/s."""
    per_s = max(config.rate_per_s * max(factor, config.min_factor), 1e-6)
    # GCRA reads limit/interval as one token per interval/limit ms; keep limit = burst so
    # integer milliseconds stay precise at low rates.
    interval_ms = max(1, round(config.burst * 1000 / per_s))
    return Rate(config.burst, interval_ms, burst=config.burst)


class AdaptiveRateLimiter:
    """A global, adaptive token bucket for one upstream (e.g. "apify")."""

    def __init__(self, client: aioredis.Redis, key_prefix: str, name: str, config: LimiterConfig):
        self._client = client
        self._config = config
        self.bucket_key = f"{key_prefix}ratelimit:{name}:bucket"
        self.factor_key = f"{key_prefix}ratelimit:{name}:adaptive"
        self._store = RedisStateStore(client, self.bucket_key)
        self._adjust = client.register_script(_ADJUST_LUA)
        self._algorithm = TokenBucket()

    @property
    def config(self) -> LimiterConfig:
        return self._config

    async def factor(self) -> float:
        raw = await self._client.hget(self.factor_key, "factor")
        return float(raw) if raw is not None else 1.0

    async def acquire(self, timeout_s: float | None = None) -> float:
        """Wait until a request may go out; returns the seconds waited.

        Raises TimeoutError when `timeout_s` passes first.
        """
        started = time.monotonic()
        while True:
            factor = await self.factor()
            bucket = StateBucket(
                [effective_rate(self._config, factor)], algorithm=self._algorithm, store=self._store
            )
            item = RateItem("request", _now_ms())
            admitted = bucket.put(item)
            if await admitted if isawaitable(admitted) else admitted:
                waited = time.monotonic() - started
                RATE_LIMIT_WAIT.observe(waited)
                return waited
            pending = bucket.waiting(item)
            wait_ms = await pending if isawaitable(pending) else pending
            # Re-read the factor at least every second: another worker may have cut it.
            delay = min(max(int(wait_ms), 1) / 1000, 1.0)
            if timeout_s is not None and time.monotonic() - started + delay > timeout_s:
                raise TimeoutError(f"rate limit wait exceeded {timeout_s:.1f}s")
            await asyncio.sleep(delay)

    async def on_rate_limited(self, retry_after_s: float | None = None) -> float:
        """Upstream said 429: halve the allowed rate for every worker. Returns the new factor."""
        factor = float(await self._run_adjust("cut"))
        log.warning("upstream rate limited; slowing down", factor=factor, retry_after=retry_after_s)
        return factor

    async def on_success(self) -> float:
        """A request went through: recover the allowed rate additively."""
        return float(await self._run_adjust("recover"))

    async def reset(self) -> None:
        await self._client.delete(self.bucket_key, self.factor_key)

    async def _run_adjust(self, mode: str) -> Any:
        c = self._config
        return await self._adjust(
            keys=[self.factor_key],
            args=[
                mode,
                _now_ms(),
                c.min_factor,
                c.recover_step,
                int(c.cut_interval_s * 1000),
                c.factor_ttl_s * 1000,
            ],
        )


class BatchSlots:
    """At most `limit` batches in flight across all workers (leases that expire)."""

    def __init__(
        self, client: aioredis.Redis, key_prefix: str, limit: int, lease_s: float = 120.0
    ) -> None:
        self._client = client
        self.key = f"{key_prefix}ingest:batch-slots"
        self.limit = limit
        self.lease_ms = int(lease_s * 1000)
        self._acquire = client.register_script(_SLOT_ACQUIRE_LUA)

    async def try_acquire(self, token: str) -> bool:
        got = await self._acquire(
            keys=[self.key], args=[_now_ms(), self.limit, self.lease_ms, token]
        )
        return bool(int(got))

    async def acquire(self, token: str | None = None, poll_s: float = 0.2) -> str:
        """Wait for a free slot; returns the lease token to renew and release."""
        token = token or uuid.uuid4().hex
        started = time.monotonic()
        while not await self.try_acquire(token):  # noqa: ASYNC110 - the waiters are other hosts
            await asyncio.sleep(poll_s)
        waited = time.monotonic() - started
        if waited > 1:
            log.info("waited for a batch slot", seconds=round(waited, 2), limit=self.limit)
        return token

    async def renew(self, token: str) -> None:
        # The set's own TTL is renewed too: a lone long-running holder must not lose it.
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.key, {token: _now_ms() + self.lease_ms}, xx=True)
            pipe.pexpire(self.key, self.lease_ms * 2)
            await pipe.execute()

    async def release(self, token: str) -> None:
        await self._client.zrem(self.key, token)

    async def in_use(self) -> int:
        await self._client.zremrangebyscore(self.key, "-inf", _now_ms())
        return int(await self._client.zcard(self.key))

"""The global adaptive rate limiter and the batch slots, on the real Redis.

Instances built on the same keys stand in for different worker processes: they share state
only through Redis. No assertion depends on how fast the machine is (rates are chosen so a
stall could only make a test pass later, never fail it).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from asinwatch.ingestion.pipeline import LimiterHooks
from asinwatch.ingestion.ratelimit import (
    AdaptiveRateLimiter,
    BatchSlots,
    LimiterConfig,
    effective_rate,
)


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix(key_prefix: str) -> str:
    return f"{key_prefix}rl-{uuid.uuid4().hex[:8]}:"


async def _cleanup(client: aioredis.Redis, prefix: str) -> None:
    async for key in client.scan_iter(match=prefix + "*"):
        await client.delete(key)


def test_effective_rate_scales_with_the_factor() -> None:
    config = LimiterConfig(rate_per_s=10, burst=5)
    full, half = effective_rate(config, 1.0), effective_rate(config, 0.5)
    assert (full.limit, full.interval) == (5, 500)  # 5 tokens per 0.5 s = 10/s
    assert (half.limit, half.interval) == (5, 1000)
    floor = effective_rate(config, 0.0)  # never stops completely
    assert floor.interval == round(5 * 1000 / (10 * config.min_factor))


async def test_429_halves_the_rate_for_every_worker_and_success_recovers(
    aredis: aioredis.Redis, prefix: str
) -> None:
    config = LimiterConfig(rate_per_s=100, burst=10, cut_interval_s=0, recover_step=0.25)
    worker_a = AdaptiveRateLimiter(aredis, prefix, "apify", config)
    worker_b = AdaptiveRateLimiter(aredis, prefix, "apify", config)
    try:
        assert await worker_b.factor() == 1.0
        assert await worker_a.on_rate_limited() == 0.5
        assert await worker_b.factor() == 0.5  # shared through Redis
        assert await worker_b.on_rate_limited() == 0.25
        assert await worker_a.on_success() == 0.5
        assert await worker_a.on_success() == 0.75
        assert await worker_b.on_success() == 1.0
        assert await worker_b.on_success() == 1.0  # never above the configured rate
        for _ in range(20):
            await worker_a.on_rate_limited()
        assert await worker_a.factor() == config.min_factor
    finally:
        await _cleanup(aredis, prefix)


async def test_a_burst_of_429s_is_one_cut(aredis: aioredis.Redis, prefix: str) -> None:
    config = LimiterConfig(rate_per_s=100, burst=10, cut_interval_s=3600)
    limiters = [AdaptiveRateLimiter(aredis, prefix, "apify", config) for _ in range(8)]
    try:
        await asyncio.gather(*(lim.on_rate_limited() for lim in limiters))
        assert await limiters[0].factor() == 0.5
    finally:
        await _cleanup(aredis, prefix)


async def test_the_bucket_is_shared_and_bounded_by_the_burst(
    aredis: aioredis.Redis, prefix: str
) -> None:
    # One token per 100 s after the burst: the 4th request cannot pass within the timeout.
    config = LimiterConfig(rate_per_s=0.01, burst=3)
    worker_a = AdaptiveRateLimiter(aredis, prefix, "apify", config)
    worker_b = AdaptiveRateLimiter(aredis, prefix, "apify", config)
    try:
        await worker_a.acquire(timeout_s=0)
        await worker_b.acquire(timeout_s=0)
        await worker_a.acquire(timeout_s=0)
        with pytest.raises(TimeoutError):
            await worker_b.acquire(timeout_s=0.2)
        other = AdaptiveRateLimiter(aredis, prefix, "another-upstream", config)
        await other.acquire(timeout_s=0)  # a different upstream has its own bucket
    finally:
        await _cleanup(aredis, prefix)


async def test_batch_slots_bound_batches_in_flight(aredis: aioredis.Redis, prefix: str) -> None:
    slots = BatchSlots(aredis, prefix, limit=2, lease_s=60)
    other_worker = BatchSlots(aredis, prefix, limit=2, lease_s=60)
    try:
        first = await slots.acquire()
        await other_worker.acquire()
        assert not await other_worker.try_acquire("third")
        assert await slots.in_use() == 2
        await slots.release(first)
        assert await other_worker.try_acquire("third")
    finally:
        await _cleanup(aredis, prefix)


async def test_a_dead_holders_slot_expires(aredis: aioredis.Redis, prefix: str) -> None:
    slots = BatchSlots(aredis, prefix, limit=1, lease_s=0.05)
    try:
        await slots.acquire("killed-worker")  # never released
        await asyncio.sleep(0.3)
        assert await slots.try_acquire("next-worker")
    finally:
        await _cleanup(aredis, prefix)


async def test_hooks_book_success_only_for_requests_not_rate_limited(
    aredis: aioredis.Redis, prefix: str
) -> None:
    config = LimiterConfig(rate_per_s=1000, burst=100, cut_interval_s=0, recover_step=0.1)
    limiter = AdaptiveRateLimiter(aredis, prefix, "apify", config)
    slots = BatchSlots(aredis, prefix, limit=1, lease_s=60)
    token = await slots.acquire()
    hooks = LimiterHooks(limiter, slots, token)
    try:
        await hooks.before_request()
        await hooks.on_rate_limited()  # that request got a 429
        await hooks.before_request()  # ... so nothing is booked as a success here
        assert await limiter.factor() == 0.5
        await hooks.before_request()  # the previous request went through
        assert await limiter.factor() == pytest.approx(0.6)
        await hooks.finish()
        assert await limiter.factor() == pytest.approx(0.7)
    finally:
        await _cleanup(aredis, prefix)

"""The service-level read through the cache (kit.readthrough) against the real Redis: no
cache or no key reads past it ("off"), a miss is stored with the configured stale window and
then hit, "not found" (None) is cached too, concurrent readers share one load, and
`invalidate` makes the next read load again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from asinwatch.catalog.cache_keys import summary_key
from asinwatch.config import get_settings
from asinwatch.kit.cache import Cache
from asinwatch.kit.readthrough import invalidate, read_through


class Loader:
    def __init__(self, value: Any = "v", delay_s: float = 0.0) -> None:
        self.value, self.delay_s, self.calls = value, delay_s, 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return None if self.value is None else {"value": self.value, "load": self.calls}


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[Cache]:
    c = Cache(aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2))
    yield c
    await c.aclose()


async def test_without_a_cache_or_a_key_the_loader_answers(
    cache: Cache, redis_client: redis.Redis, key_prefix: str
) -> None:
    load = Loader()
    off = [await read_through(None, "k", load, fresh_s=60, kind="t") for _ in range(2)]
    assert [(r.value["load"], r.outcome, r.stale_at) for r in off] == [
        (1, "off", None),
        (2, "off", None),
    ]
    key = summary_key("amazon.com", "B0NOKEY001")
    past = await read_through(cache, None, load, fresh_s=60, kind="t")
    assert past.outcome == "off" and past.value["load"] == 3
    assert not redis_client.exists(key_prefix + key)


async def test_miss_then_hit_with_the_configured_stale_window(
    cache: Cache, redis_client: redis.Redis, key_prefix: str
) -> None:
    load = Loader()
    key = summary_key("amazon.com", "B0RTHIT001")
    first = await read_through(cache, key, load, fresh_s=60, kind="t")
    again = await read_through(cache, key, load, fresh_s=60, kind="t")
    assert (first.outcome, again.outcome) == ("miss", "hit")
    assert again.value == first.value == {"value": "v", "load": 1} and load.calls == 1
    ttl_ms = redis_client.pttl(key_prefix + key)
    assert 60_000 < ttl_ms <= (60 + get_settings().cache.stale_s) * 1000


async def test_not_found_is_cached_and_invalidate_reloads(cache: Cache) -> None:
    key = summary_key("amazon.com", "B0RTNONE01")
    missing = Loader(None)
    assert (await read_through(cache, key, missing, fresh_s=60, kind="t")).value is None
    assert (await read_through(cache, key, missing, fresh_s=60, kind="t")).outcome == "hit"
    assert missing.calls == 1

    assert await invalidate(cache, key) is True
    found = Loader("now")
    after = await read_through(cache, key, found, fresh_s=60, kind="t")
    assert (after.outcome, after.value) == ("miss", {"value": "now", "load": 1})
    assert await invalidate(None, key) is True  # no cache: nothing to drop


async def test_concurrent_readers_share_one_load(cache: Cache) -> None:
    load = Loader(delay_s=0.05)
    key = summary_key("amazon.com", "B0RTFLIGHT")
    reads = await asyncio.gather(
        *[read_through(cache, key, load, fresh_s=60, kind="t") for _ in range(20)]
    )
    assert load.calls == 1
    assert {r.value["load"] for r in reads} == {1}

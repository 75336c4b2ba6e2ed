"""The SWR cache against the real Redis: miss→hit, stale served and refreshed once in the
background, single-flight across readers and instances, pub/sub invalidation, the local TTL
backstop, flush on reconnect, and fail-open "bypass" when Redis is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from asinwatch.catalog.cache_keys import compare_key, metrics_daily_key, product_keys, summary_key
from asinwatch.kit import cache as cache_mod
from asinwatch.kit.cache import Cache, key_part
from asinwatch.recommendations.cache_keys import recommendation_key
from asinwatch.reports.cache_keys import report_key

DEAD_REDIS = "redis://127.0.0.1:6390/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    def __init__(self, value: Any = "v", delay_s: float = 0.0) -> None:
        self.value = value
        self.delay_s = delay_s
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return {"value": self.value, "load": self.calls}


MakeCache = Callable[..., Cache]


@pytest.fixture
async def make_cache(redis_url: str, redis_client: redis.Redis) -> AsyncIterator[MakeCache]:
    made: list[Cache] = []

    def factory(url: str = redis_url, name: str | None = None, **kw: Any) -> Cache:
        # Generous timeouts: under a loaded CI machine, 50 connections opening at once can take
        # longer than half a second, and a timeout is (rightly) read as Redis being down. The
        # outage tests use a closed port, which refuses at once.
        client = aioredis.Redis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=5.0, client_name=name
        )
        c = Cache(client, **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        await c.aclose()


def events(kind: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "asinwatch_cache_events_total", {"kind": kind, "outcome": outcome}
        )
        or 0.0
    )


async def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_miss_then_hit_under_the_run_prefix(
    make_cache: MakeCache, redis_client: redis.Redis, key_prefix: str
) -> None:
    a, b = make_cache(), make_cache()
    load = CountingLoader()
    key = summary_key("amazon.com", "B0MISSHIT1")
    before_miss, before_hit = events("summary", "miss"), events("summary", "hit")

    first = await a.get_or_load(key, load, 60, 600, "summary")
    local = await a.get_or_load(key, load, 60, 600, "summary")
    remote = await b.get_or_load(key, load, 60, 600, "summary")  # no local entry: from Redis

    assert first.value == {"value": "v", "load": 1}
    assert (first.stale_at, first.outcome) == (None, "miss")
    assert local.outcome == "hit" and remote.outcome == "hit"
    assert remote.value == first.value and load.calls == 1
    assert events("summary", "miss") == before_miss + 1
    assert events("summary", "hit") == before_hit + 2
    raw = redis_client.get(key_prefix + key)
    assert raw is not None
    stored = orjson.loads(raw)
    assert stored["payload"] == first.value
    assert stored["stale_until"] - stored["fresh_until"] == pytest.approx(600)
    assert 0 < redis_client.pttl(key_prefix + key) <= 660_000
    assert not redis_client.exists(key_prefix + "lock:" + key)  # lock released


async def test_stale_is_served_with_stale_at_and_refreshed_once(make_cache: MakeCache) -> None:
    clock = Clock()
    a = make_cache(clock=clock)
    b = make_cache(clock=clock)
    load = CountingLoader()
    key = metrics_daily_key("amazon.com", "B0STALE001", "30d")
    t0 = clock.now
    await a.get_or_load(key, load, 10, 600, "metrics")

    gate = asyncio.Event()

    async def slow_reload() -> Any:
        await gate.wait()  # the refresh is still running while the readers are answered
        return await load()

    clock.now = t0 + 20  # past fresh, inside the stale window
    stale = await asyncio.gather(
        *[c.get_or_load(key, slow_reload, 10, 600, "metrics") for c in [a, b] * 25]
    )
    assert {r.outcome for r in stale} == {"stale"}
    assert {r.value["load"] for r in stale} == {1}  # answered at once with the old value
    assert {r.stale_at for r in stale} == {datetime.fromtimestamp(t0 + 10, tz=UTC)}
    gate.set()
    await a.drain()
    await b.drain()
    assert load.calls == 2  # exactly one background refresh across 50 readers, 2 instances

    fresh = await b.get_or_load(key, load, 10, 600, "metrics")
    assert fresh.outcome == "hit" and fresh.value["load"] == 2 and fresh.stale_at is None


async def test_expired_past_the_stale_window_is_a_miss(make_cache: MakeCache) -> None:
    clock = Clock()
    c = make_cache(clock=clock, local_ttl_s=0)
    load = CountingLoader()
    key = report_key("amazon.com", "B0EXPIRED1")
    await c.get_or_load(key, load, 10, 20, "report")
    clock.now += 31
    result = await c.get_or_load(key, load, 10, 20, "report")
    assert result.outcome == "miss" and result.value["load"] == 2


async def test_single_flight_50_concurrent_readers_one_load(make_cache: MakeCache) -> None:
    c = make_cache()
    load = CountingLoader(delay_s=0.05)
    key = compare_key("amazon.com", "B0MAIN0001", "B0COMP0001")
    results = await asyncio.gather(
        *[c.get_or_load(key, load, 60, 600, "compare") for _ in range(50)]
    )
    assert load.calls == 1
    assert {r.value["load"] for r in results} == {1}


async def test_single_flight_across_two_instances(make_cache: MakeCache) -> None:
    a, b = make_cache(), make_cache()
    load = CountingLoader(delay_s=0.05)
    key = recommendation_key("amazon.de", "B0TWOINST1")
    results = await asyncio.gather(
        *[c.get_or_load(key, load, 60, 600, "recommendation") for c in [a, b] * 25]
    )
    assert load.calls == 1
    assert {r.value["load"] for r in results} == {1}


async def test_loader_errors_propagate_and_are_not_cached(make_cache: MakeCache) -> None:
    c = make_cache()
    key = summary_key("amazon.com", "B0LOADFAIL")

    async def broken() -> Any:
        raise LookupError("no such product")

    with pytest.raises(LookupError):
        await c.get_or_load(key, broken, 60, 600, "summary")
    ok = await c.get_or_load(key, CountingLoader(), 60, 600, "summary")
    assert ok.outcome == "miss"


async def test_invalidation_reaches_another_instance(make_cache: MakeCache) -> None:
    writer = make_cache()
    reader = make_cache(local_ttl_s=3600)  # only pub/sub can drop its local entry
    await reader.start()
    assert reader.listener is not None
    await asyncio.wait_for(reader.listener.subscribed.wait(), timeout=10)
    key = summary_key("amazon.com", "B0INVALID1")
    old = CountingLoader("old")
    await reader.get_or_load(key, old, 60, 600, "summary")
    assert (await reader.get_or_load(key, old, 60, 600, "summary")).outcome == "hit"

    assert await writer.invalidate(key) is True
    await wait_for(lambda: reader.listener is not None and reader.listener.messages_seen >= 1)

    new = CountingLoader("new")
    result = await reader.get_or_load(key, new, 60, 600, "summary")
    assert result.outcome == "miss" and result.value["value"] == "new"


async def test_local_ttl_is_the_backstop_for_lost_messages(make_cache: MakeCache) -> None:
    clock = Clock()
    writer = make_cache(clock=clock)
    reader = make_cache(clock=clock, local_ttl_s=2.0)  # no listener: messages are lost
    key = summary_key("amazon.com", "B0BACKSTOP")
    await reader.get_or_load(key, CountingLoader("old"), 60, 600, "summary")
    await writer.invalidate(key)
    await writer.get_or_load(key, CountingLoader("new"), 60, 600, "summary")

    still_old = await reader.get_or_load(key, CountingLoader("x"), 60, 600, "summary")
    assert still_old.value["value"] == "old"  # within the local TTL
    clock.now += 2.5  # past the local TTL, still fresh in Redis
    now_new = await reader.get_or_load(key, CountingLoader("x"), 60, 600, "summary")
    assert now_new.outcome == "hit" and now_new.value["value"] == "new"


async def test_reconnect_flushes_the_local_layer(
    make_cache: MakeCache, redis_client: redis.Redis, key_prefix: str
) -> None:
    name = f"{key_prefix.replace(':', '-')}reconnect"
    reader = make_cache(name=name, local_ttl_s=3600)
    await reader.start()
    assert reader.listener is not None
    await asyncio.wait_for(reader.listener.subscribed.wait(), timeout=10)
    key = summary_key("amazon.com", "B0RECONNEC")
    await reader.get_or_load(key, CountingLoader(), 60, 600, "summary")
    assert len(reader._local) == 1
    subscriptions = reader.listener.subscriptions

    # Kill only this test's pub/sub connection (matched by its unique client name).
    clients = redis_client.client_list(_type="pubsub")
    ids = [c["id"] for c in clients if c.get("name") == name]
    assert len(ids) == 1
    redis_client.execute_command("CLIENT", "KILL", "ID", ids[0])

    await wait_for(
        lambda: reader.listener is not None and reader.listener.subscriptions > subscriptions
    )
    assert len(reader._local) == 0


async def test_redis_down_bypasses_without_raising(make_cache: MakeCache) -> None:
    c = make_cache(url=DEAD_REDIS)
    load = CountingLoader()
    key = summary_key("amazon.com", "B0REDISDWN")
    before = events("summary", "bypass")
    first = await c.get_or_load(key, load, 60, 600, "summary")
    second = await c.get_or_load(key, load, 60, 600, "summary")
    assert first.outcome == "bypass" and second.outcome == "bypass"
    assert first.value["load"] == 1 and second.value["load"] == 2
    assert first.stale_at is None
    assert c.healthy is False
    assert events("summary", "bypass") == before + 2
    assert await c.invalidate(key) is False
    assert await c.ping() is False
    await c.start()  # the listener keeps retrying in the background, quietly
    await asyncio.sleep(0.05)
    assert c.healthy is False


async def test_redis_down_still_single_flights_in_process(make_cache: MakeCache) -> None:
    c = make_cache(url=DEAD_REDIS)
    load = CountingLoader(delay_s=0.05)
    key = summary_key("amazon.com", "B0DOWNFLT1")
    results = await asyncio.gather(
        *[c.get_or_load(key, load, 60, 600, "summary") for _ in range(20)]
    )
    assert {r.outcome for r in results} == {"bypass"}
    assert load.calls == 1


async def test_healthy_again_after_ping(make_cache: MakeCache) -> None:
    c = make_cache()
    assert await c.ping() is True and c.healthy is True


def test_key_names_include_the_marketplace() -> None:
    assert summary_key("amazon.com", "B0ABC") == "product:amazon.com:B0ABC:summary"
    assert (
        metrics_daily_key("amazon.de", "B0ABC", "7d") == "product:amazon.de:B0ABC:metrics:daily:7d"
    )
    assert compare_key("amazon.com", "B0A", "B0B") == "compare:amazon.com:B0A:B0B"
    assert recommendation_key("amazon.com", "B0A") == "recommendation:amazon.com:B0A:latest"
    assert report_key("amazon.com", "B0A") == "report:amazon.com:B0A:latest"
    assert product_keys("amazon.com", "B0A") == [
        "product:amazon.com:B0A:summary",
        "product:amazon.com:B0A:metrics:daily:7d",
        "product:amazon.com:B0A:metrics:daily:30d",
        "product:amazon.com:B0A:metrics:daily:90d",
    ]
    for bad in ("", "B0:X", "B0 X"):
        with pytest.raises(ValueError):
            summary_key("amazon.com", bad)
        with pytest.raises(ValueError, match="invalid cache key part asin="):
            key_part(bad, "asin")
    assert cache_mod.INVALIDATION_CHANNEL == "cache:invalidate"


async def test_read_hands_back_one_memo_per_stored_value(make_cache: MakeCache) -> None:
    c = make_cache(clock=Clock())
    key = summary_key("amazon.com", "B0MEMO0001")
    load = CountingLoader()
    miss = await c.read(key, load, 60, 600, "summary")
    hits = [await c.read(key, load, 60, 600, "summary") for _ in range(2)]
    assert miss.outcome == "miss" and miss.memo == {}
    assert [h.outcome for h in hits] == ["hit", "hit"]
    assert hits[0].memo is hits[1].memo
    assert hits[0].value == miss.value == {"value": "v", "load": 1}
    hits[0].memo["etag"] = "derived once"
    assert (await c.read(key, load, 60, 600, "summary")).memo["etag"] == "derived once"
    assert await c.get_or_load(key, load, 60, 600, "summary") == (miss.value, None, "hit")

    await c.invalidate(key)  # a new value never inherits what was derived from the old one
    await c.read(key, load, 60, 600, "summary")
    renewed = await c.read(key, load, 60, 600, "summary")
    assert renewed.outcome == "hit" and renewed.value["load"] == 2
    assert "etag" not in renewed.memo

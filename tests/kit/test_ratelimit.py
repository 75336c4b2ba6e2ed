"""Rate limits in the real Redis: 429 problem with Retry-After and RateLimit headers, per IP
and per principal, keys under the run's prefix, and fail-open when Redis is down."""

from __future__ import annotations

from typing import Annotated

import pytest
import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI

from asinwatch.auth.jwt import issue_dev_token
from asinwatch.auth.roles import Principal
from asinwatch.config import reset_settings_cache
from asinwatch.kit.ratelimit import RateLimiter, enforce_principal_rate_limit
from tests.kit.conftest import build_app, client_for, settings_with


def limited_app(per_ip: int, limiter: RateLimiter | None = None) -> FastAPI:
    app = build_app(
        settings_with(rate_limit_per_ip_per_minute=per_ip, max_body_bytes=1024),
        rate_limit=True,
        limiter=limiter,
    )

    @app.get("/me")
    async def me(p: Annotated[Principal, Depends(enforce_principal_rate_limit)]) -> dict[str, str]:
        return {"sub": p.sub}

    return app


async def test_per_ip_limit_gives_429_with_headers(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    app = limited_app(per_ip=3)
    async with client_for(app, client=("127.0.0.11", 4000)) as c:
        ok = [await c.get("/items/1") for _ in range(3)]
        denied = await c.get("/items/1")
        exempt = await c.get("/v1/health")
    async with client_for(app, client=("127.0.0.12", 4000)) as other:
        other_ip = await other.get("/items/1")
    await app.state.rate_limiter.aclose()

    assert [r.status_code for r in ok] == [200, 200, 200]
    assert ok[0].headers["ratelimit-policy"] == '"ip";q=3;w=60'
    assert ok[0].headers["ratelimit"].startswith('"ip";r=2;t=')
    assert ok[2].headers["ratelimit"].startswith('"ip";r=0;t=')
    assert denied.status_code == 429
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.json()["type"].endswith("/rate-limited")
    assert int(denied.headers["retry-after"]) >= 1
    assert denied.headers["ratelimit"].startswith('"ip";r=0;t=')
    assert denied.headers["ratelimit-policy"] == '"ip";q=3;w=60'
    assert "x-request-id" in denied.headers
    assert exempt.status_code == 200
    assert other_ip.status_code == 200
    assert redis_client.exists(f"{key_prefix}ratelimit:ip:127.0.0.11") == 1


async def test_per_principal_limit(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    monkeypatch.setenv("ASINWATCH_API__RATE_LIMIT_PER_MINUTE", "2")
    reset_settings_cache()
    alice = {"Authorization": f"Bearer {issue_dev_token('viewer', sub='rl-alice')}"}
    bob = {"Authorization": f"Bearer {issue_dev_token('viewer', sub='rl-bob')}"}
    app = limited_app(per_ip=100)
    async with client_for(app, client=("127.0.0.13", 4000)) as c:
        a1 = await c.get("/me", headers=alice)
        a2 = await c.get("/me", headers=alice)
        a3 = await c.get("/me", headers=alice)
        b1 = await c.get("/me", headers=bob)
    await app.state.rate_limiter.aclose()

    assert (a1.status_code, a2.status_code, b1.status_code) == (200, 200, 200)
    # both policies are announced; RateLimit reports the most constrained one
    assert a1.headers["ratelimit-policy"] == '"ip";q=100;w=60, "principal";q=2;w=60'
    assert a1.headers["ratelimit"].startswith('"principal";r=1;')
    assert a3.status_code == 429
    assert int(a3.headers["retry-after"]) >= 1
    assert a3.headers["ratelimit"].startswith('"principal";r=0;')
    assert a3.json()["type"].endswith("/rate-limited")


async def test_fails_open_when_redis_is_down() -> None:
    dead = aioredis.Redis.from_url(
        "redis://127.0.0.1:6390/0", socket_timeout=0.5, socket_connect_timeout=0.5
    )
    limiter = RateLimiter(dead)
    app = limited_app(per_ip=1, limiter=limiter)
    token = {"Authorization": f"Bearer {issue_dev_token('viewer', sub='rl-carol')}"}
    async with client_for(app) as c:
        statuses = [(await c.get("/me", headers=token)).status_code for _ in range(5)]
    await limiter.aclose()
    assert statuses == [200] * 5
    assert limiter.healthy is False


async def test_limiter_decisions_directly(redis_client: redis.Redis) -> None:
    limiter = RateLimiter()
    try:
        first = await limiter.hit("unit:direct", 2, "t")
        second = await limiter.hit("unit:direct", 2, "t")
        third = await limiter.hit("unit:direct", 2, "t")
    finally:
        await limiter.aclose()
    assert first is not None and second is not None and third is not None
    assert (first.allowed, first.remaining) == (True, 1)
    assert (second.allowed, second.remaining) == (True, 0)
    assert third.allowed is False and 1 <= third.retry_after_s <= 30

"""Rate limits in the real Redis: 429 problem with Retry-After and RateLimit headers, per IP
and per principal, keys under the run's prefix, and fail-open when Redis is down."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import pytest
import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI

from asinwatch.auth.guards import enforce_principal_rate_limit
from asinwatch.auth.jwt import issue_dev_token
from asinwatch.auth.roles import Principal
from asinwatch.config import reset_settings_cache
from asinwatch.kit.ratelimit import RateLimitDecision, RateLimiter
from tests.kit.conftest import Item, build_app, client_for, settings_with


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


# --- both limits in one Redis call ---------------------------------------------------------


class CountingLimiter(RateLimiter):
    """The real limiter on the real Redis, recording the buckets of each Redis call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    async def hit_many(
        self, buckets: Sequence[tuple[str, int, str]]
    ) -> list[RateLimitDecision] | None:
        self.calls.append([bucket for bucket, _, _ in buckets])
        return await super().hit_many(buckets)


def principal_limit(monkeypatch: pytest.MonkeyPatch, per_minute: int) -> None:
    monkeypatch.setenv("ASINWATCH_API__RATE_LIMIT_PER_MINUTE", str(per_minute))
    reset_settings_cache()


async def test_known_token_and_route_take_one_call_with_the_same_decisions(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    principal_limit(monkeypatch, 3)
    limiter = CountingLimiter()
    app = limited_app(per_ip=100, limiter=limiter)
    token = {"Authorization": f"Bearer {issue_dev_token('viewer', sub='rl-dave')}"}
    async with client_for(app, client=("127.0.0.21", 4000)) as c:
        resps = [await c.get("/me", headers=token) for _ in range(4)]
    await limiter.aclose()

    ip, sub = "ip:127.0.0.21", "sub:rl-dave"
    # First request: token and route not known yet, two calls; then one call each.
    assert limiter.calls == [[ip], [sub], [ip, sub], [ip, sub], [ip, sub]]
    assert [r.status_code for r in resps] == [200, 200, 200, 429]
    # The principal bucket is charged exactly once per request either way.
    assert [r.headers["ratelimit"].split(";")[:2] for r in resps[:3]] == [
        ['"principal"', "r=2"],
        ['"principal"', "r=1"],
        ['"principal"', "r=0"],
    ]
    denied = resps[3]
    assert denied.headers["ratelimit-policy"] == '"ip";q=100;w=60, "principal";q=3;w=60'
    assert denied.headers["ratelimit"].startswith('"principal";r=0;')
    assert int(denied.headers["retry-after"]) >= 1
    assert denied.json()["type"].endswith("/rate-limited")
    assert "x-request-id" in denied.headers


async def test_an_ip_refusal_in_the_combined_call_does_not_charge_the_principal(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    principal_limit(monkeypatch, 3)
    limiter = CountingLimiter()
    app = limited_app(per_ip=2, limiter=limiter)
    token = {"Authorization": f"Bearer {issue_dev_token('viewer', sub='rl-erin')}"}
    async with client_for(app, client=("127.0.0.22", 4000)) as c:
        statuses = [(await c.get("/me", headers=token)).status_code for _ in range(3)]
    async with client_for(app, client=("127.0.0.23", 4000)) as other_ip:
        after = await other_ip.get("/me", headers=token)
    await limiter.aclose()

    assert statuses == [200, 200, 429]
    assert limiter.calls[3] == ["ip:127.0.0.22", "sub:rl-erin"]  # the refused one, combined
    # 3 - 2 served = 1 left for the request from another IP: had the request refused per IP
    # been charged per principal too, this one would be a 429.
    assert after.status_code == 200
    assert after.headers["ratelimit"].startswith('"principal";r=0;')


async def test_routes_without_the_principal_limit_are_never_charged_per_principal(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    principal_limit(monkeypatch, 10)
    limiter = CountingLimiter()
    app = limited_app(per_ip=100, limiter=limiter)
    token = {"Authorization": f"Bearer {issue_dev_token('viewer', sub='rl-finn')}"}
    async with client_for(app, client=("127.0.0.24", 4000)) as c:
        await c.get("/me", headers=token)  # the token is now known
        plain = [await c.get("/items/1", headers=token) for _ in range(2)]
        missing = await c.get("/no/such/path", headers=token)
        me = await c.get("/me", headers=token)
    await limiter.aclose()

    ip = "ip:127.0.0.24"
    assert limiter.calls[2:] == [[ip], [ip], [ip], [ip, "sub:rl-finn"]]
    assert [r.headers["ratelimit-policy"] for r in plain] == ['"ip";q=100;w=60'] * 2
    assert missing.status_code == 404
    assert me.headers["ratelimit"].startswith('"principal";r=8;')  # /me twice, nothing else


async def test_a_route_is_forgotten_when_a_charged_request_never_reached_the_dependency(
    monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    principal_limit(monkeypatch, 10)
    limiter = CountingLimiter()
    app = limited_app(per_ip=100, limiter=limiter)

    @app.post("/notes")
    async def note(
        item: Item, p: Annotated[Principal, Depends(enforce_principal_rate_limit)]
    ) -> dict[str, str]:
        return {"sub": p.sub, "name": item.name}

    token = {"Authorization": f"Bearer {issue_dev_token('viewer', sub='rl-gus')}"}
    good = {"name": "n", "qty": 1}
    async with client_for(app, client=("127.0.0.25", 4000)) as c:
        first = await c.post("/notes", json=good, headers=token)
        second = await c.post("/notes", json=good, headers=token)
        # Malformed JSON is refused before any dependency runs, after the combined call.
        broken = await c.post(
            "/notes", content=b"{", headers={**token, "Content-Type": "application/json"}
        )
        third = await c.post("/notes", json=good, headers=token)
        fourth = await c.post("/notes", json=good, headers=token)
    await limiter.aclose()

    ip, sub = "ip:127.0.0.25", "sub:rl-gus"
    assert [r.status_code for r in (first, second, broken, third, fourth)] == [
        200,
        200,
        422,
        200,
        200,
    ]
    assert limiter.calls == [[ip], [sub], [ip, sub], [ip, sub], [ip], [sub], [ip, sub]]

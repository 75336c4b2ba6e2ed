"""The Apify adapter against the simulator on a free 127.0.0.1 port (no mocks)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from asinwatch.config import ApifySettings
from asinwatch.ingestion.sources import (
    ApifyAuthError,
    ApifyBudgetExceededError,
    ApifyClientError,
    ApifyNotFoundError,
    ApifyRetryableError,
    ApifyRunFailedError,
    ApifySource,
    DisallowedHostError,
    InvalidBatchError,
    Source,
)
from asinwatch.ingestion.sources.apify import check_allowed_url
from asinwatch.simulator import SimConfig, SimulatorServer, sample_asins

MP = "amazon.com"


@pytest.fixture
def servers() -> Iterator[list[SimulatorServer]]:
    started: list[SimulatorServer] = []
    yield started
    for srv in started:
        srv.stop()


def start_sim(servers: list[SimulatorServer], **config: Any) -> SimulatorServer:
    config.setdefault("block_rate", 0.0)
    srv = SimulatorServer(SimConfig(**config)).start()
    servers.append(srv)
    return srv


def settings_for(srv: SimulatorServer, **overrides: Any) -> ApifySettings:
    values: dict[str, Any] = {
        "token": SecretStr(srv.token),
        "base_url": srv.base_url,
        "allowed_hosts": ["127.0.0.1"],
        "backoff_base_s": 0.001,
        "backoff_max_s": 0.01,
        "max_retries": 10,
        "poll_wait_s": 5,
        "run_timeout_s": 60,
        **overrides,
    }
    return ApifySettings(**values)


def paths(srv: SimulatorServer, needle: str) -> list[str]:
    return [p for _, p in srv.simulator.requests if needle in p]


async def test_batch_of_100_end_to_end_with_pagination(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers)
    sim = srv.simulator
    sim.clock.advance(days=12, seconds=1800)
    asins = sample_asins(21, 100)
    async with ApifySource(settings_for(srv), page_size=7) as source:
        assert isinstance(source, Source)
        result = await source.fetch_products(MP, asins)
    assert sorted(r.asin for r in result.records) == sorted(asins)
    assert result.quarantined == [] and result.missing_asins == []
    assert len(result.raw_items) == 100 and len(result.upstream_run_ids) == 1
    # Pages of 7 items: ceil(100 / 7) dataset reads, each with offset/limit/clean.
    reads = paths(srv, "/items")
    assert len(reads) == math.ceil(100 / 7)
    assert all("clean=true" in p and "limit=7" in p for p in reads)
    # The observation is dated by the run (simulated day 12), not by the wall clock.
    assert result.observed_at == sim.clock.now()
    assert all(r.observed_at == sim.clock.now() for r in result.records)
    cfg = sim.config
    assert result.cost_usd == Decimal(
        str(round(cfg.start_cost_usd + 100 * cfg.price_per_product_usd, 6))
    )
    # Values match what the simulated page shows.
    by_asin = {r.asin: r for r in result.records}
    for asin in asins[:10]:
        page = sim.product_item(MP, asin)
        rec = by_asin[asin]
        expected = (
            None
            if page["price"] is None
            else Decimal(str(page["price"]["value"])).quantize(Decimal("0.01"))
        )
        assert rec.buybox_price == expected
        assert rec.title == page["title"] and rec.in_stock == page["inStock"]
        assert rec.returned_asin == (page["asin"] if page["asin"] != asin else None)
    start = next(p for _, p in sim.requests if p.startswith("/v2/actors/"))
    assert "maxItems=100" in start and "timeout=60" in start and "maxTotalChargeUsd=" in start


async def test_acts_route_and_reviews(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers)
    srv.simulator.clock.advance(days=30)
    asins = sample_asins(22, 5)
    settings = settings_for(srv, max_reviews_per_asin=4)
    async with ApifySource(settings, actor_route="acts") as source:
        products = await source.fetch_products("amazon.de", asins)
        reviews = await source.fetch_reviews("amazon.de", asins)
    assert len(products.records) == 5 and {r.currency for r in products.records} == {"EUR"}
    assert paths(srv, "/v2/acts/junglee~amazon-crawler/runs")
    assert paths(srv, "/v2/acts/junglee~amazon-reviews-scraper/runs")
    assert not paths(srv, "/v2/actors/")
    assert 0 < len(reviews.reviews) <= 20 and reviews.records == []
    assert {r.asin for r in reviews.reviews} <= set(asins)
    assert all(1 <= r.rating <= 5 for r in reviews.reviews)
    assert reviews.cost_usd > 0


async def test_bad_token_raises_typed_error_with_token_masked(
    servers: list[SimulatorServer],
) -> None:
    srv = start_sim(servers)
    secret = "apify_api_SUPERSECRET123"
    with structlog.testing.capture_logs() as logs:
        async with ApifySource(settings_for(srv, token=SecretStr(secret))) as source:
            with pytest.raises(ApifyAuthError) as info:
                await source.fetch_products(MP, sample_asins(1, 3))
    err = info.value
    assert err.status_code == 401 and err.error_type == "invalid-token"
    assert secret not in str(err) and secret not in repr(err) and secret not in repr(err.args)
    assert secret not in repr(logs)
    assert srv.simulator.request_count == 1  # 401 is not retried
    # The masking also covers an upstream that echoes the token back.
    source = ApifySource(settings_for(srv, token=SecretStr(secret)))
    assert secret not in source._mask(f"bad token {secret} in ?token={secret}")
    await source.aclose()


async def test_faults_at_30_percent_still_succeed(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, error_rate=0.3)
    sim = srv.simulator
    calls = {"before": 0, "limited": 0}

    async def before_request() -> None:
        calls["before"] += 1

    def on_rate_limited() -> None:
        calls["limited"] += 1

    asins = sample_asins(23, 30)
    source = ApifySource(
        settings_for(srv),
        before_request=before_request,
        on_rate_limited=on_rate_limited,
        page_size=1,
    )
    async with source:
        result = await source.fetch_products(MP, asins)
    assert sorted(r.asin for r in result.records) == sorted(asins)
    faults = [sim.injected_fault(n) for n in range(sim.request_count)]
    assert sum(f is not None for f in faults) >= 3
    # Every attempt went through the limiter hook; every 429 was reported to it.
    assert calls["before"] == sim.request_count
    assert calls["limited"] == sum(1 for f in faults if f and f[0] == 429) > 0


async def test_retries_are_bounded(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, error_rate=1.0)
    async with ApifySource(settings_for(srv, max_retries=2)) as source:
        with pytest.raises(ApifyRetryableError) as info:
            await source.fetch_products(MP, sample_asins(1, 2))
    assert info.value.status_code in (429, 500, 502, 503)
    assert srv.simulator.request_count == 3


async def test_budget_abort_on_cost(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, run_duration_s=600)
    settings = settings_for(srv, max_run_cost_usd=0.0005)  # below the run's start cost
    async with ApifySource(settings) as source:
        with pytest.raises(ApifyBudgetExceededError) as info:
            await source.fetch_products(MP, sample_asins(1, 5))
    err = info.value
    assert err.reason == "cost" and err.cost_usd >= Decimal("0.001")
    run = srv.simulator.get_run(err.run_id)
    assert run is not None and srv.simulator.snapshot(run).status == "ABORTED"
    assert paths(srv, f"/v2/actor-runs/{err.run_id}/abort")


async def test_budget_abort_on_time(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, run_duration_s=3600)
    ticks = iter(range(0, 10**6, 400))  # each look at the clock: 400 s later

    settings = settings_for(srv, run_timeout_s=900, poll_wait_s=0)
    source = ApifySource(settings, clock=lambda: float(next(ticks)), min_poll_interval_s=0)
    async with source:
        with pytest.raises(ApifyBudgetExceededError) as info:
            await source.fetch_products(MP, sample_asins(1, 5))
    err = info.value
    assert err.reason == "time" and err.cost_usd > 0
    run = srv.simulator.get_run(err.run_id)
    assert run is not None and srv.simulator.snapshot(run).status == "ABORTED"
    # It polled (without waitForFinish, as poll_wait_s=0) before giving up.
    assert (("GET", f"/v2/actor-runs/{err.run_id}")) in srv.simulator.requests


async def test_run_status_polling(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, run_duration_s=0.3)
    async with ApifySource(settings_for(srv, poll_wait_s=5)) as source:
        run = await source.run_actor(
            "junglee~amazon-crawler",
            {
                "categoryOrProductUrls": [
                    {"url": f"https://www.amazon.com/dp/{a}"} for a in sample_asins(3, 2)
                ]
            },
        )
    assert run.status == "SUCCEEDED" and len(run.items) == 2
    polls = paths(srv, f"/v2/actor-runs/{run.run_id}?")
    assert polls and all("waitForFinish=5" in p for p in polls)
    # With poll_wait_s=0 it polls repeatedly without waitForFinish.
    srv.simulator.configure(run_duration_s=0.3)
    async with ApifySource(settings_for(srv, poll_wait_s=0), min_poll_interval_s=0.05) as source:
        run = await source.run_actor(
            "junglee~amazon-crawler",
            {"categoryOrProductUrls": [{"url": "https://www.amazon.com/dp/B000000001"}]},
        )
    assert run.status == "SUCCEEDED"
    polls = [p for _, p in srv.simulator.requests if p == f"/v2/actor-runs/{run.run_id}"]
    assert len(polls) >= 2


async def test_failed_run_is_a_typed_error(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, run_fail_rate=1.0)
    async with ApifySource(settings_for(srv)) as source:
        with pytest.raises(ApifyRunFailedError) as info:
            await source.fetch_products(MP, sample_asins(1, 2))
    assert info.value.status == "FAILED" and info.value.cost_usd > 0


async def test_other_4xx_raise_at_once(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers)
    async with ApifySource(settings_for(srv)) as source:
        with pytest.raises(ApifyNotFoundError) as nf:
            await source.run_actor("nobody~nothing", {})
        with pytest.raises(ApifyClientError) as bad:
            await source.run_actor("junglee~amazon-crawler", {"categoryOrProductUrls": []})
    assert nf.value.error_type == "actor-not-found"
    assert bad.value.error_type == "invalid-input" and bad.value.status_code == 400
    assert srv.simulator.request_count == 2


async def test_block_pages_are_quarantined_not_recorded(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, block_rate=1.0)
    asins = sample_asins(24, 12)
    async with ApifySource(settings_for(srv)) as source:
        result = await source.fetch_products(MP, asins)
    assert result.records == [] and sorted(result.missing_asins) == sorted(asins)
    assert len(result.quarantined) == 12
    assert {q.code for q in result.quarantined} <= {"block_page", "wrong_asin", "bad_field"}
    assert all(not any(k.startswith("#") for k in i) for i in result.raw_items)  # clean=true


def test_allow_list_refuses_other_hosts() -> None:
    with pytest.raises(DisallowedHostError):
        ApifySource(ApifySettings(token=SecretStr("t"), base_url="https://evil.example.com/v2"))
    with pytest.raises(DisallowedHostError):  # allow-listed host, but plain http off loopback
        ApifySource(ApifySettings(token=SecretStr("t"), base_url="http://api.apify.com/v2"))
    for url in (
        "https://api.apify.com@evil.example.com/v2",
        "https://api.apify.com.evil.example.com/v2",
        "https://10.0.0.1/v2",
    ):
        with pytest.raises(DisallowedHostError):
            check_allowed_url(url, ["api.apify.com"])
    check_allowed_url("https://API.apify.com/v2/actor-runs/x", ["api.apify.com"])


async def test_non_asin_batches_are_refused_before_any_call(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers)
    async with ApifySource(settings_for(srv)) as source:
        for batch in (
            ["B000000001", "not-an-asin"],
            ["B000000001", "https://evil.example.com/dp/B000000001"],
            ["B000000001", "B00000000"],
            "B000000001",
        ):
            with pytest.raises(InvalidBatchError):
                await source.fetch_products(MP, batch)  # type: ignore[arg-type]
            with pytest.raises(InvalidBatchError):
                await source.fetch_reviews(MP, batch)  # type: ignore[arg-type]
        with pytest.raises(InvalidBatchError):
            await source.fetch_products("amazon.example", ["B000000001"])
        empty = await source.fetch_products(MP, [])
    assert empty.records == [] and empty.cost_usd == 0
    assert srv.simulator.request_count == 0


async def test_missing_token_refused_before_any_call(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers)
    async with ApifySource(settings_for(srv, token=SecretStr(""))) as source:
        with pytest.raises(ApifyAuthError):
            await source.fetch_products(MP, ["B000000001"])
    assert srv.simulator.request_count == 0

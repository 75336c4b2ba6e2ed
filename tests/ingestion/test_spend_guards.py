"""The adapter's spend guards against the simulator's fault modes (no mocks).

"No extra billed run" is proved by counting the runs the simulator started.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from asinwatch.ingestion.sources import (
    ApifyRunUnreachableError,
    ApifySource,
    ApifyStartUnknownError,
)
from asinwatch.ingestion.sources.apify import MARKER_FIELD, run_cost
from asinwatch.simulator import SimConfig, SimulatorServer, sample_asins
from tests.ingestion.test_apify_adapter import MP, paths, settings_for, start_sim

PRODUCTS = "junglee~amazon-crawler"


@pytest.fixture
def servers() -> Iterator[list[SimulatorServer]]:
    started: list[SimulatorServer] = []
    yield started
    for srv in started:
        srv.stop()


def _input(asins: list[str]) -> dict[str, Any]:
    return {"categoryOrProductUrls": [{"url": f"https://www.amazon.com/dp/{a}"} for a in asins]}


# --- (a) a run-starting POST is never retried blind ------------------------------------


async def test_5xx_after_the_run_started_adopts_that_run(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, start_fault_after_create=1)
    sim = srv.simulator
    asins = sample_asins(31, 10)
    async with ApifySource(settings_for(srv)) as source:
        result = await source.fetch_products(MP, asins)
    assert sorted(r.asin for r in result.records) == sorted(asins)
    assert sim.run_count == 1  # one billed run, not two
    starts = [p for m, p in sim.requests if m == "POST" and p.startswith("/v2/actors/")]
    assert len(starts) == 1
    assert paths(srv, "/records/INPUT")  # it looked for its marker in the run's INPUT
    run = sim.get_run(result.upstream_run_ids[0])
    assert run is not None and MARKER_FIELD in run.input


async def test_faults_before_the_start_retry_without_a_second_run(
    servers: list[SimulatorServer],
) -> None:
    # 30% of requests (POSTs included) fail before reaching the handler: no run was made, so
    # the reconciliation finds none and the POST is sent again. Exactly one run per fetch.
    srv = start_sim(servers, error_rate=0.3, seed=11)
    sim = srv.simulator
    async with ApifySource(settings_for(srv), page_size=3) as source:
        for n in range(4):
            await source.fetch_products(MP, sample_asins(40 + n, 8))
    assert sim.run_count == 4
    post_faults = [
        i
        for i, (m, p) in enumerate(sim.requests)
        if m == "POST" and p.startswith("/v2/actors/") and sim.injected_fault(i)
    ]
    assert post_faults  # the seed does fault some starts


async def test_without_a_marker_an_ambiguous_start_is_not_retried(
    servers: list[SimulatorServer],
) -> None:
    srv = start_sim(servers, start_fault_after_create=1)
    async with ApifySource(settings_for(srv)) as source:
        with pytest.raises(ApifyStartUnknownError):
            await source.start_run(PRODUCTS, _input(sample_asins(1, 2)))
    assert srv.simulator.run_count == 1
    assert len([m for m, _ in srv.simulator.requests if m == "POST"]) == 1


async def test_when_the_check_fails_too_the_start_is_unknown_not_retried(
    servers: list[SimulatorServer],
) -> None:
    srv = start_sim(servers, start_fault_after_create=1)
    sim = srv.simulator

    async def outage_after_the_start() -> None:
        # Every request after the (faulted) start fails: the run list cannot be read.
        if sim.run_count:
            sim.configure(error_rate=1.0)

    settings = settings_for(srv, max_retries=2)
    async with ApifySource(settings, before_request=outage_after_the_start) as source:
        with pytest.raises(ApifyStartUnknownError) as info:
            await source.fetch_products(MP, sample_asins(2, 3))
    assert "not retried" in str(info.value)
    assert sim.run_count == 1
    assert len([m for m, _ in sim.requests if m == "POST"]) == 1


# --- (b) a retried batch reuses its runs --------------------------------------------------


async def test_a_retry_with_the_same_marker_finds_its_run(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers)
    sim = srv.simulator
    asins = sample_asins(3, 6)
    async with ApifySource(settings_for(srv), marker="run-1:batch-0") as first:
        done = await first.fetch_products(MP, asins)
    async with ApifySource(
        settings_for(srv), marker="run-1:batch-0", reconcile_first=True
    ) as retry:
        again = await retry.fetch_products(MP, asins)
    assert sim.run_count == 1 and again.upstream_run_ids == done.upstream_run_ids
    # Another batch's marker does not match: it starts its own run.
    async with ApifySource(
        settings_for(srv), marker="run-1:batch-1", reconcile_first=True
    ) as other:
        await other.fetch_products(MP, asins)
    assert sim.run_count == 2


async def test_known_runs_are_reused_when_succeeded_or_in_flight(
    servers: list[SimulatorServer],
) -> None:
    srv = start_sim(servers, run_duration_s=0.5)
    sim = srv.simulator
    asins = sample_asins(4, 5)
    marked = {**_input(asins), MARKER_FIELD: f"b-1:{PRODUCTS}"}
    async with ApifySource(settings_for(srv)) as source:
        started = await source.start_run(PRODUCTS, marked, max_items=5)
    known = [started["id"]]
    # In flight: the retry waits for it instead of starting another.
    async with ApifySource(settings_for(srv), known_run_ids=known, marker="b-1") as source:
        result = await source.fetch_products(MP, asins)
    assert sim.run_count == 1 and result.upstream_run_ids == known
    assert {n["guard"] for n in result.upstream_notes} == {"run_reused"}
    # Succeeded: reused again, also for the product actor only (a reviews run is new).
    async with ApifySource(settings_for(srv), known_run_ids=known, marker="b-1") as source:
        await source.fetch_products(MP, asins)
        reviews = await source.fetch_reviews(MP, asins)
    assert sim.run_count == 2 and reviews.upstream_run_ids != known
    # A known id whose INPUT carries another batch's marker is not reused.
    async with ApifySource(settings_for(srv), known_run_ids=known, marker="b-2") as source:
        other = await source.fetch_products(MP, asins)
    assert sim.run_count == 3 and other.upstream_run_ids != known


async def test_a_failed_known_run_is_replaced(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, run_fail_rate=1.0)
    sim = srv.simulator
    async with ApifySource(settings_for(srv)) as source:
        failed = await source.start_run(PRODUCTS, _input(sample_asins(5, 2)))
    sim.configure(run_fail_rate=0.0)
    async with ApifySource(settings_for(srv), known_run_ids=[failed["id"], "gone0000001"]) as src:
        result = await src.fetch_products(MP, sample_asins(5, 2))
    assert sim.run_count == 2 and result.upstream_run_ids != [failed["id"]]


# --- (c) polling outages are transient within a bound --------------------------------------


async def test_404_while_polling_is_retried(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, run_duration_s=0.5, poll_not_found=4)
    async with ApifySource(settings_for(srv, poll_wait_s=0), min_poll_interval_s=0.05) as src:
        result = await src.fetch_products(MP, sample_asins(6, 4))
    assert len(result.records) == 4 and srv.simulator.run_count == 1
    assert srv.simulator.config.poll_not_found == 0  # all four 404s were seen and survived


async def test_a_polling_outage_past_the_bound_is_not_permanent(
    servers: list[SimulatorServer],
) -> None:
    srv = start_sim(servers, run_duration_s=30, poll_not_found=10**9)
    settings = settings_for(srv, poll_wait_s=0, poll_outage_s=0.3)
    async with ApifySource(settings, min_poll_interval_s=0.01) as source:
        with pytest.raises(ApifyRunUnreachableError) as info:
            await source.fetch_products(MP, sample_asins(7, 2))
    assert info.value.status_code == 404 and srv.simulator.run_count == 1


async def test_upstream_down_mid_run_then_back(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, run_duration_s=2.0)
    sim = srv.simulator
    settings = settings_for(srv, poll_wait_s=1, poll_outage_s=60, backoff_max_s=0.3)
    asins = sample_asins(8, 6)
    async with ApifySource(settings) as source:
        fetch = asyncio.create_task(source.fetch_products(MP, asins))
        deadline = time.monotonic() + 30
        while sim.run_count == 0:
            assert time.monotonic() < deadline, "the run never started"
            await asyncio.sleep(0.02)
        port = srv.port
        await asyncio.to_thread(srv.stop)  # killed mid-run ...
        failures_before = len(sim.requests)
        await asyncio.sleep(1.0)
        back = SimulatorServer(simulator=sim, port=port)  # ... and back on the same port
        await asyncio.to_thread(back.start)
        servers.append(back)
        result = await fetch
    assert sorted(r.asin for r in result.records) == sorted(asins)
    assert sim.run_count == 1
    assert len(sim.requests) > failures_before  # it carried on polling the same run


async def test_an_upstream_that_lost_its_runs_is_not_trusted_by_id(
    servers: list[SimulatorServer],
) -> None:
    # A restarted simulator forgets its runs and hands the same ids out again (they are
    # derived from its seed): the id alone would bring another batch's data.
    srv = start_sim(servers, run_duration_s=2.0, seed=5)
    settings = settings_for(srv, poll_wait_s=1, poll_outage_s=60, backoff_max_s=0.3)
    asins = sample_asins(13, 4)
    async with ApifySource(settings, marker="b-9") as source:
        fetch = asyncio.create_task(source.fetch_products(MP, asins))
        deadline = time.monotonic() + 30
        while srv.simulator.run_count == 0:
            assert time.monotonic() < deadline, "the run never started"
            await asyncio.sleep(0.02)
        port = srv.port
        await asyncio.to_thread(srv.stop)
        fresh = SimulatorServer(SimConfig(seed=5, block_rate=0.0), port=port)
        await asyncio.to_thread(fresh.start)
        servers.append(fresh)
        async with ApifySource(settings_for(fresh), marker="someone-else") as other:
            taken = await other.start_run(
                PRODUCTS, {**_input(sample_asins(14, 2)), MARKER_FIELD: "someone-else"}
            )
        with pytest.raises(ApifyRunUnreachableError):
            await fetch
    async with ApifySource(
        settings_for(fresh), known_run_ids=[taken["id"]], marker="b-9", reconcile_first=True
    ) as retry:
        result = await retry.fetch_products(MP, asins)
    assert sorted(r.asin for r in result.records) == sorted(asins)
    assert result.upstream_run_ids != [taken["id"]] and fresh.simulator.run_count == 2


# --- (d) the dataset is read within budgets ------------------------------------------------


async def test_a_dataset_past_max_items_is_cut_and_noted(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, pad_items_to=10_000)
    asins = sample_asins(9, 10)
    settings = settings_for(srv, dataset_item_slack=5, max_run_cost_usd=100)
    async with ApifySource(settings) as source:
        result = await source.fetch_products(MP, asins)
    assert len(result.raw_items) == 15  # 10 asked + 5 slack, not 10,000
    assert len(paths(srv, "/items")) == 1
    note = next(n for n in result.upstream_notes if n["guard"] == "dataset_truncated")
    assert note["reason"] == "items" and note["kept"] == 15 and note["unread_claimed"] == 9985
    assert sorted(r.asin for r in result.records) == sorted(asins)


async def test_a_lying_pagination_header_is_not_followed(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers, endless_dataset=True)
    async with ApifySource(settings_for(srv, max_dataset_pages=4), page_size=3) as source:
        run = await source.start_run(PRODUCTS, _input(sample_asins(10, 3)))
        read = await source.read_dataset(run["defaultDatasetId"])  # no maxItems: pages cap
        capped = await source.read_dataset(run["defaultDatasetId"], max_items=2)
    assert read.truncated == "pages" and len(read.items) == 12
    assert read.unread_claimed is not None and read.unread_claimed > 10**8
    assert capped.truncated == "items" and len(capped.items) == 2 + 5
    assert len(paths(srv, "/items")) == 4 + 3  # 3+3+1 items for the capped read


async def test_the_byte_budget_stops_the_read(servers: list[SimulatorServer]) -> None:
    srv = start_sim(servers)
    async with ApifySource(settings_for(srv, max_dataset_bytes=40_000), page_size=2) as source:
        run = await source.run_actor(PRODUCTS, _input(sample_asins(11, 20)))
    note = next(n for n in run.notes if n["guard"] == "dataset_truncated")
    assert note["reason"] == "bytes" and note["dropped"] == 2
    assert 0 < len(run.items) < 20
    assert len(paths(srv, "/items")) == len(run.items) // 2 + 1


# --- (e) run costs are validated ------------------------------------------------------------


@pytest.mark.parametrize("bad", [1e308, -1, "NaN", "Infinity", "abc", True, [1], 10_001])
async def test_an_absurd_cost_is_recorded_as_unknown(
    servers: list[SimulatorServer], bad: Any
) -> None:
    srv = start_sim(servers, cost_override_usd=bad)
    async with ApifySource(settings_for(srv)) as source:
        result = await source.fetch_products(MP, sample_asins(12, 3))
    assert result.cost_usd == 0 and len(result.records) == 3
    note = next(n for n in result.upstream_notes if n["guard"] == "cost_unknown")
    assert note["run_id"] == result.upstream_run_ids[0]


def test_run_cost_accepts_sane_values_only() -> None:
    assert run_cost({"usageTotalUsd": 0.25}, 100) == Decimal("0.25")
    assert run_cost({"usageTotalUsd": "1.5"}, 100) == Decimal("1.5")
    assert run_cost({}, 100) == Decimal(0)
    for bad in (float("nan"), float("inf"), -0.01, 100.01, "x", {"a": 1}):
        assert run_cost({"usageTotalUsd": bad}, 100) is None

"""Worker-side metrics reach the API's /v1/metrics (Prometheus multiprocess mode).

Real parts: two `asinwatch worker` processes (two prefork children each), the API under
uvicorn with two worker processes, PostgreSQL, Redis and the simulator. One ingest runs with
block pages (quarantined items) and a batch upstream refuses for good (a dead letter); the
counters scraped over HTTP must equal what the database says about that run, whichever API
process answers, and must stay after a worker has exited.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asinwatch.ingestion import service
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimulatorServer, sample_asins
from tests.api.server import api_server
from tests.ingestion.conftest import _restore_env, _set_env, truncate, wait_for_run

pytestmark = pytest.mark.xdist_group("celery")

MKT = "amazon.com"
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory, pipeline_db: str) -> Iterator[Path]:
    """A fresh multiprocess folder for the processes this module starts (not pytest's own)."""
    path = tmp_path_factory.mktemp("prometheus")
    saved = _set_env({"ASINWATCH_PROMETHEUS__MULTIPROC_DIR": str(path)})
    yield path
    _restore_env(saved)


def scrape(base: str) -> Samples:
    resp = httpx.get(base + "/v1/metrics", timeout=10)
    assert resp.status_code == 200
    out: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a sample over every label set that matches `labels`."""
    return sum(
        v
        for key, v in samples.get(name, {}).items()
        if all((k, want) in key for k, want in labels.items())
    )


def pipeline_view(samples: Samples) -> dict[str, Any]:
    """The ingest counters of a scrape, in the units the database uses."""
    asins = "asinwatch_ingest_asins_total"
    return {
        "succeeded": total(samples, asins, outcome="succeeded"),
        "quarantined": total(samples, asins, outcome="quarantined"),
        "failed": total(samples, asins, outcome="failed"),
        "promoted": total(samples, "asinwatch_ingest_batches_total", outcome="promoted"),
        "dead_batches": total(samples, "asinwatch_ingest_batches_total", outcome="dead"),
        "dead_letters": total(samples, "asinwatch_dead_letters_total"),
        # The simulator bills in tenths of a cent: the float sum, rounded, is the database's.
        "cost": round(total(samples, "asinwatch_upstream_cost_usd_total"), 6),
        "runs": total(samples, "asinwatch_upstream_runs_total", outcome="succeeded"),
        "requests": total(samples, "asinwatch_upstream_requests_total"),
        "latency_count": total(samples, "asinwatch_upstream_request_duration_seconds_count"),
    }


def wait_scraped(base: str, expected: dict[str, Any], timeout_s: float = 30) -> None:
    """Poll until the scrape shows `expected`: a batch may commit its promotion and count it a
    moment after another batch's delivery has already marked the run final."""
    deadline = time.monotonic() + timeout_s
    while (seen := pipeline_view(scrape(base))) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"/v1/metrics shows {seen}, the database says {expected}")
        time.sleep(0.2)


def prepare(asins: list[str]) -> uuid.UUID:
    with session_scope() as session:
        run, _ = service.prepare_run(
            session, marketplace=MKT, asins=asins, all_tracked=False, trigger="manual", job_id=None
        )
    return run.id


def test_an_ingests_counters_reach_every_api_process_scrape(
    pipeline_db: str,
    simulator: SimulatorServer,
    metrics_dir: Path,
    worker_factory: Any,
) -> None:
    truncate(pipeline_db, worker_running=False)
    workers = [worker_factory(concurrency=2), worker_factory(concurrency=2)]
    sim = simulator.simulator
    sim.configure(error_rate=0.0, block_rate=0.2)
    requests_before = sim.request_count
    runs_before = sum(sim.runs_by_actor().values())
    try:
        with api_server(workers=2) as base:
            before = pipeline_view(scrape(base))
            assert set(before.values()) == {0}  # a fresh folder: nothing counted yet

            run_id = prepare(sample_asins(11, 150))  # three batches of 50
            with psycopg.connect(pipeline_db, autocommit=True) as conn:
                # Upstream refuses batch 1 for good: the adapter rejects it, a dead letter.
                conn.execute(
                    "UPDATE core.ingest_batches SET asins = asins || '{NOT-AN-ASIN}'::text[]"
                    " WHERE run_id = %s AND batch_no = 1",
                    (run_id,),
                )
            assert service.enqueue_run_sync(run_id)
            status, requested, ok, quarantined, failed, batches, done, cost = wait_for_run(
                pipeline_db, run_id
            )
            with psycopg.connect(pipeline_db) as conn:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'promoted'),"
                    " count(*) FILTER (WHERE status = 'dead')"
                    " FROM core.ingest_batches WHERE run_id = %s",
                    (run_id,),
                ).fetchone()
                letters = conn.execute("SELECT count(*) FROM core.dead_letters").fetchone()
            assert row is not None and letters is not None
            promoted, dead = row
            assert status == "partial" and requested == 150 and dead == 1 and letters[0] == 1
            assert quarantined > 0 and ok > 0 and failed == 51 and batches == done == 3

            expected = {
                "succeeded": ok,
                "quarantined": quarantined,
                "failed": failed,
                "promoted": promoted,
                "dead_batches": dead,
                "dead_letters": letters[0],
                "cost": round(float(Decimal(cost)), 6),
                "runs": sum(sim.runs_by_actor().values()) - runs_before,
                "requests": sim.request_count - requests_before,
                "latency_count": sim.request_count - requests_before,
            }
            assert expected["cost"] > 0 and expected["runs"] >= 2 * promoted
            wait_scraped(base, expected)
            # Several scrapes, answered by either API process: the same sums every time.
            views = [pipeline_view(scrape(base)) for _ in range(6)]
            assert views == [expected] * 6

            # Each worker's main process and prefork children wrote their own files.
            pids = {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("*.db")}
            assert len(pids) >= 2 + 2  # two workers' main processes + two API processes

            # A worker that exits keeps its counts in the sums (no false counter reset).
            workers[0].stop()
            assert pipeline_view(scrape(base)) == expected
    finally:
        sim.configure(block_rate=0.0)
        for worker in workers:
            worker.stop()

"""Acceptance: a worker killed with SIGKILL mid-run loses nothing and duplicates nothing.

The simulator is made slow right before the kill, so both worker processes are provably in
the middle of a batch (waiting on an upstream run) when SIGKILL lands; nothing depends on
how fast the machine is.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from asinwatch.ingestion import service
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimulatorServer, sample_asins
from tests.ingestion.conftest import track, truncate, wait_for_run

pytestmark = pytest.mark.xdist_group("celery")

MKT = "amazon.com"


def wait_until(predicate: Any, what: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def batch_states(db_url: str, run_id: Any) -> dict[int, tuple[str, int]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT batch_no, status, attempts FROM core.ingest_batches WHERE run_id = %s",
            (run_id,),
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_sigkill_mid_run_promotes_every_asin_exactly_once(
    pipeline_db: str, simulator: SimulatorServer, worker_factory: Any
) -> None:
    truncate(pipeline_db)
    sim = simulator.simulator
    sim.configure(error_rate=0.0, block_rate=0.0, run_duration_s=0.0)
    runs_before = sim.run_count
    asins = sample_asins(9, 600)
    track(pipeline_db, MKT, asins)
    first_worker = worker_factory()
    with session_scope() as session:
        run, _ = service.prepare_run(
            session, marketplace=MKT, asins=None, all_tracked=True, trigger="manual", job_id=None
        )
    service.enqueue_run_sync(run.id)

    # Let part of the run land, then make every new upstream run hang ...
    wait_until(
        lambda: sum(s == "promoted" for s, _ in batch_states(pipeline_db, run.id).values()) >= 2,
        "two promoted batches",
    )
    sim.configure(run_duration_s=600.0)
    runs_at_switch = sim.run_count
    # ... until both worker processes are stuck inside a batch, waiting on upstream.
    wait_until(lambda: sim.run_count >= runs_at_switch + 2, "two hanging upstream runs")
    wait_until(
        lambda: sum(s == "fetching" for s, _ in batch_states(pipeline_db, run.id).values()) >= 2,
        "two batches mid-fetch",
    )
    first_worker.kill()
    before = batch_states(pipeline_db, run.id)
    interrupted = [no for no, (status, _) in before.items() if status == "fetching"]
    assert len(interrupted) >= 2
    assert any(status == "promoted" for status, _ in before.values())
    assert any(status == "pending" for status, _ in before.values())  # a mid-run kill

    sim.configure(run_duration_s=0.0)
    sim.finish_running()  # the hanging upstream runs complete; the retries reuse them
    worker_factory()  # a new worker resumes the run (it re-sends unfinished batches on start)
    status = wait_for_run(pipeline_db, run.id)
    # No extra billed run: one product run and one reviews run per batch, kill or not.
    assert sim.run_count - runs_before == 2 * 12

    assert status[:7] == ("succeeded", 600, 600, 0, 0, 12, 12)
    after = batch_states(pipeline_db, run.id)
    assert all(s == "promoted" for s, _ in after.values())
    assert all(after[no][1] >= 2 for no in interrupted)  # really interrupted and re-run
    with psycopg.connect(pipeline_db) as conn:

        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            assert row is not None
            return row[0] if len(row) == 1 else tuple(row)

        # Every ASIN promoted exactly once, nothing staged twice, nothing left behind.
        assert one(
            "SELECT count(*), count(DISTINCT (asin, date)) FROM core.product_metrics_daily"
        ) == (600, 600)
        assert one(
            "SELECT count(*), count(DISTINCT asin) FROM staging_raw.raw_events"
            " WHERE kind = 'product'"
        ) == (600, 600)
        assert one("SELECT count(*) FROM staging_raw.raw_events WHERE status <> 'promoted'") == 0
        assert one("SELECT count(*) FROM core.listing_snapshots") == 600
        assert one("SELECT count(*) FROM mart.product_latest") == 600
        assert one("SELECT count(*) FROM core.products WHERE invalid_runs <> 0") == 0
        assert one("SELECT count(*) FROM core.dead_letters") == 0

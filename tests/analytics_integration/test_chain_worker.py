"""The analytics chain through a real Celery worker: a run's completion enqueues
compute_kpis -> detect_anomalies -> (report | recommendations). Reuses the ingestion tests'
simulator and worker fixtures (tests/ingestion/conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from asinwatch.config import reset_settings_cache
from asinwatch.ingestion import service
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimulatorServer, sample_asins
from tests.ingestion.conftest import (  # noqa: F401 - fixtures used by name
    WorkerProcess,
    pipeline_db,
    simulator,
    track,
    truncate,
    wait_for_run,
    worker_factory,
)

pytestmark = pytest.mark.xdist_group("celery")

MKT = "amazon.com"
HOOK = "ASINWATCH_INGEST__AFTER_RUN_HOOK"


@pytest.fixture(scope="module")
def chain_worker(simulator: SimulatorServer, worker_factory: Any) -> Iterator[WorkerProcess]:  # noqa: F811
    """A worker started with the after-run hook ON (the ingestion fixtures turn it off)."""
    saved = os.environ.get(HOOK)
    os.environ[HOOK] = "true"
    reset_settings_cache()
    try:
        yield worker_factory()
    finally:
        if saved is None:
            os.environ.pop(HOOK, None)
        else:
            os.environ[HOOK] = saved
        reset_settings_cache()


def count(db_url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return int(row[0])


def test_a_finished_run_runs_the_analytics_chain(
    pipeline_db: str,  # noqa: F811
    simulator: SimulatorServer,  # noqa: F811
    chain_worker: WorkerProcess,
) -> None:
    truncate(pipeline_db)
    simulator.simulator.configure(error_rate=0.0, block_rate=0.0)
    asins = sample_asins(23, 6)
    own, rivals = asins[0], asins[1:3]
    track(pipeline_db, MKT, asins)
    with psycopg.connect(pipeline_db) as conn:
        conn.execute("UPDATE core.products SET is_own = false WHERE asin = ANY(%s)", (rivals,))
        for rival in rivals:
            conn.execute(
                "INSERT INTO core.competitor_links (marketplace, asin, competitor_asin)"
                " VALUES (%s, %s, %s)",
                (MKT, own, rival),
            )
    with session_scope() as session:
        run, created = service.prepare_run(
            session, marketplace=MKT, asins=asins, all_tracked=False, trigger="manual", job_id=None
        )
    assert created and service.enqueue_run_sync(run.id)
    assert wait_for_run(pipeline_db, run.id)[0] == "succeeded"

    # The report task writes one product at a time (a transaction each): wait for the report
    # of the product asserted on below, not for any report.
    deadline = time.monotonic() + 120  # guards against a hang only
    while count(pipeline_db, "SELECT count(*) FROM core.recommendations") < 4 or not count(
        pipeline_db, "SELECT count(*) FROM core.reports WHERE asin = %s", own
    ):
        assert time.monotonic() < deadline, chain_worker.log_text()[-3000:]
        time.sleep(0.2)
    assert count(pipeline_db, "SELECT count(*) FROM mart.product_kpis_daily") == 6
    # reports and recommendations for our products only (4 own: all but the two rivals)
    assert count(pipeline_db, "SELECT count(*) FROM core.reports WHERE asin = %s", own) == 1
    assert count(pipeline_db, "SELECT count(*) FROM core.reports WHERE asin = ANY(%s)", rivals) == 0
    assert count(pipeline_db, "SELECT count(*) FROM core.recommendations") == 4

"""The batch wrapper: whatever fetching, staging or promotion raises ends the batch.

Deliveries run in-process (no worker in this module, nothing enqueued) against the real
database, Redis and the simulator. A data error is parked as a dead letter at once (one billed
actor run, never a retry run); another error marks the batch failed for its retry; the batch
is never left `fetching`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from asinwatch.ingestion import service
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimulatorServer, sample_asins
from tests.ingestion.conftest import track, truncate

pytestmark = pytest.mark.xdist_group("celery")

MKT = "amazon.com"


def rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def prepared(asins: list[str]) -> uuid.UUID:
    """A run whose batch 0 this test delivers in-process (nothing is enqueued)."""
    with session_scope() as session:
        run, _ = service.prepare_run(
            session, marketplace=MKT, asins=asins, all_tracked=False, trigger="manual", job_id=None
        )
    return run.id


def batch_state(db_url: str, run_id: uuid.UUID) -> tuple[Any, ...]:
    (row,) = rows(
        db_url,
        "SELECT b.status, b.attempts, b.error, r.status, r.asins_failed FROM core.ingest_batches b"
        " JOIN core.ingest_runs r ON r.id = b.run_id WHERE b.run_id = %s",
        run_id,
    )
    return row


@pytest.mark.parametrize(
    ("error", "outcome", "batch", "run"),
    [
        (ValueError("bad value \x00 \ud800 in item"), "dead", "dead", "failed"),
        (psycopg.errors.NumericValueOutOfRange("integer out of range"), "dead", "dead", "failed"),
        (RuntimeError("lost the connection"), "retry", "failed", "queued"),
    ],
)
def test_an_exception_while_staging_never_leaves_the_batch_open(
    pipeline_db: str,
    simulator: SimulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    outcome: str,
    batch: str,
    run: str,
) -> None:
    from asinwatch.ingestion import pipeline

    truncate(pipeline_db, worker_running=False)
    asins = sample_asins(29, 3)
    track(pipeline_db, MKT, asins)
    run_id = prepared(asins)

    def explode(*_: Any, **__: Any) -> bool:
        raise error

    monkeypatch.setattr(pipeline, "stage_batch", explode)
    runs_before = simulator.simulator.run_count
    result = pipeline.run_batch(run_id, 0, "ingestion.fetch_product_details")

    assert result.status == outcome
    status, attempts, stored_error, run_status, failed = batch_state(pipeline_db, run_id)
    assert (status, attempts, run_status) == (batch, 1, run)
    assert stored_error.startswith(type(error).__name__ + ": ")
    assert "\x00" not in stored_error and "\ud800" not in stored_error
    assert failed == (3 if batch == "dead" else 0)
    assert simulator.simulator.run_count - runs_before == 2  # products + reviews, once each
    if batch == "dead":  # a data error is a dead letter at once: no second billed attempt
        letters = rows(pipeline_db, "SELECT run_id, attempts FROM core.dead_letters")
        assert letters == [(run_id, 1)]


def test_a_data_error_in_promotion_is_parked_at_once(
    pipeline_db: str, simulator: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asinwatch.ingestion import pipeline

    truncate(pipeline_db, worker_running=False)
    asins = sample_asins(31, 2)
    track(pipeline_db, MKT, asins)
    run_id = prepared(asins)

    def out_of_range(*_: Any, **__: Any) -> None:
        raise psycopg.errors.NumericValueOutOfRange("smallint out of range")

    monkeypatch.setattr(pipeline, "promote_batch", out_of_range)
    assert pipeline.run_batch(run_id, 0, "ingestion.fetch_product_details").status == "dead"
    status, attempts, stored_error, run_status, _ = batch_state(pipeline_db, run_id)
    assert (status, attempts, run_status) == ("dead", 1, "failed")
    assert "smallint out of range" in stored_error
    # The staged items are kept: once the cause is fixed, a replay promotes them.
    staged = rows(pipeline_db, "SELECT count(*) FROM staging_raw.raw_events")
    assert staged[0][0] > 0


@pytest.mark.parametrize(
    "started", [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)]
)
def test_a_run_dated_outside_the_sane_window_is_quarantined_not_retried(
    pipeline_db: str, simulator: SimulatorServer, started: datetime
) -> None:
    from asinwatch.ingestion.promotion import promote_batch
    from asinwatch.ingestion.records import FetchResult
    from asinwatch.ingestion.staging import StagedFetch, stage_batch

    truncate(pipeline_db, worker_running=False)
    asins = sample_asins(37, 3)
    track(pipeline_db, MKT, asins)
    run_id = prepared(asins)
    items = [simulator.simulator.product_item(MKT, a) for a in asins]
    fetch = FetchResult(items, [], [], [], [], Decimal("0.01"), ["up1"], started)
    with session_scope() as s:
        assert stage_batch(
            s,
            run_id=run_id,
            batch_no=0,
            marketplace=MKT,
            fetches=[StagedFetch("product", "t", fetch)],
        )
    with session_scope() as s:
        result = promote_batch(s, run_id, 0)
    assert result is not None
    assert (result.outcome.succeeded, result.outcome.quarantined, result.outcome.failed) == (
        0,
        3,
        0,
    )
    assert result.quarantine_codes == {"bad_time": 3}
    assert rows(pipeline_db, "SELECT count(*) FROM core.product_metrics_daily") == [(0,)]
    # The absurd time never reaches a product or the batch's time the analytics use.
    assert rows(pipeline_db, "SELECT observed_at FROM core.ingest_batches") == [(None,)]
    assert rows(pipeline_db, "SELECT max(last_seen_at), max(last_valid_at) FROM core.products") == [
        (None, None)
    ]

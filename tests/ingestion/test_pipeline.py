"""Acceptance: the whole pipeline with a real Celery worker, PostgreSQL, Redis and the simulator.

Each test starts runs exactly as the CLI / API do (prepare, commit, enqueue) and checks the
core tables afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pytest
import redis

from asinwatch.ingestion import service, tasks
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimulatorServer, sample_asins
from tests.ingestion.conftest import WorkerProcess, track, truncate, wait_for_run

pytestmark = pytest.mark.xdist_group("celery")

MKT = "amazon.com"


def start(asins: list[str] | None = None, job_id: str | None = None) -> uuid.UUID:
    with session_scope() as session:
        run, created = service.prepare_run(
            session,
            marketplace=MKT,
            asins=asins,
            all_tracked=asins is None,
            trigger="manual",
            job_id=job_id,
        )
    if created:
        assert service.enqueue_run_sync(run.id)
    return run.id


def one(db_url: str, sql: str, *params: Any) -> Any:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0] if len(row) == 1 else row


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asinwatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_1000_asins_end_to_end_through_the_apify_adapter(
    pipeline_db: str, simulator: SimulatorServer, celery_worker: WorkerProcess
) -> None:
    truncate(pipeline_db)
    simulator.simulator.configure(error_rate=0.0, block_rate=0.0)
    asins = sample_asins(1, 1000)
    track(pipeline_db, MKT, asins)
    requests_before = simulator.simulator.request_count

    run_id = start()  # --all: every active tracked product
    status = wait_for_run(pipeline_db, run_id)

    assert status[:7] == ("succeeded", 1000, 1000, 0, 0, 20, 20)
    assert status[7] > 0  # the simulator bills every run
    assert simulator.simulator.request_count > requests_before
    assert one(pipeline_db, "SELECT count(DISTINCT asin) FROM core.product_metrics_daily") == 1000
    assert one(pipeline_db, "SELECT count(*) FROM mart.product_latest") == 1000
    assert one(pipeline_db, "SELECT count(*) FROM core.listing_snapshots") == 1000
    assert one(pipeline_db, "SELECT count(*) FROM core.reviews") > 0
    staged = one(
        pipeline_db,
        "SELECT count(*) FILTER (WHERE kind = 'product'), count(*) FILTER (WHERE status"
        " <> 'promoted') FROM staging_raw.raw_events WHERE run_id = %s",
        run_id,
    )
    assert staged == (1000, 0)
    # Observations are dated by the upstream run's time, not by the promotion.
    assert (
        one(
            pipeline_db,
            "SELECT count(*) FROM core.product_metrics_daily m JOIN staging_raw.raw_events e"
            " ON e.asin = m.asin AND e.kind = 'product' WHERE m.observed_at <> e.observed_at",
        )
        == 0
    )
    assert (
        one(
            pipeline_db,
            "SELECT count(*) FROM core.products WHERE last_valid_at IS NULL OR invalid_runs <> 0",
        )
        == 0
    )


def test_the_same_job_id_twice_changes_nothing(
    pipeline_db: str, simulator: SimulatorServer, celery_worker: WorkerProcess
) -> None:
    truncate(pipeline_db)
    asins = sample_asins(2, 60)
    run_id = start(asins, job_id="manual:twice")
    first = wait_for_run(pipeline_db, run_id)
    requests = simulator.simulator.request_count

    again = start(asins, job_id="manual:twice")
    assert again == run_id
    assert not service.enqueue_run_sync(run_id)  # already sent once
    assert tasks.dispatch_run(str(run_id)) == 0  # a finished run fans nothing out
    assert wait_for_run(pipeline_db, run_id) == first
    assert one(pipeline_db, "SELECT count(*) FROM core.ingest_runs") == 1
    assert simulator.simulator.request_count == requests


def test_injected_429_and_5xx_lose_nothing(
    pipeline_db: str,
    simulator: SimulatorServer,
    celery_worker: WorkerProcess,
    key_prefix: str,
    redis_url: str,
) -> None:
    truncate(pipeline_db)
    simulator.simulator.configure(error_rate=0.2, block_rate=0.0)
    asins = sample_asins(3, 500)
    try:
        run_id = start(asins)
        _, requested, ok, quarantined, failed, total, done, _ = wait_for_run(pipeline_db, run_id)
    finally:
        simulator.simulator.configure(error_rate=0.0)

    promoted = one(
        pipeline_db,
        "SELECT count(*) FROM core.ingest_batches WHERE run_id = %s AND status = 'promoted'",
        run_id,
    )
    assert promoted / total >= 0.98
    assert done == total and requested == 500
    assert ok + quarantined + failed == 500  # every ASIN accounted for
    assert one(pipeline_db, "SELECT count(*) FROM core.product_metrics_daily") == ok
    dead = one(pipeline_db, "SELECT count(*) FROM core.dead_letters")
    assert dead == total - promoted  # a batch that failed for good is a dead letter
    client = redis.Redis.from_url(redis_url)
    cuts = client.hget(f"{key_prefix}ratelimit:apify:adaptive", "cuts")
    client.close()
    assert cuts is not None and int(cuts) >= 1  # the global limiter slowed down on 429s


def test_block_pages_and_garbage_are_quarantined_the_rest_succeeds(
    pipeline_db: str, simulator: SimulatorServer, celery_worker: WorkerProcess
) -> None:
    truncate(pipeline_db)
    simulator.simulator.configure(error_rate=0.0, block_rate=0.2)
    asins = sample_asins(4, 200)
    track(pipeline_db, MKT, asins)
    try:
        run_id = start(asins)
        status, _, ok, quarantined, failed, total, done, _ = wait_for_run(pipeline_db, run_id)
    finally:
        simulator.simulator.configure(block_rate=0.0)

    assert status == "succeeded" and done == total  # every batch promoted
    assert quarantined > 0 and ok > 100 and ok + quarantined + failed == 200
    reasons = dict(
        psycopg.connect(pipeline_db)
        .execute(
            "SELECT split_part(quarantine_reason, ':', 1), count(*) FROM staging_raw.raw_events"
            " WHERE status = 'quarantined' GROUP BY 1"
        )
        .fetchall()
    )
    assert reasons and all(reasons.values())
    assert set(reasons) <= {
        "block_page",
        "bad_field",
        "wrong_asin",
        "absurd_value",
        "missing_asin",
        "currency_mismatch",
        "not_a_dict",
        "duplicate",
    }
    assert (
        one(
            pipeline_db,
            "SELECT count(*) FROM staging_raw.raw_events WHERE status = 'quarantined'"
            " AND (quarantine_reason IS NULL OR quarantine_reason = '')",
        )
        == 0
    )
    # Quarantined observations never become metrics.
    assert one(pipeline_db, "SELECT count(*) FROM core.product_metrics_daily") == ok
    assert (
        one(
            pipeline_db,
            "SELECT count(*) FROM core.products WHERE invalid_runs = 1",
        )
        == quarantined + failed
    )


def test_replay_from_staging_reproduces_the_core_rows_without_upstream(
    pipeline_db: str, simulator: SimulatorServer, celery_worker: WorkerProcess
) -> None:
    truncate(pipeline_db)
    simulator.simulator.configure(block_rate=0.1)
    asins = sample_asins(5, 150)
    track(pipeline_db, MKT, asins)
    try:
        run_id = start(asins)
        wait_for_run(pipeline_db, run_id)
    finally:
        simulator.simulator.configure(block_rate=0.0)
    dump = (
        "SELECT (SELECT array_agg(m::text ORDER BY asin) FROM core.product_metrics_daily m),"
        " (SELECT array_agg((l.asin, l.content_fp, l.observed_at)::text ORDER BY asin)"
        "  FROM core.listing_snapshots l),"
        " (SELECT count(*) FROM core.reviews),"
        " (SELECT array_agg((asin, invalid_runs, last_valid_at, title)::text ORDER BY asin)"
        "  FROM core.products),"
        " (SELECT array_agg((status, quarantine_reason)::text ORDER BY id)"
        "  FROM staging_raw.raw_events),"
        " (SELECT (asins_succeeded, asins_quarantined, asins_failed, batches_done)::text"
        "  FROM core.ingest_runs)"
    )
    before = one(pipeline_db, dump)
    requests = simulator.simulator.request_count
    # The read model and metrics are wiped; the replay must rebuild them from staging alone.
    with psycopg.connect(pipeline_db, autocommit=True) as conn:
        conn.execute("TRUNCATE core.product_metrics_daily, mart.product_latest")

    result = cli("ingest", "replay", str(run_id))

    assert result.returncode == 0, result.stderr
    assert "re-promoted 3 batch(es)" in result.stdout
    assert one(pipeline_db, dump) == before
    assert simulator.simulator.request_count == requests  # upstream was never called


def test_dead_letter_alerts_and_replays(
    pipeline_db: str, simulator: SimulatorServer, celery_worker: WorkerProcess
) -> None:
    truncate(pipeline_db)
    asins = sample_asins(6, 100)
    with session_scope() as session:
        run, _ = service.prepare_run(
            session, marketplace=MKT, asins=asins, all_tracked=False, trigger="manual", job_id=None
        )
    # A batch upstream refuses for good (the adapter rejects it without calling out).
    with psycopg.connect(pipeline_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE core.ingest_batches SET asins = asins || '{NOT-AN-ASIN}'::text[]"
            " WHERE run_id = %s AND batch_no = 1",
            (run.id,),
        )
    service.enqueue_run_sync(run.id)
    status = wait_for_run(pipeline_db, run.id)
    assert status[0] == "partial" and status[2] == 50 and status[4] == 51

    listed = cli("ingest", "dead-letters")
    assert listed.returncode == 0 and "InvalidBatchError" in listed.stdout
    letter_id = one(pipeline_db, "SELECT id FROM core.dead_letters")
    assert one(
        pipeline_db,
        "SELECT alert_type, asin, severity, status, occurrences FROM core.alerts"
        " WHERE alert_type = 'ingest_dead_letter'",
    ) == ("ingest_dead_letter", "-", "critical", "open", 1)

    with psycopg.connect(pipeline_db, autocommit=True) as conn:  # the cause is fixed
        conn.execute(
            "UPDATE core.ingest_batches SET asins = array_remove(asins, 'NOT-AN-ASIN')"
            " WHERE run_id = %s",
            (run.id,),
        )
    replayed = cli("ingest", "replay", "--dead-letter", str(letter_id))
    assert replayed.returncode == 0, replayed.stderr
    final = wait_for_run(pipeline_db, run.id)
    assert final[:5] == ("succeeded", 100, 100, 0, 0)
    assert one(pipeline_db, "SELECT replayed_at IS NOT NULL FROM core.dead_letters")
    assert one(pipeline_db, "SELECT count(DISTINCT asin) FROM core.product_metrics_daily") == 100


def test_cli_run_wait_and_runs(
    pipeline_db: str, simulator: SimulatorServer, celery_worker: WorkerProcess
) -> None:
    truncate(pipeline_db)
    asins = sample_asins(7, 70)
    track(pipeline_db, MKT, asins)  # an operator may run tracked ASINs (untracked: admin)
    result = cli(
        "ingest",
        "run",
        "--asins",
        ",".join(asins[:40]),
        "--asins",
        ",".join(asins[40:]),
        "--wait",
        "--job-id",
        "manual:cli",
    )
    assert result.returncode == 0, result.stderr
    assert "70 succeeded" in result.stdout and "2 batches" in result.stdout
    assert "batches" in result.stderr  # the progress bar
    again = cli("ingest", "run", "--asins", asins[0], "--job-id", "manual:cli")
    assert again.returncode == 0 and "already exists" in again.stdout
    runs = cli("ingest", "runs")
    assert runs.returncode == 0 and "manual:cli\tsucceeded" in runs.stdout

    for args, message in (
        (("ingest", "run"), "exactly one"),
        (("ingest", "run", "--asins", "nope"), "invalid ASIN"),
        (("ingest", "replay", "not-a-uuid"), "invalid run id"),
        (("ingest", "replay", str(uuid.uuid4())), "no ingestion run"),
        (("ingest", "replay", "--dead-letter", "999999"), "no dead letter"),
    ):
        bad = cli(*args)
        assert bad.returncode != 0
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], bad.stderr

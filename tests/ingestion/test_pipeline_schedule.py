"""Scheduled runs: one run per marketplace and slot, whatever the number of fires."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg
import pytest

from asinwatch.config import reset_settings_cache
from asinwatch.ingestion import tasks
from asinwatch.simulator import sample_asins
from tests.ingestion.conftest import track, truncate

pytestmark = pytest.mark.xdist_group("celery")


@pytest.fixture
def no_worker_queue(db_url: str, redis_url: str) -> Iterator[str]:
    """The dispatch messages these tests send are dropped afterwards (no worker runs here)."""
    from asinwatch.worker.celery_app import celery_app

    yield db_url
    celery_app.control.purge()


def test_daily_run_fires_once_per_marketplace_and_day(
    no_worker_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = no_worker_queue
    truncate(db_url, worker_running=False)
    monkeypatch.setenv("ASINWATCH_INGEST__TIMEZONE", "Asia/Tokyo")
    reset_settings_cache()
    track(db_url, "amazon.com", sample_asins(31, 70))
    track(db_url, "amazon.de", sample_asins(32, 5))
    day = datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat()

    first = tasks.run_scheduled()
    second = tasks.run_scheduled()  # a double fire (two beats, a re-delivery)

    assert sorted(first) == [f"schedule:amazon.com:{day}", f"schedule:amazon.de:{day}"]
    assert second == []
    with psycopg.connect(db_url) as conn:
        runs = conn.execute(
            "SELECT job_id, trigger, asins_requested, batches_total FROM core.ingest_runs"
            " ORDER BY job_id"
        ).fetchall()
    assert runs == [
        (f"schedule:amazon.com:{day}", "schedule", 70, 2),
        (f"schedule:amazon.de:{day}", "schedule", 5, 1),
    ]


def test_health_sample_takes_a_small_random_sample_once_per_slot(
    no_worker_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_url = no_worker_queue
    truncate(db_url, worker_running=False)
    monkeypatch.setenv("ASINWATCH_INGEST__HEALTH_SAMPLE_SIZE", "4")
    reset_settings_cache()
    asins = sample_asins(33, 40)
    track(db_url, "amazon.com", asins)
    with psycopg.connect(db_url, autocommit=True) as conn:  # paused products are not sampled
        conn.execute(
            "UPDATE core.products SET tracking_state = 'paused' WHERE asin = ANY(%s)", (asins[20:],)
        )

    started = tasks.run_health_sample()
    assert tasks.run_health_sample() == []

    assert len(started) == 1 and started[0].startswith("health:amazon.com:")
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT r.trigger, r.asins_requested, b.asins FROM core.ingest_runs r"
            " JOIN core.ingest_batches b ON b.run_id = r.id"
        ).fetchone()
    assert row is not None and row[0] == "health" and row[1] == 4
    assert set(row[2]) <= set(asins[:20]) and len(set(row[2])) == 4

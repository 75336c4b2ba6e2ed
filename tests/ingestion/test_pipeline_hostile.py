"""Acceptance: a hostile upstream through the real Celery worker, PostgreSQL and Redis.

The simulator serves, in ONE batch, good items beside one item per hostile kind (an int beyond
its column for every count, a lone surrogate, NUL, 5,000-deep nesting, year-1 and 9999-12-31
dates, a NaN and a 0 price, a 5 MB title, a block page naming another ASIN). The good items
are promoted, the bad ones quarantined with their reasons, the run finishes with counters that
say what happened, and each actor was run (and billed) exactly once: no retry runs.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from asinwatch.ingestion import service
from asinwatch.ingestion.normalise import TEXT_LIMITS
from asinwatch.ingestion.rawjson import MAX_RAW_STRING
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimulatorServer, sample_asins
from asinwatch.simulator.hostile import HOSTILE_KINDS
from tests.ingestion.conftest import WorkerProcess, track, truncate, wait_for_run

pytestmark = pytest.mark.xdist_group("celery")

MKT = "amazon.com"
CLEANED = {"lone_surrogate", "nul", "huge_title"}  # promoted, with clean and capped text
QUARANTINED = {
    "review_count_overflow": "absurd_value",
    "rank_overflow": "absurd_value",
    "purchase_volume_overflow": "absurd_value",
    "image_count_overflow": "absurd_value",
    "bullet_count_overflow": "absurd_value",
    "deep_nesting": "too_deep",
    "year_1": "bad_time",
    "year_9999": "bad_time",
    "nan_price": "bad_field",
    "zero_price": "absurd_value",
    "block_other_asin": "wrong_asin",
}


def rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def start(asins: list[str]) -> uuid.UUID:
    with session_scope() as session:
        run, created = service.prepare_run(
            session,
            marketplace=MKT,
            asins=asins,
            all_tracked=False,
            trigger="manual",
            job_id=None,
        )
    assert created and service.enqueue_run_sync(run.id)
    return run.id


def test_one_bad_item_never_harms_another(
    pipeline_db: str, simulator: SimulatorServer, celery_worker: WorkerProcess
) -> None:
    assert set(QUARANTINED) | CLEANED == set(HOSTILE_KINDS)
    truncate(pipeline_db)
    sim = simulator.simulator
    asins = sample_asins(23, 20 + len(HOSTILE_KINDS))
    good, bad = asins[:20], asins[20:]
    kind_of = dict(zip(bad, HOSTILE_KINDS, strict=True))
    expected_titles = {a: sim.product_item(MKT, a)["title"] for a in asins}
    sim.configure(error_rate=0.0, block_rate=0.0, hostile=kind_of)
    track(pipeline_db, MKT, asins)
    runs_before = sim.runs_by_actor()
    try:
        run_id = start(asins)
        status = wait_for_run(pipeline_db, run_id)
    finally:
        sim.configure(hostile={})

    # Finalised, one batch, counters that say what happened: nothing "failed".
    n_ok = len(good) + len(CLEANED)
    assert status[:7] == ("succeeded", len(asins), n_ok, len(QUARANTINED), 0, 1, 1)
    # One run per actor, no retry runs: the batch was delivered once and never re-fetched.
    runs_after = sim.runs_by_actor()
    assert {a: runs_after.get(a, 0) - runs_before.get(a, 0) for a in runs_after} == {
        "junglee~amazon-crawler": 1,
        "junglee~amazon-reviews-scraper": 1,
    }
    batch = rows(
        pipeline_db,
        "SELECT status, attempts, succeeded, quarantined, failed, error"
        " FROM core.ingest_batches WHERE run_id = %s",
        run_id,
    )
    assert batch == [("promoted", 1, n_ok, len(QUARANTINED), 0, None)]
    assert rows(pipeline_db, "SELECT count(*) FROM core.dead_letters") == [(0,)]

    # Every staged product item ended promoted or quarantined with its reason.
    staged = {
        asin: (st, reason)
        for asin, st, reason in rows(
            pipeline_db,
            "SELECT asin, status, quarantine_reason FROM staging_raw.raw_events"
            " WHERE run_id = %s AND kind = 'product'",
            run_id,
        )
    }
    assert set(staged) == set(asins)
    for asin in good:
        assert staged[asin] == ("promoted", None), asin
    for asin, kind in kind_of.items():
        st, reason = staged[asin]
        if kind in CLEANED:
            assert (st, reason) == ("promoted", None), (kind, reason)
        else:
            assert st == "quarantined" and reason.startswith(QUARANTINED[kind] + ": "), (
                kind,
                reason,
            )

    # The good and the cleaned items are the metrics; nothing else is.
    promoted = {a for (a,) in rows(pipeline_db, "SELECT asin FROM core.product_metrics_daily")}
    assert promoted == set(good) | {a for a, k in kind_of.items() if k in CLEANED}
    latest = {a for (a,) in rows(pipeline_db, "SELECT asin FROM mart.product_latest")}
    assert latest == promoted

    # Text is clean and capped everywhere it is stored; staging keeps a bounded copy.
    by_kind = {k: a for a, k in kind_of.items()}
    titles = dict(rows(pipeline_db, "SELECT asin, title FROM core.products"))
    assert titles[by_kind["nul"]] == expected_titles[by_kind["nul"]]
    assert titles[by_kind["lone_surrogate"]] == expected_titles[by_kind["lone_surrogate"]]
    assert titles[by_kind["huge_title"]] == "T" * TEXT_LIMITS["title"]
    assert max(len(t or "") for t in titles.values()) <= TEXT_LIMITS["title"]
    snapshot_title = rows(
        pipeline_db,
        "SELECT max(length(content->>'title')) FROM core.listing_snapshots",
    )
    assert snapshot_title == [(TEXT_LIMITS["title"],)]
    raw_title = rows(
        pipeline_db,
        "SELECT length(payload->>'title') FROM staging_raw.raw_events WHERE asin = %s"
        " AND kind = 'product'",
        by_kind["huge_title"],
    )
    assert raw_title == [(MAX_RAW_STRING,)]

    # No absurd time reached a "latest" view or a product's last-seen time.
    horizon = datetime.now(UTC) + timedelta(days=1)
    (seen,) = rows(pipeline_db, "SELECT max(last_seen_at), max(last_valid_at) FROM core.products")
    assert all(t is not None and t < horizon for t in seen)
    (latest_at,) = rows(pipeline_db, "SELECT max(observed_at) FROM mart.product_latest")
    assert latest_at[0] < horizon

    # Reviews: text cleaned, an absurd date quarantined, the rest kept.
    bodies = [
        b
        for (b,) in rows(
            pipeline_db, "SELECT body FROM core.reviews WHERE asin = %s", by_kind["nul"]
        )
    ]
    assert "Broke fast" in bodies
    (dates,) = rows(pipeline_db, "SELECT min(review_date), max(review_date) FROM core.reviews")
    assert dates[0].year >= 1995 and dates[1] < horizon.date()
    review_q = rows(
        pipeline_db,
        "SELECT asin, quarantine_reason FROM staging_raw.raw_events WHERE run_id = %s"
        " AND kind = 'review' AND status = 'quarantined'",
        run_id,
    )
    dated = {by_kind["year_1"], by_kind["year_9999"]}
    with_reviews = {
        a
        for (a,) in rows(
            pipeline_db,
            "SELECT DISTINCT asin FROM staging_raw.raw_events WHERE kind = 'review'"
            " AND asin = ANY(%s)",
            list(dated),
        )
    }
    assert with_reviews  # the seed gives at least one of them reviews
    assert {a for a, _ in review_q} == with_reviews
    assert all(r.startswith("bad_time: review is dated") for _, r in review_q)

"""Staging and promotion against the real database: one transaction per batch, the right day,
newest-wins upserts, quarantine with reasons, replay reproducing the same rows, dead letters."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from asinwatch.ingestion import pipeline_alerts, repository, service
from asinwatch.ingestion.promotion import promote_batch
from asinwatch.ingestion.records import FetchResult
from asinwatch.ingestion.staging import StagedFetch, stage_batch
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimConfig, Simulator, sample_asins

MKT = "amazon.com"
# 05:00 UTC on 10 March is still 9 March in Los Angeles (amazon.com's time zone).
SEEN = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)
SIM = Simulator(SimConfig(seed=11, block_rate=0))


def items_for(asins: list[str], at: datetime = SEEN) -> list[dict[str, Any]]:
    return [SIM.product_item(MKT, a, at) for a in asins]


def fetch(items: list[Any], at: datetime = SEEN, cost: str = "0.01") -> StagedFetch:
    result = FetchResult(items, [], [], [], [], Decimal(cost), ["upRun1"], at)
    return StagedFetch("product", "apify:test", result)


def track(db_url: str, asins: list[str]) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for a in asins:
            conn.execute(
                "INSERT INTO core.products (marketplace, asin, is_own, tracking_state)"
                " VALUES (%s, %s, true, 'active') ON CONFLICT DO NOTHING",
                (MKT, a),
            )


def new_run(asins: list[str], job: str | None = None) -> uuid.UUID:
    with session_scope() as session:
        run, created = service.prepare_run(
            session,
            marketplace=MKT,
            asins=asins,
            all_tracked=False,
            trigger="manual",
            job_id=job,
        )
    assert created
    return run.id


def stage_and_promote(run_id: uuid.UUID, batch_no: int, fetches: list[StagedFetch]) -> Any:
    with session_scope() as session:
        assert stage_batch(
            session, run_id=run_id, batch_no=batch_no, marketplace=MKT, fetches=fetches
        )
    with session_scope() as session:
        return promote_batch(session, run_id, batch_no)


def rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return list(conn.execute(sql, params).fetchall())


def test_promotion_writes_core_rows_and_quarantines_with_reasons(clean_db: str) -> None:
    a, b, c, d = sample_asins(101, 4)
    track(clean_db, [a, b, c, d])
    run_id = new_run([a, b, c, d])
    block = {"title": "Robot Check", "asin": c, "input": f"https://www.amazon.com/dp/{c}"}
    stranger = items_for(sample_asins(999, 1))[0]  # an ASIN this batch did not ask for
    result = stage_and_promote(
        run_id, 0, [fetch([*items_for([a, b]), block, "garbage", 42, stranger])]
    )

    assert (result.outcome.succeeded, result.outcome.quarantined, result.outcome.failed) == (
        2,
        1,
        1,
    )
    metrics = rows(
        clean_db,
        "SELECT asin, date, observed_at, run_id FROM core.product_metrics_daily ORDER BY asin",
    )
    assert [(m[0], m[1]) for m in metrics] == sorted([(a, date(2026, 3, 9)), (b, date(2026, 3, 9))])
    assert all(m[2] == SEEN and m[3] == run_id for m in metrics)
    assert len(rows(clean_db, "SELECT 1 FROM mart.product_latest")) == 2
    assert len(rows(clean_db, "SELECT 1 FROM core.listing_snapshots")) == 2
    events = rows(
        clean_db,
        "SELECT status, quarantine_reason FROM staging_raw.raw_events ORDER BY id",
    )
    assert [e[0] for e in events] == ["promoted", "promoted"] + ["quarantined"] * 4
    reasons = [e[1].split(":")[0] for e in events[2:]]
    assert reasons == ["block_page", "not_a_dict", "not_a_dict", "wrong_asin"]
    products = dict(
        (r[0], r[1:])
        for r in rows(
            clean_db, "SELECT asin, invalid_runs, last_valid_at, title FROM core.products"
        )
    )
    assert products[a][0] == 0 and products[a][1] == SEEN and products[a][2]
    assert products[c][0] == 1 and products[c][1] is None
    assert products[d][0] == 1
    run = rows(
        clean_db,
        "SELECT asins_succeeded, asins_quarantined, asins_failed, batches_done, cost_usd"
        " FROM core.ingest_runs",
    )[0]
    assert run == (2, 1, 1, 1, Decimal("0.0100"))


def test_replay_reproduces_the_same_core_rows_and_counters(clean_db: str) -> None:
    asins = sample_asins(202, 6)
    track(clean_db, asins)
    run_id = new_run(asins)
    block = {"title": "Robot Check", "asin": asins[5], "input": f"https://x/dp/{asins[5]}"}
    stage_and_promote(run_id, 0, [fetch([*items_for(asins[:5]), block])])
    snapshot_sql = (
        "SELECT m.*, (SELECT count(*) FROM core.listing_snapshots),"
        " (SELECT array_agg(invalid_runs ORDER BY asin) FROM core.products),"
        " (SELECT row(asins_succeeded, asins_quarantined, asins_failed, batches_done)::text"
        "  FROM core.ingest_runs) FROM core.product_metrics_daily m ORDER BY m.asin"
    )
    before = rows(clean_db, snapshot_sql)
    latest_sql = "SELECT to_jsonb(l) - 'updated_at' FROM mart.product_latest l ORDER BY asin"
    latest_before = rows(clean_db, latest_sql)

    report = service.replay_run(run_id)

    assert report.promoted == [0] and not report.skipped
    assert rows(clean_db, snapshot_sql) == before
    # updated_at is the only thing a replay may touch in the read model.
    assert rows(clean_db, latest_sql) == latest_before
    assert len(latest_before) == 5


def test_newer_observation_wins_and_older_never_overwrites(clean_db: str) -> None:
    (asin,) = sample_asins(303, 1)
    early, late = SEEN - timedelta(hours=2), SEEN  # 20:00 and 22:00 on 9 March in LA
    first = items_for([asin], early)[0]
    second = dict(items_for([asin], late)[0], price={"value": 12.34, "currency": "$"})
    run_late = new_run([asin])
    stage_and_promote(run_late, 0, [fetch([second], late)])
    run_early = new_run([asin])
    stage_and_promote(run_early, 0, [fetch([first], early)])  # a late promotion of older data

    day_rows = rows(
        clean_db, "SELECT date, buybox_price, observed_at FROM core.product_metrics_daily"
    )
    assert day_rows == [(date(2026, 3, 9), Decimal("12.34"), late)]
    assert rows(clean_db, "SELECT buybox_price, observed_at FROM mart.product_latest") == [
        (Decimal("12.34"), late)
    ]
    later = dict(second, price={"value": 11.00, "currency": "$"})
    run_later = new_run([asin])
    stage_and_promote(run_later, 0, [fetch([later], late + timedelta(minutes=30))])
    assert rows(clean_db, "SELECT buybox_price FROM core.product_metrics_daily") == [
        (Decimal("11.00"),)
    ]


def test_restaging_a_batch_replaces_the_previous_attempt(clean_db: str) -> None:
    asins = sample_asins(404, 3)
    run_id = new_run(asins)
    first = [*items_for(asins), items_for(asins[:1])[0]]  # an exact duplicate is kept once
    with session_scope() as session:
        assert stage_batch(
            session, run_id=run_id, batch_no=0, marketplace=MKT, fetches=[fetch(first)]
        )
        session.execute(text("UPDATE core.ingest_batches SET status = 'fetching'"))
    assert len(rows(clean_db, "SELECT 1 FROM staging_raw.raw_events")) == 3
    with session_scope() as session:
        stage_batch(session, run_id=run_id, batch_no=0, marketplace=MKT, fetches=[fetch(first[:2])])
    staged = rows(clean_db, "SELECT asin FROM staging_raw.raw_events ORDER BY id")
    assert [s[0] for s in staged] == asins[:2]
    with session_scope() as session:
        result = promote_batch(session, run_id, 0)
        assert result is not None
        # A promoted batch cannot be staged over any more.
        assert not stage_batch(
            session, run_id=run_id, batch_no=0, marketplace=MKT, fetches=[fetch(first)]
        )
    assert (result.outcome.succeeded, result.outcome.failed) == (2, 1)


def test_same_job_id_returns_the_existing_run(clean_db: str) -> None:
    asins = sample_asins(505, 120)
    first = new_run(asins, job="manual:fixed")
    with session_scope() as session:
        again, created = service.prepare_run(
            session,
            marketplace=MKT,
            asins=asins[:3],
            all_tracked=False,
            trigger="manual",
            job_id="manual:fixed",
        )
    assert again.id == first and not created
    runs = rows(clean_db, "SELECT asins_requested, batches_total FROM core.ingest_runs")
    assert runs == [(120, 3)]  # batch size 50
    assert rows(clean_db, "SELECT count(*) FROM core.ingest_batches") == [(3,)]


def test_dead_letter_raises_one_open_alert_and_reopens(clean_db: str) -> None:
    asins = sample_asins(606, 60)
    run_id = new_run(asins)
    letters = []
    for batch_no in (0, 1):
        with session_scope() as session:
            claim = repository.claim_batch(session, run_id, batch_no, max_attempts=5)
            assert claim is not None and claim.action == "fetch"
            letter = repository.park_dead(session, claim, task_name="t", error="HTTP 401 invalid")
            assert letter is not None
            # As the pipeline's _park does: the alert in the same transaction, via the lifecycle.
            pipeline_alerts.raise_dead_letter(session, MKT, run_id, letter, "HTTP 401 invalid")
            letters.append(letter)
    alerts = rows(
        clean_db,
        "SELECT marketplace, asin, alert_type, severity, status, occurrences FROM core.alerts",
    )
    assert alerts == [(MKT, "-", "ingest_dead_letter", "critical", "open", 2)]
    with session_scope() as session:
        assert repository.finalise_run(session, run_id) == "failed"
    assert rows(clean_db, "SELECT asins_failed, batches_done FROM core.ingest_runs") == [(60, 2)]

    with session_scope() as session:
        letter = repository.reopen_dead_batch(session, letters[0])
        assert letter is not None and letter.replayed_at is not None
    assert rows(
        clean_db, "SELECT status, attempts FROM core.ingest_batches WHERE batch_no = 0"
    ) == [("pending", 0)]
    assert rows(
        clean_db, "SELECT status, asins_failed, batches_done, finished_at FROM core.ingest_runs"
    ) == [("running", 10, 1, None)]


def test_exhausted_attempts_are_reported_by_the_claim(clean_db: str) -> None:
    run_id = new_run(sample_asins(707, 5))
    for expected in (1, 2):
        with session_scope() as session:
            claim = repository.claim_batch(session, run_id, 0, max_attempts=2)
            assert claim is not None and claim.action == "fetch" and claim.attempts == expected
    with session_scope() as session:
        claim = repository.claim_batch(session, run_id, 0, max_attempts=2)
    assert claim is not None and claim.action == "exhausted"


@pytest.mark.parametrize("bulk", ["copy", "executemany"])
def test_both_bulk_modes_write_the_same_rows(clean_db: str, bulk: str) -> None:
    asins = sample_asins(808, 10)
    run_id = new_run(asins)
    with session_scope() as session:
        stage_batch(
            session, run_id=run_id, batch_no=0, marketplace=MKT, fetches=[fetch(items_for(asins))]
        )
    with session_scope() as session:
        promote_batch(session, run_id, 0, bulk=bulk)  # type: ignore[arg-type]
    got = rows(clean_db, "SELECT asin, buybox_price IS NOT NULL FROM core.product_metrics_daily")
    assert sorted(g[0] for g in got) == sorted(asins)
    assert len(rows(clean_db, "SELECT 1 FROM mart.product_latest")) == 10


def test_finishing_a_run_calls_the_after_run_hook_exactly_once(
    clean_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from asinwatch.ingestion import flows, pipeline

    calls: list[uuid.UUID] = []
    monkeypatch.setattr(flows, "after_run_promoted", calls.append)
    asins = sample_asins(909, 3)
    run_id = new_run(asins)
    assert pipeline.finish_run(run_id) is None  # a batch is still open: not finished
    stage_and_promote(run_id, 0, [fetch(items_for(asins))])

    with ThreadPoolExecutor(4) as pool:  # four workers racing to finish the same run
        results = list(pool.map(lambda _: pipeline.finish_run(run_id), range(4)))

    assert sorted(results, key=str) == [None, None, None, "succeeded"]
    assert calls == [run_id]
    assert rows(clean_db, "SELECT status, finished_at IS NOT NULL FROM core.ingest_runs") == [
        ("succeeded", True)
    ]

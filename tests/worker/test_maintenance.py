"""Housekeeping tasks: partitions kept ahead, retention deletes only what it should."""

from __future__ import annotations

import psycopg

from asinwatch.worker.maintenance import apply_retention, ensure_partitions


def test_ensure_partitions_is_idempotent(clean_db: str) -> None:
    ensure_partitions()  # whatever was missing now exists
    assert ensure_partitions() == 0
    with psycopg.connect(clean_db) as conn:
        ahead = conn.execute(
            "SELECT to_regclass('core.product_metrics_daily_' || "
            "to_char(current_date + interval '3 months', 'YYYYMM'))"
        ).fetchone()
    assert ahead is not None and ahead[0] is not None


def test_retention_keeps_staged_and_recent_rows(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        for status, age_days in (
            ("promoted", 200),
            ("quarantined", 200),
            ("staged", 200),
            ("promoted", 1),
        ):
            conn.execute(
                "INSERT INTO staging_raw.raw_events (source, kind, run_id, batch_no, marketplace,"
                " asin, payload, content_hash, observed_at, received_at, status)"
                " VALUES ('test', 'product', gen_random_uuid(), 0, 'amazon.com', 'B0RETAIN01',"
                " '{}', md5(random()::text), now(), now() - make_interval(days => %s), %s)",
                (age_days, status),
            )
        conn.execute(
            "INSERT INTO core.idempotency_keys (principal, key, method, path, request_hash,"
            " state, expires_at) VALUES ('p', 'k1', 'POST', '/x', 'h', 'done', now() - interval"
            " '1 hour'), ('p', 'k2', 'POST', '/x', 'h', 'done', now() + interval '1 hour')"
        )
    assert apply_retention() == {"raw_events": 2, "idempotency_keys": 1}
    with psycopg.connect(clean_db) as conn:
        left = conn.execute(
            "SELECT status, received_at > now() - interval '2 days' FROM staging_raw.raw_events"
            " ORDER BY status"
        ).fetchall()
        keys = conn.execute("SELECT key FROM core.idempotency_keys").fetchall()
    assert sorted(left) == [("promoted", True), ("staged", False)]
    assert keys == [("k2",)]

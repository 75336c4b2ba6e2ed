"""The metric table is partitioned by month; no date ever fails an insert."""

from __future__ import annotations

import psycopg


def _insert(conn: psycopg.Connection, day: str) -> str:
    conn.execute(
        "INSERT INTO core.product_metrics_daily (marketplace, asin, date, observed_at) "
        "VALUES ('amazon.com', 'B0PART0001', %s, now())",
        (day,),
    )
    row = conn.execute(
        "SELECT tableoid::regclass::text FROM core.product_metrics_daily WHERE date = %s", (day,)
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_far_past_and_future_dates_are_stored(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        assert _insert(conn, "1970-01-01") == "core.product_metrics_daily_default"
        assert _insert(conn, "2999-12-31") == "core.product_metrics_daily_default"
        # A current date lands in its own monthly partition, created by the migration.
        today = conn.execute("SELECT to_char(current_date, 'YYYYMM')").fetchone()
        assert today is not None
        assert _insert(conn, "now") == f"core.product_metrics_daily_{today[0]}"


def test_new_partition_adopts_rows_from_default(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        assert _insert(conn, "2400-02-10") == "core.product_metrics_daily_default"
        created = conn.execute("SELECT core.ensure_metric_partitions('2400-02-01', 0)").fetchone()
        assert created == (1,)
        where = conn.execute(
            "SELECT tableoid::regclass::text FROM core.product_metrics_daily "
            "WHERE date = '2400-02-10'"
        ).fetchone()
        assert where == ("core.product_metrics_daily_240002",)
        # Idempotent: a second call creates nothing.
        again = conn.execute("SELECT core.ensure_metric_partitions('2400-02-01', 0)").fetchone()
        assert again == (0,)
        conn.execute("DROP TABLE core.product_metrics_daily_240002")


def test_latest_read_uses_covering_index(clean_db: str) -> None:
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT date, buybox_price, in_stock, bsr, rating, review_count "
                "FROM core.product_metrics_daily WHERE marketplace = 'amazon.com' "
                "AND asin = 'B0PART0001' ORDER BY date DESC LIMIT 1"
            ).fetchall()
        )
    assert "Index Only Scan" in plan

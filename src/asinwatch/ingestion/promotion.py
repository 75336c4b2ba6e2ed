"""Promotion: one batch's staged items -> the core tables, in ONE transaction.

Either every row of a batch is visible or none is. Inside the transaction, in this order:
lock the batch row (SELECT ... FOR UPDATE, so two deliveries never promote concurrently),
re-normalise the staged items (promotion_plan), upsert core.product_metrics_daily (a later
observation of the same day replaces an earlier one; an older one never overwrites a newer
one), upsert mart.product_latest only when newer, insert core.listing_snapshots when the
content fingerprint changed, insert core.reviews ON CONFLICT DO NOTHING, update core.products,
mark the staged items promoted/quarantined, mark the batch promoted with its counts and move
the run's counters by the difference to what this batch counted before (so a replay leaves
them unchanged).

Bulk writes: rows are COPYed into session temp tables (ON COMMIT DELETE ROWS, created once
per connection) and merged with INSERT ... SELECT ... ON CONFLICT. `bulk="executemany"` sends
the upserts row by row in one pipelined executemany instead; the bench compares the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.orm import Session

from asinwatch.ingestion.promotion_plan import (
    EVENT_COLUMNS,
    METRIC_ROW_COLUMNS,
    PRODUCT_UPDATE_COLUMNS,
    REVIEW_COLUMNS,
    SNAPSHOT_COLUMNS,
    Outcome,
    PromotionPlan,
    StagedItem,
    plan_promotion,
)
from asinwatch.ingestion.repository import raw_connection
from asinwatch.metrics.models import METRIC_COLUMNS

BulkMode = Literal["copy", "executemany"]
_JSON_COLUMNS = frozenset({"bsr_ranks", "stars_breakdown", "content"})

_TEMP_TABLES = (
    "CREATE TEMP TABLE IF NOT EXISTS _aw_metrics"
    " (LIKE core.product_metrics_daily) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS _aw_snapshots (marketplace text, asin text,"
    " content_fp text, content jsonb, observed_at timestamptz, run_id uuid)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS _aw_reviews (LIKE core.reviews) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS _aw_products (asin text, observed_at timestamptz,"
    " title text, brand text, category text, valid boolean, seen boolean)"
    " ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS _aw_events (id bigint, status text, reason text)"
    " ON COMMIT DELETE ROWS",
)

_SET_METRICS = ", ".join(f"{c} = EXCLUDED.{c}" for c in METRIC_COLUMNS)
_METRIC_COLS = ", ".join(METRIC_ROW_COLUMNS)
_METRIC_PLACEHOLDERS = ", ".join(["%s"] * len(METRIC_ROW_COLUMNS))

UPSERT_METRICS = (
    f"INSERT INTO core.product_metrics_daily AS t ({_METRIC_COLS}) {{source}}"
    f" ON CONFLICT (marketplace, asin, date) DO UPDATE SET {_SET_METRICS}"
    " WHERE t.observed_at <= EXCLUDED.observed_at"
)
UPSERT_LATEST = (
    f"INSERT INTO mart.product_latest AS t ({_METRIC_COLS}, updated_at) {{source}}"
    f" ON CONFLICT (marketplace, asin) DO UPDATE SET date = EXCLUDED.date, {_SET_METRICS},"
    " updated_at = now() WHERE t.observed_at <= EXCLUDED.observed_at"
)
INSERT_SNAPSHOTS = (
    "INSERT INTO core.listing_snapshots (marketplace, asin, content_fp, content, observed_at,"
    " run_id) SELECT s.marketplace, s.asin, s.content_fp, s.content, s.observed_at, s.run_id"
    " FROM _aw_snapshots s WHERE s.content_fp IS DISTINCT FROM ("
    "  SELECT l.content_fp FROM core.listing_snapshots l WHERE l.marketplace = s.marketplace"
    "  AND l.asin = s.asin AND l.observed_at <= s.observed_at"
    "  ORDER BY l.observed_at DESC, l.id DESC LIMIT 1)"
)
INSERT_REVIEWS = (
    f"INSERT INTO core.reviews ({', '.join(REVIEW_COLUMNS)})"
    f" SELECT {', '.join(REVIEW_COLUMNS)} FROM _aw_reviews"
    " ON CONFLICT (marketplace, review_id) DO NOTHING"
)
UPDATE_PRODUCTS = (
    "UPDATE core.products p SET"
    " title = CASE WHEN u.valid AND u.observed_at >= COALESCE(p.last_valid_at, '-infinity')"
    "   THEN COALESCE(u.title, p.title) ELSE p.title END,"
    " brand = CASE WHEN u.valid AND u.observed_at >= COALESCE(p.last_valid_at, '-infinity')"
    "   THEN COALESCE(u.brand, p.brand) ELSE p.brand END,"
    " category = CASE WHEN u.valid AND u.observed_at >= COALESCE(p.last_valid_at, '-infinity')"
    "   THEN COALESCE(u.category, p.category) ELSE p.category END,"
    " last_seen_at = CASE WHEN u.seen THEN GREATEST(p.last_seen_at, u.observed_at)"
    "   ELSE p.last_seen_at END,"
    " last_valid_at = CASE WHEN u.valid THEN GREATEST(p.last_valid_at, u.observed_at)"
    "   ELSE p.last_valid_at END,"
    " invalid_runs = CASE"
    "   WHEN u.valid AND u.observed_at >= COALESCE(p.last_valid_at, '-infinity') THEN 0"
    "   WHEN u.valid THEN p.invalid_runs"
    "   WHEN %(bump)s THEN p.invalid_runs + 1 ELSE p.invalid_runs END,"
    " updated_at = now()"
    " FROM _aw_products u WHERE p.marketplace = %(m)s AND p.asin = u.asin"
)
MARK_EVENTS = (
    "UPDATE staging_raw.raw_events e SET status = u.status, quarantine_reason = u.reason,"
    " promoted_at = now() FROM _aw_events u WHERE e.id = u.id"
)


@dataclass(frozen=True, slots=True)
class PromotionResult:
    run_id: uuid.UUID
    batch_no: int
    outcome: Outcome
    first_time: bool  # False for a replay of an already promoted batch
    metrics: int
    quarantine_codes: dict[str, int]


def _adapt(columns: Sequence[str], row: Sequence[Any]) -> list[Any]:
    return [
        Jsonb(v) if c in _JSON_COLUMNS and v is not None else v
        for c, v in zip(columns, row, strict=True)
    ]


def copy_rows(
    conn: psycopg.Connection[Any], table: str, columns: Sequence[str], rows: Iterable[Any]
) -> None:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        for row in rows:
            cp.write_row(_adapt(columns, row))


def ensure_temp_tables(conn: psycopg.Connection[Any]) -> None:
    # One round trip; a no-op once the pooled connection has them (they survive commits).
    conn.execute("; ".join(_TEMP_TABLES))


def load_staged(
    conn: psycopg.Connection[Any], run_id: uuid.UUID, batch_no: int
) -> list[StagedItem]:
    cur = conn.execute(
        "SELECT id, kind, payload, observed_at, received_at FROM staging_raw.raw_events"
        " WHERE run_id = %s AND batch_no = %s ORDER BY id",
        (run_id, batch_no),
    )
    return [StagedItem(r[0], r[1], r[2], r[3], r[4]) for r in cur.fetchall()]


def write_plan(
    conn: psycopg.Connection[Any],
    plan: PromotionPlan,
    *,
    marketplace: str,
    bump_invalid: bool,
    bulk: BulkMode = "copy",
) -> None:
    """Write a plan's rows with the connection's open transaction (the caller commits)."""
    ensure_temp_tables(conn)
    if plan.metrics:
        if bulk == "executemany":
            rows = [_adapt(METRIC_ROW_COLUMNS, r) for r in plan.metrics]
            values = f"VALUES ({_METRIC_PLACEHOLDERS})"
            with conn.cursor() as cur:
                cur.executemany(UPSERT_METRICS.format(source=values), rows)
                latest = UPSERT_LATEST.format(source=f"VALUES ({_METRIC_PLACEHOLDERS}, now())")
                cur.executemany(latest, rows)
        else:
            copy_rows(conn, "_aw_metrics", METRIC_ROW_COLUMNS, plan.metrics)
            select = f"SELECT {_METRIC_COLS} FROM _aw_metrics"
            conn.execute(UPSERT_METRICS.format(source=select))
            conn.execute(
                UPSERT_LATEST.format(source=f"SELECT {_METRIC_COLS}, now() FROM _aw_metrics")
            )
        copy_rows(conn, "_aw_snapshots", SNAPSHOT_COLUMNS, plan.snapshots)
        conn.execute(INSERT_SNAPSHOTS)
    if plan.reviews:
        copy_rows(conn, "_aw_reviews", REVIEW_COLUMNS, plan.reviews)
        conn.execute(INSERT_REVIEWS)
    if plan.products:
        copy_rows(conn, "_aw_products", PRODUCT_UPDATE_COLUMNS, plan.products)
        conn.execute(UPDATE_PRODUCTS, {"bump": bump_invalid, "m": marketplace})
    if plan.events:
        copy_rows(conn, "_aw_events", EVENT_COLUMNS, plan.events)
        conn.execute(MARK_EVENTS)


def promote_batch(
    session: Session, run_id: uuid.UUID, batch_no: int, *, bulk: BulkMode = "copy"
) -> PromotionResult | None:
    """Promote one batch from staging (the caller's session commits: one transaction).

    Works for a batch that is `fetched` (normal path), `promoted` (replay: same rows again,
    counters unchanged) or `dead` with staged items (replay after a failed promotion).
    Returns None when there is nothing to promote.
    """
    conn = raw_connection(session)
    row = conn.execute(
        "SELECT b.status, b.asins, b.succeeded, b.quarantined, b.failed, r.marketplace, r.kind"
        " FROM core.ingest_batches b JOIN core.ingest_runs r ON r.id = b.run_id"
        " WHERE b.run_id = %s AND b.batch_no = %s FOR UPDATE OF b",
        (run_id, batch_no),
    ).fetchone()
    if row is None:
        return None
    status, asins, old_ok, old_q, old_failed, marketplace, kind = row
    if status not in ("fetched", "promoted", "dead"):
        return None
    items = load_staged(conn, run_id, batch_no)
    if status == "dead" and not items:
        return None
    plan = plan_promotion(
        items,
        marketplace=marketplace,
        batch_asins=asins,
        run_id=run_id,
        run_kind=kind,
        now=datetime.now(UTC),
    )
    first_time = status != "promoted"
    write_plan(conn, plan, marketplace=marketplace, bump_invalid=first_time, bulk=bulk)
    if status == "fetched":
        old_ok = old_q = old_failed = 0
    out = plan.outcome
    conn.execute(
        "UPDATE core.ingest_batches SET status = 'promoted', promoted_at = now(), error = NULL,"
        " succeeded = %s, quarantined = %s, failed = %s WHERE run_id = %s AND batch_no = %s",
        (out.succeeded, out.quarantined, out.failed, run_id, batch_no),
    )
    conn.execute(
        "UPDATE core.ingest_runs SET asins_succeeded = asins_succeeded + %s,"
        " asins_quarantined = asins_quarantined + %s, asins_failed = asins_failed + %s,"
        " batches_done = batches_done + %s WHERE id = %s",
        (
            out.succeeded - old_ok,
            out.quarantined - old_q,
            out.failed - old_failed,
            1 if status == "fetched" else 0,
            run_id,
        ),
    )
    return PromotionResult(
        run_id, batch_no, out, first_time, len(plan.metrics), dict(plan.quarantine_codes)
    )

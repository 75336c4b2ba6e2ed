"""Initial schema: core, staging_raw and mart, with monthly metric partitions.

initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29 17:34:47.868473
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PARTITION_FUNCTION = """
CREATE OR REPLACE FUNCTION core.ensure_metric_partitions(p_from date, p_months int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  m date := date_trunc('month', p_from)::date;
  stop date := (date_trunc('month', p_from) + make_interval(months => p_months + 1))::date;
  part text;
  created int := 0;
BEGIN
  -- One caller at a time: two workers creating the same partition would collide.
  PERFORM pg_advisory_xact_lock(hashtext('asinwatch.metric_partitions'));
  CREATE TEMP TABLE IF NOT EXISTS _aw_moved (LIKE core.product_metrics_daily) ON COMMIT DROP;
  WHILE m < stop LOOP
    part := 'product_metrics_daily_' || to_char(m, 'YYYYMM');
    IF to_regclass('core.' || part) IS NULL THEN
      -- Rows the default partition caught for this month move into the new partition,
      -- otherwise PostgreSQL refuses to create it.
      WITH moved AS (
        DELETE FROM core.product_metrics_daily_default
        WHERE date >= m AND date < (m + interval '1 month')::date
        RETURNING *
      )
      INSERT INTO _aw_moved SELECT * FROM moved;
      EXECUTE format(
        'CREATE TABLE core.%I PARTITION OF core.product_metrics_daily FOR VALUES FROM (%L) TO (%L)',
        part, m, (m + interval '1 month')::date);
      INSERT INTO core.product_metrics_daily SELECT * FROM _aw_moved;
      TRUNCATE _aw_moved;
      created := created + 1;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
  RETURN created;
END $$;
"""


def upgrade() -> None:
    for schema in ("core", "staging_raw", "mart"):
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    op.create_table(
        "alert_thresholds",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("alert_type", sa.String(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_thresholds")),
        sa.UniqueConstraint(
            "marketplace",
            "asin",
            "alert_type",
            name=op.f("uq_alert_thresholds_marketplace_asin_alert_type"),
        ),
        schema="core",
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("alert_type", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_day", sa.Date(), nullable=True),
        sa.Column("notified_today", sa.Integer(), server_default="0", nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "severity IN ('info','warning','critical')", name=op.f("ck_alerts_severity")
        ),
        sa.CheckConstraint(
            "status IN ('open','acknowledged','resolved')", name=op.f("ck_alerts_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        schema="core",
    )
    op.create_index(
        "ix_alerts_product",
        "alerts",
        ["marketplace", "asin", sa.literal_column("opened_at DESC")],
        unique=False,
        schema="core",
    )
    op.create_index(
        "ix_alerts_status_last_seen",
        "alerts",
        ["status", sa.literal_column("last_seen_at DESC")],
        unique=False,
        schema="core",
    )
    op.create_index(
        "uq_alerts_one_open",
        "alerts",
        ["marketplace", "asin", "alert_type"],
        unique=True,
        schema="core",
        postgresql_where=sa.text("status <> 'resolved'"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("task_name", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("batch_no", sa.Integer(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        schema="core",
    )
    op.create_index(
        "ix_dead_letters_open",
        "dead_letters",
        ["replayed_at", "created_at"],
        unique=False,
        schema="core",
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response_body", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('in_flight','done')", name=op.f("ck_idempotency_keys_state")),
        sa.PrimaryKeyConstraint("principal", "key", name=op.f("pk_idempotency_keys")),
        schema="core",
    )
    op.create_index(
        "ix_idempotency_keys_expires_at",
        "idempotency_keys",
        ["expires_at"],
        unique=False,
        schema="core",
    )
    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("asins_requested", sa.Integer(), nullable=False),
        sa.Column("asins_succeeded", sa.Integer(), nullable=False),
        sa.Column("asins_quarantined", sa.Integer(), nullable=False),
        sa.Column("asins_failed", sa.Integer(), nullable=False),
        sa.Column("batches_total", sa.Integer(), nullable=False),
        sa.Column("batches_done", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued','running','succeeded','partial','failed','cancelled')",
            name=op.f("ck_ingest_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_runs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_ingest_runs_job_id")),
        schema="core",
    )
    op.create_index(
        "ix_ingest_runs_created_at",
        "ingest_runs",
        [sa.literal_column("created_at DESC")],
        unique=False,
        schema="core",
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued','running','succeeded','failed')", name=op.f("ck_jobs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        schema="core",
    )
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"], unique=False, schema="core")
    op.create_table(
        "listing_snapshots",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("content_fp", sa.String(length=64), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listing_snapshots")),
        schema="core",
    )
    op.create_index(
        "ix_listing_snapshots_product_seen",
        "listing_snapshots",
        ["marketplace", "asin", "observed_at"],
        unique=False,
        schema="core",
    )
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("alert_types", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("min_severity", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('webhook','apprise')", name=op.f("ck_notification_channels_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_channels")),
        sa.UniqueConstraint("name", name=op.f("uq_notification_channels_name")),
        schema="core",
    )
    op.create_table(
        "product_metrics_daily",
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("buybox_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("list_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("shipping_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("lowest_offer_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("in_stock", sa.Boolean(), nullable=True),
        sa.Column("availability_text", sa.Text(), nullable=True),
        sa.Column("buybox_seller_id", sa.Text(), nullable=True),
        sa.Column("buybox_seller_name", sa.Text(), nullable=True),
        sa.Column("offer_count", sa.Integer(), nullable=True),
        sa.Column("bsr", sa.Integer(), nullable=True),
        sa.Column("bsr_category", sa.Text(), nullable=True),
        sa.Column("bsr_ranks", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("rating", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("review_count", sa.Integer(), nullable=True),
        sa.Column("stars_breakdown", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("monthly_purchase_volume", sa.Integer(), nullable=True),
        sa.Column("title_fp", sa.String(length=16), nullable=True),
        sa.Column("bullets_fp", sa.String(length=16), nullable=True),
        sa.Column("description_fp", sa.String(length=16), nullable=True),
        sa.Column("images_fp", sa.String(length=16), nullable=True),
        sa.Column("aplus_fp", sa.String(length=16), nullable=True),
        sa.Column("variants_fp", sa.String(length=16), nullable=True),
        sa.Column("image_count", sa.SmallInteger(), nullable=True),
        sa.Column("bullet_count", sa.SmallInteger(), nullable=True),
        sa.Column("has_aplus", sa.Boolean(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint(
            "marketplace", "asin", "date", name=op.f("pk_product_metrics_daily")
        ),
        schema="core",
        postgresql_partition_by="RANGE (date)",
    )
    op.create_index(
        "ix_product_metrics_daily_latest",
        "product_metrics_daily",
        ["marketplace", "asin", "date"],
        unique=False,
        schema="core",
        postgresql_include=["buybox_price", "in_stock", "bsr", "rating", "review_count"],
    )
    op.create_table(
        "products",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("brand", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("is_own", sa.Boolean(), nullable=False),
        sa.Column("tracking_state", sa.String(length=16), nullable=False),
        sa.Column(
            "seller_allowlist", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_valid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invalid_runs", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "extra", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("asin ~ '^[0-9A-Z]{10}$'", name=op.f("ck_products_asin_format")),
        sa.CheckConstraint(
            "tracking_state IN ('active', 'paused', 'untracked')",
            name=op.f("ck_products_tracking_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("marketplace", "asin", name=op.f("uq_products_marketplace_asin")),
        schema="core",
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ruleset_version", sa.String(length=32), nullable=False),
        sa.Column("inputs_hash", sa.String(length=64), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
        sa.UniqueConstraint(
            "marketplace",
            "asin",
            "version",
            name=op.f("uq_recommendations_marketplace_asin_version"),
        ),
        schema="core",
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("inputs_hash", sa.String(length=64), nullable=False),
        sa.Column("body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("markdown_uri", sa.Text(), nullable=True),
        sa.Column("json_uri", sa.Text(), nullable=True),
        sa.Column("narrative", sa.Text(), nullable=True),
        sa.Column("llm_cost_usd", sa.Numeric(precision=10, scale=6), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint(
            "marketplace",
            "asin",
            "kind",
            "version",
            name=op.f("uq_reports_marketplace_asin_kind_version"),
        ),
        schema="core",
    )
    op.create_table(
        "reviews",
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("review_id", sa.Text(), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("review_date", sa.Date(), nullable=True),
        sa.Column("is_verified", sa.Boolean(), nullable=True),
        sa.Column("is_vine", sa.Boolean(), nullable=True),
        sa.Column("variant", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("marketplace", "review_id", name=op.f("pk_reviews")),
        schema="core",
    )
    op.create_index(
        "ix_reviews_product_date",
        "reviews",
        ["marketplace", "asin", "review_date"],
        unique=False,
        schema="core",
    )
    op.create_table(
        "product_kpis_daily",
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("kpis", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("marketplace", "asin", "date", name=op.f("pk_product_kpis_daily")),
        schema="mart",
    )
    op.create_table(
        "product_latest",
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("buybox_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("list_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("shipping_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("lowest_offer_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("in_stock", sa.Boolean(), nullable=True),
        sa.Column("availability_text", sa.Text(), nullable=True),
        sa.Column("buybox_seller_id", sa.Text(), nullable=True),
        sa.Column("buybox_seller_name", sa.Text(), nullable=True),
        sa.Column("offer_count", sa.Integer(), nullable=True),
        sa.Column("bsr", sa.Integer(), nullable=True),
        sa.Column("bsr_category", sa.Text(), nullable=True),
        sa.Column("bsr_ranks", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("rating", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("review_count", sa.Integer(), nullable=True),
        sa.Column("stars_breakdown", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("monthly_purchase_volume", sa.Integer(), nullable=True),
        sa.Column("title_fp", sa.String(length=16), nullable=True),
        sa.Column("bullets_fp", sa.String(length=16), nullable=True),
        sa.Column("description_fp", sa.String(length=16), nullable=True),
        sa.Column("images_fp", sa.String(length=16), nullable=True),
        sa.Column("aplus_fp", sa.String(length=16), nullable=True),
        sa.Column("variants_fp", sa.String(length=16), nullable=True),
        sa.Column("image_count", sa.SmallInteger(), nullable=True),
        sa.Column("bullet_count", sa.SmallInteger(), nullable=True),
        sa.Column("has_aplus", sa.Boolean(), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("marketplace", "asin", name=op.f("pk_product_latest")),
        schema="mart",
    )
    op.create_table(
        "raw_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("upstream_run_id", sa.Text(), nullable=True),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=32), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("quarantine_reason", sa.Text(), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('staged','promoted','quarantined')", name=op.f("ck_raw_events_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_events")),
        sa.UniqueConstraint(
            "run_id",
            "batch_no",
            "kind",
            "content_hash",
            name=op.f("uq_raw_events_run_id_batch_no_kind_content_hash"),
        ),
        schema="staging_raw",
    )
    op.create_index(
        "ix_raw_events_product",
        "raw_events",
        ["marketplace", "asin", "observed_at"],
        unique=False,
        schema="staging_raw",
    )
    op.create_index(
        "ix_raw_events_received_at",
        "raw_events",
        ["received_at"],
        unique=False,
        schema="staging_raw",
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending','delivered','failed')", name=op.f("ck_alert_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["core.alerts.id"],
            name=op.f("fk_alert_deliveries_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["core.notification_channels.id"],
            name=op.f("fk_alert_deliveries_channel_id_notification_channels"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
        sa.UniqueConstraint(
            "alert_id",
            "channel_id",
            "event_key",
            name=op.f("uq_alert_deliveries_alert_id_channel_id_event_key"),
        ),
        schema="core",
    )
    op.create_index(
        "ix_alert_deliveries_due",
        "alert_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
        schema="core",
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["core.alerts.id"],
            name=op.f("fk_alert_events_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
        schema="core",
    )
    op.create_index(
        "ix_alert_events_alert", "alert_events", ["alert_id", "at"], unique=False, schema="core"
    )
    op.create_table(
        "competitor_links",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("marketplace", sa.String(length=32), nullable=False),
        sa.Column("asin", sa.String(length=10), nullable=False),
        sa.Column("competitor_asin", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("asin <> competitor_asin", name=op.f("ck_competitor_links_not_self")),
        sa.ForeignKeyConstraint(
            ["marketplace", "asin"],
            ["core.products.marketplace", "core.products.asin"],
            name=op.f("fk_competitor_links_marketplace_asin_products"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["marketplace", "competitor_asin"],
            ["core.products.marketplace", "core.products.asin"],
            name=op.f("fk_competitor_links_marketplace_competitor_asin_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_competitor_links")),
        sa.UniqueConstraint(
            "marketplace",
            "asin",
            "competitor_asin",
            name=op.f("uq_competitor_links_marketplace_asin_competitor_asin"),
        ),
        schema="core",
    )
    op.create_table(
        "ingest_batches",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("batch_no", sa.Integer(), nullable=False),
        sa.Column("asins", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "upstream_run_ids", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=12, scale=4), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending','fetching','fetched','promoted','failed','dead')",
            name=op.f("ck_ingest_batches_status"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["core.ingest_runs.id"],
            name=op.f("fk_ingest_batches_run_id_ingest_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_batches")),
        sa.UniqueConstraint("run_id", "batch_no", name=op.f("uq_ingest_batches_run_id_batch_no")),
        schema="core",
    )
    # A default partition catches any date without its own partition: an insert never fails.
    op.execute(
        "CREATE TABLE core.product_metrics_daily_default "
        "PARTITION OF core.product_metrics_daily DEFAULT"
    )
    op.execute(PARTITION_FUNCTION)
    # The last 12 months and 3 ahead; `asinwatch migrate` and a daily task keep it ahead.
    op.execute(
        "SELECT core.ensure_metric_partitions((current_date - interval '12 months')::date, 15)"
    )


def downgrade() -> None:
    op.drop_table("ingest_batches", schema="core")
    op.drop_table("competitor_links", schema="core")
    op.drop_index("ix_alert_events_alert", table_name="alert_events", schema="core")
    op.drop_table("alert_events", schema="core")
    op.drop_index("ix_alert_deliveries_due", table_name="alert_deliveries", schema="core")
    op.drop_table("alert_deliveries", schema="core")
    op.drop_index("ix_raw_events_received_at", table_name="raw_events", schema="staging_raw")
    op.drop_index("ix_raw_events_product", table_name="raw_events", schema="staging_raw")
    op.drop_table("raw_events", schema="staging_raw")
    op.drop_table("product_latest", schema="mart")
    op.drop_table("product_kpis_daily", schema="mart")
    op.drop_index("ix_reviews_product_date", table_name="reviews", schema="core")
    op.drop_table("reviews", schema="core")
    op.drop_table("reports", schema="core")
    op.drop_table("recommendations", schema="core")
    op.drop_table("products", schema="core")
    op.drop_index(
        "ix_product_metrics_daily_latest",
        table_name="product_metrics_daily",
        schema="core",
        postgresql_include=["buybox_price", "in_stock", "bsr", "rating", "review_count"],
    )
    op.drop_table("product_metrics_daily", schema="core")
    op.drop_table("notification_channels", schema="core")
    op.drop_index(
        "ix_listing_snapshots_product_seen", table_name="listing_snapshots", schema="core"
    )
    op.drop_table("listing_snapshots", schema="core")
    op.drop_index("ix_jobs_created_at", table_name="jobs", schema="core")
    op.drop_table("jobs", schema="core")
    op.drop_index("ix_ingest_runs_created_at", table_name="ingest_runs", schema="core")
    op.drop_table("ingest_runs", schema="core")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys", schema="core")
    op.drop_table("idempotency_keys", schema="core")
    op.drop_index("ix_dead_letters_open", table_name="dead_letters", schema="core")
    op.drop_table("dead_letters", schema="core")
    op.drop_index(
        "uq_alerts_one_open",
        table_name="alerts",
        schema="core",
        postgresql_where=sa.text("status <> 'resolved'"),
    )
    op.drop_index("ix_alerts_status_last_seen", table_name="alerts", schema="core")
    op.drop_index("ix_alerts_product", table_name="alerts", schema="core")
    op.drop_table("alerts", schema="core")
    op.drop_table("alert_thresholds", schema="core")
    op.execute("DROP FUNCTION IF EXISTS core.ensure_metric_partitions(date, int)")
    for schema in ("mart", "staging_raw", "core"):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

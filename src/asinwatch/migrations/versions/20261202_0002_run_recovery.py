"""Run recovery: batch heartbeats and the analytics chain's progress per finished run.

run recovery

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # When a message for the batch was last sent, and when a worker last showed it is alive
    # on it: the reconciler judges a batch lost from these (never from the broker).
    op.add_column(
        "ingest_batches",
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        schema="core",
    )
    op.add_column(
        "ingest_batches",
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        schema="core",
    )
    op.create_index(
        "ix_ingest_batches_open",
        "ingest_batches",
        ["run_id"],
        schema="core",
        postgresql_where=sa.text("status NOT IN ('promoted','dead')"),
    )
    op.create_index(
        "ix_ingest_runs_open",
        "ingest_runs",
        ["created_at"],
        schema="core",
        postgresql_where=sa.text("status IN ('queued','running')"),
    )
    op.create_table(
        "ingest_run_analytics",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(length=24), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runs", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["core.ingest_runs.id"],
            name=op.f("fk_ingest_run_analytics_run_id_ingest_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "step", name=op.f("pk_ingest_run_analytics")),
        schema="core",
    )
    op.create_index(
        "ix_ingest_run_analytics_open",
        "ingest_run_analytics",
        ["run_id"],
        schema="core",
        postgresql_where=sa.text("done_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_run_analytics_open", table_name="ingest_run_analytics", schema="core")
    op.drop_table("ingest_run_analytics", schema="core")
    op.drop_index("ix_ingest_runs_open", table_name="ingest_runs", schema="core")
    op.drop_index("ix_ingest_batches_open", table_name="ingest_batches", schema="core")
    op.drop_column("ingest_batches", "heartbeat_at", schema="core")
    op.drop_column("ingest_batches", "enqueued_at", schema="core")

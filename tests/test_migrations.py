"""Migrations go down to base and up to head cleanly, on a database of their own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from asinwatch.migrations import runner
from tests.conftest import ADMIN_URL


@pytest.fixture
def scratch_db() -> Iterator[str]:
    name = f"aw_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || tablename FROM pg_tables "
            "WHERE schemaname IN ('core', 'staging_raw', 'mart')"
        ).fetchall()
    return {r[0] for r in rows}


def test_down_to_base_and_up_to_head(scratch_db: str) -> None:
    runner.upgrade(scratch_db)
    assert runner.current_revision(scratch_db) == runner.head_revision()
    tables = _tables(scratch_db)
    assert {"core.products", "core.product_metrics_daily", "staging_raw.raw_events"} <= tables
    assert "core.product_metrics_daily_default" in tables

    runner.downgrade(scratch_db, "base")
    assert runner.current_revision(scratch_db) is None
    assert _tables(scratch_db) == set()

    runner.upgrade(scratch_db)
    assert runner.current_revision(scratch_db) == runner.head_revision()
    assert _tables(scratch_db) == tables


def test_naming_convention_applied(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                "WHERE n.nspname = 'core'"
            ).fetchall()
        }
    assert "pk_products" in names
    assert "uq_products_marketplace_asin" in names
    assert "ck_products_tracking_state" in names


def test_models_match_migrations(db_url: str) -> None:
    """Autogenerate finds nothing to do: the models and the migration chain agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    from asinwatch.kit.db import database_url
    from asinwatch.models import Base

    def include(name: str | None, type_: str, _parents: object) -> bool:
        if type_ == "schema":
            return name in ("core", "staging_raw", "mart")
        # Monthly partitions and their indexes are made by SQL, not by the models.
        return not (name or "").startswith("product_metrics_daily_")

    engine = create_engine(database_url(db_url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_schemas": True, "include_name": include}
        )
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []

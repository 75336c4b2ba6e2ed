"""Run Alembic programmatically: `asinwatch migrate`, `asinwatch up` and the tests use it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool, text

from asinwatch.kit.db import database_url

_HERE = Path(__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE))
    cfg.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(
        alembic_config("postgresql://x@localhost/x")
    ).get_current_head()


def current_revision(url: str | None = None) -> str | None:
    engine = create_engine(database_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(
                conn, opts={"version_table_schema": "public"}
            ).get_current_revision()
    finally:
        engine.dispose()


def ensure_metric_partitions(url: str | None = None, months_ahead: int = 3) -> int:
    """Create the monthly metric partitions from this month to `months_ahead` ahead."""
    engine = create_engine(database_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            created = conn.execute(
                text("SELECT core.ensure_metric_partitions(current_date, :n)"), {"n": months_ahead}
            ).scalar_one()
            return int(created)
    finally:
        engine.dispose()

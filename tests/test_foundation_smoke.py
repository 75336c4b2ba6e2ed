"""The run's database is migrated and partitioned; Redis answers under the run's prefix."""

import psycopg


def test_database_migrated(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rev = conn.execute("SELECT version_num FROM public.alembic_version").fetchone()
        assert rev is not None and rev[0] == "0002"

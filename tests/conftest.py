"""Shared test fixtures: each run (and each xdist worker) gets its own PostgreSQL database and
its own Redis key prefix, created here and removed at the end. Nothing else is touched.

The environment is set at import time, before any asinwatch module reads settings, so
subprocesses started by tests (Celery workers, the API, the simulator) inherit it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql

ADMIN_URL = os.environ.get(
    "ASINWATCH_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ASINWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_RUN_ID = os.environ.setdefault("ASINWATCH_TEST_RUN_ID", uuid.uuid4().hex[:10])
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw")
DB_NAME = f"aw_test_{_RUN_ID}_{_WORKER}"
DB_URL = ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
KEY_PREFIX = f"awtest:{_RUN_ID}:{_WORKER}:"

os.environ.update(
    {
        "ASINWATCH_ENV": "test",
        "ASINWATCH_DATABASE__URL": DB_URL,
        "ASINWATCH_REDIS__URL": REDIS_URL,
        "ASINWATCH_REDIS__KEY_PREFIX": KEY_PREFIX,
        "ASINWATCH_LOG__JSON_FORMAT": "true",
        "ASINWATCH_DATA_DIR": f"/tmp/asinwatch-test-{_RUN_ID}-{_WORKER}",
    }
)

from asinwatch.config import reset_settings_cache  # noqa: E402

reset_settings_cache()

# Tables a test may fill; truncated by the `clean_db` fixture.
_DATA_TABLES = (
    "core.alert_deliveries, core.alert_events, core.alerts, core.alert_thresholds, "
    "core.notification_channels, core.competitor_links, core.product_metrics_daily, "
    "core.listing_snapshots, core.reviews, core.reports, core.recommendations, core.jobs, "
    "core.idempotency_keys, core.dead_letters, core.ingest_batches, core.ingest_runs, "
    "staging_raw.raw_events, mart.product_latest, mart.product_kpis_daily, core.products"
)


def _drop_database() -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (DB_NAME,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DB_NAME)))


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """A fresh database for this run/worker, migrated to head."""
    from asinwatch.kit.db import dispose_sync_engines
    from asinwatch.migrations import runner

    _drop_database()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    runner.upgrade(DB_URL)
    yield DB_URL
    dispose_sync_engines()
    _drop_database()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield REDIS_URL
    _delete_prefix(client, KEY_PREFIX)
    client.close()


@pytest.fixture(scope="session")
def key_prefix() -> str:
    return KEY_PREFIX


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A sync Redis client; every key this test made under the run's prefix is removed after."""
    client = redis.Redis.from_url(redis_url)
    yield client
    _delete_prefix(client, KEY_PREFIX)
    client.close()


@pytest.fixture
def clean_db(db_url: str) -> Iterator[str]:
    """The run's database, emptied of data before the test."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {_DATA_TABLES} RESTART IDENTITY CASCADE")
    yield db_url


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings re-read per test, so a test's monkeypatched environment takes effect."""
    reset_settings_cache()
    yield
    reset_settings_cache()

"""Fixtures of the pipeline tests: the simulator in-process and real Celery worker processes.

The worker is `python -m asinwatch worker` in its own process group, with the environment of
tests/conftest.py (own database, own Redis prefix, hence its own broker queues) plus the
simulator's URL and token. Module scope: a worker lives only while its module's tests run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from asinwatch.config import reset_settings_cache
from asinwatch.simulator import SimConfig, SimulatorServer

FINAL = ("succeeded", "partial", "failed", "cancelled")

# Fast retries and a generous global rate: these tests check correctness, not throttling.
PIPELINE_ENV = {
    "ASINWATCH_APIFY__BACKOFF_BASE_S": "0.02",
    "ASINWATCH_APIFY__BACKOFF_MAX_S": "0.3",
    "ASINWATCH_APIFY__MAX_RETRIES": "8",
    "ASINWATCH_APIFY__POLL_WAIT_S": "2",
    "ASINWATCH_APIFY__MAX_REVIEWS_PER_ASIN": "2",
    "ASINWATCH_INGEST__BATCH_SIZE": "50",
    "ASINWATCH_INGEST__RATE_LIMIT_PER_S": "2000",
    "ASINWATCH_INGEST__RATE_LIMIT_BURST": "200",
    "ASINWATCH_INGEST__MAX_CONCURRENT_BATCHES": "8",
    "ASINWATCH_BROKER__TASK_MAX_ATTEMPTS": "5",
    # The analytics chain a finished run starts is tested by its own module.
    "ASINWATCH_INGEST__AFTER_RUN_HOOK": "false",
}


class WorkerProcess:
    """One `asinwatch worker` process group, started and ended by its own id."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(
        self, concurrency: int = 2, timeout_s: float = 60, env: dict[str, str] | None = None
    ) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "asinwatch", "worker", "--concurrency", str(concurrency)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ) if env is None else env,
            start_new_session=True,  # its own process group: the pool children die with it
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while b" ready." not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once (no shutdown, no acks)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, grace_s: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    reset_settings_cache()
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    reset_settings_cache()


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    srv = SimulatorServer(SimConfig(seed=5, block_rate=0.0)).start()
    saved = _set_env(
        {
            "ASINWATCH_APIFY__BASE_URL": srv.base_url,
            "ASINWATCH_APIFY__ALLOWED_HOSTS": '["127.0.0.1"]',
            "ASINWATCH_APIFY__TOKEN": srv.token,
            **PIPELINE_ENV,
        }
    )
    yield srv
    _restore_env(saved)
    srv.stop()


@pytest.fixture(scope="module")
def pipeline_db(db_url: str, redis_url: str, simulator: SimulatorServer) -> str:
    """The run's database with the simulator configured (and the broker queue empty)."""
    from asinwatch.worker.celery_app import celery_app

    celery_app.control.purge()
    return db_url


@pytest.fixture(scope="module")
def worker_factory(pipeline_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[WorkerProcess] = []
    log_dir = tmp_path_factory.mktemp("workers")

    def start(concurrency: int = 2) -> WorkerProcess:
        worker = WorkerProcess(log_dir).start(concurrency)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def celery_worker(worker_factory: Any) -> WorkerProcess:
    worker: WorkerProcess = worker_factory()
    return worker


def wait_idle(timeout_s: float = 60) -> None:
    """Wait until no worker runs or holds a task and the queue is empty (twice in a row).

    A finished run enqueues the analytics chain (flows.after_run_promoted); the next test
    must not truncate tables under it.
    """
    from asinwatch.config import get_settings
    from asinwatch.kit.redis_client import sync_redis
    from asinwatch.worker.celery_app import celery_app

    queue = get_settings().redis.key_prefix + "celery:celery"
    client = sync_redis()
    deadline = time.monotonic() + timeout_s
    quiet = 0
    try:
        while quiet < 2 and time.monotonic() < deadline:
            inspect = celery_app.control.inspect(timeout=0.5)
            busy = [
                task
                for reply in (inspect.active() or {}, inspect.reserved() or {})
                for tasks in reply.values()
                for task in tasks
            ]
            quiet = quiet + 1 if not busy and not client.llen(queue) else 0
            time.sleep(0.1)
    finally:
        client.close()


def truncate(db_url: str, *, worker_running: bool = True) -> None:
    from tests.conftest import _DATA_TABLES

    if worker_running:
        wait_idle()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {_DATA_TABLES} RESTART IDENTITY CASCADE")


def track(db_url: str, marketplace: str, asins: list[str]) -> None:
    with (
        psycopg.connect(db_url) as conn,
        conn.cursor() as cur,
        cur.copy("COPY core.products (marketplace, asin, is_own, tracking_state) FROM STDIN") as cp,
    ):
        for asin in asins:
            cp.write_row((marketplace, asin, True, "active"))


def wait_for_run(db_url: str, run_id: uuid.UUID, timeout_s: float = 150) -> tuple[Any, ...]:
    """Poll until the run is final (the timeout only guards against a hang)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(db_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT status, asins_requested, asins_succeeded, asins_quarantined,"
                " asins_failed, batches_total, batches_done, cost_usd"
                " FROM core.ingest_runs WHERE id = %s",
                (run_id,),
            ).fetchone()
            assert row is not None
            if row[0] in FINAL:
                return tuple(row)
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {row} after {timeout_s}s")
            time.sleep(0.2)

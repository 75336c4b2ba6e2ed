"""Recovery drills with real parts: the tests of test_recovery.py and bench/drills.py run these.

Each drill starts what it breaks on its own port (tests/outage_servers.py), breaks it mid-run,
waits (polling, generous deadlines) until the system recovered by itself and returns a
`DrillResult`: ASINs lost, rows duplicated and the seconds from the fault to recovery. The
caller asserts on it (tests) or tabulates it (bench). Nothing here needs an operator.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from asinwatch.simulator import SimulatorServer, sample_asins
from tests.ingestion.conftest import FINAL, WorkerProcess, track
from tests.outage_servers import PrivatePostgres, PrivateRedis

MKT = "amazon.com"

# Short clocks so a drill recovers in seconds (the defaults are minutes-safe for production).
RECOVERY_ENV = {
    "ASINWATCH_RECOVERY__RECONCILE_INTERVAL_S": "5",
    "ASINWATCH_RECOVERY__STALE_AFTER_S": "10",
    "ASINWATCH_RECOVERY__HEARTBEAT_S": "1",
    "ASINWATCH_RECOVERY__SLOT_LEASE_S": "5",
    "ASINWATCH_RECOVERY__OUTAGE_RETRY_S": "60",
    "ASINWATCH_RECOVERY__BEAT_LOCK_TIMEOUT_S": "10",
    "ASINWATCH_RECOVERY__BEAT_LOOP_S": "2",
}

DATA_TABLES = (
    "core.ingest_run_analytics, core.dead_letters, core.ingest_batches, core.ingest_runs,"
    " staging_raw.raw_events, core.product_metrics_daily, core.listing_snapshots,"
    " core.reviews, mart.product_latest, mart.product_kpis_daily, core.alert_events,"
    " core.alerts, core.reports, core.recommendations, core.products"
)


@dataclass(frozen=True, slots=True)
class DrillResult:
    drill: str
    lost: int
    duplicated: int
    recover_s: float
    detail: str = ""
    resent: int = 0  # reconciler sweeps that re-sent lost work (worker logs)


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            got = predicate()
        except (psycopg.OperationalError, redis.exceptions.ConnectionError):
            got = None  # the server is being restarted: ask again
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def query(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True, connect_timeout=3) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def one(db_url: str, sql: str, *params: Any) -> Any:
    return query(db_url, sql, *params)[0][0]


def reset(db_url: str, key_prefix: str, redis_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {DATA_TABLES} RESTART IDENTITY CASCADE")
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=key_prefix + "*", count=1000):
        client.delete(key)
    client.close()


class Beat:
    """One `asinwatch beat` process group."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asinwatch", "beat"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=log_path.parent,
                start_new_session=True,
            )

    @property
    def origin(self) -> str:
        return f"gen{self.proc.pid}@{os.uname().nodename}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def processes() -> Iterator[list[WorkerProcess | Beat]]:
    """Every worker / beat a drill starts is stopped at the end, whatever happened."""
    started: list[WorkerProcess | Beat] = []
    try:
        yield started
    finally:
        for p in started:
            p.stop()


def start_run(env: dict[str, str], job_id: str) -> uuid.UUID:
    """`asinwatch ingest run --all` as an operator would (its own process, the drill's env)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "asinwatch",
            "ingest",
            "run",
            "--all",
            "-m",
            MKT,
            "--job-id",
            job_id,
        ],
        # A drill's run (600 ASINs) is bigger than ingest.admin_run_size: its operator raised it.
        env={**env, "ASINWATCH_INGEST__ADMIN_RUN_SIZE": "100000"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"run ([0-9a-f-]{36}) ", out)
    assert match, out
    return uuid.UUID(match.group(1))


def batch_counts(db_url: str, run_id: uuid.UUID) -> dict[str, int]:
    rows = query(
        db_url,
        "SELECT status, count(*) FROM core.ingest_batches WHERE run_id = %s GROUP BY status",
        run_id,
    )
    return {r[0]: int(r[1]) for r in rows}


def run_status(db_url: str, run_id: uuid.UUID) -> str | None:
    status = one(db_url, "SELECT status FROM core.ingest_runs WHERE id = %s", run_id)
    return status if status in FINAL else None


def data_loss(db_url: str, asins: list[str]) -> tuple[int, int]:
    """(ASINs with no promoted data, rows stored more than once) for a run over `asins`."""
    have = one(
        db_url,
        "SELECT count(DISTINCT asin) FROM core.product_metrics_daily WHERE asin = ANY(%s)",
        asins,
    )
    dup_snapshots = one(
        db_url, "SELECT count(*) - count(DISTINCT (asin, observed_at)) FROM core.listing_snapshots"
    )
    dup_raw = one(
        db_url,
        "SELECT count(*) - count(DISTINCT asin) FROM staging_raw.raw_events WHERE kind = 'product'",
    )
    dup_metrics = one(
        db_url, "SELECT count(*) - count(DISTINCT (asin, date)) FROM core.product_metrics_daily"
    )
    return len(asins) - int(have), int(dup_snapshots) + int(dup_raw) + int(dup_metrics)


def _mid_run(sim: SimulatorServer, db_url: str, run_id: uuid.UUID) -> None:
    """Wait until part of the run is promoted and batches are inside upstream calls."""
    wait_until(lambda: batch_counts(db_url, run_id).get("promoted", 0) >= 2, "promoted batches")
    wait_until(lambda: batch_counts(db_url, run_id).get("fetching", 0) >= 1, "a batch mid-fetch")


def redis_restart_mid_run(
    sim: SimulatorServer, db_url: str, log_dir: Path, n_asins: int = 600
) -> DrillResult:
    """Redis (broker + cache, no persistence) restarts mid-run: its queues are gone."""
    srv = PrivateRedis().start()
    env = dict(os.environ, **RECOVERY_ENV, ASINWATCH_REDIS__URL=srv.url)
    asins = sample_asins(31, n_asins)
    track(db_url, MKT, asins)
    sim.simulator.configure(error_rate=0.0, block_rate=0.0, run_duration_s=0.5)
    try:
        with processes() as procs:
            worker = WorkerProcess(log_dir).start(env=env)
            procs.append(worker)
            procs.append(Beat(env, log_dir / f"beat-{uuid.uuid4().hex[:6]}.log"))
            run_id = start_run(env, f"drill-redis-{uuid.uuid4().hex[:8]}")
            _mid_run(sim, db_url, run_id)
            fault = time.monotonic()
            srv.restart()
            status = wait_until(lambda: run_status(db_url, run_id), "the run to finish", 300)
            recover = time.monotonic() - fault
            resent = worker.log_text().count("reconciler re-sent lost work")
    finally:
        srv.stop()
        sim.simulator.configure(run_duration_s=0.0)
    lost, dup = data_loss(db_url, asins)
    return DrillResult("redis restart mid-run", lost, dup, recover, status, resent)


def pg_restart_mid_run(
    sim: SimulatorServer, key_prefix: str, log_dir: Path, n_asins: int = 600
) -> DrillResult:
    """PostgreSQL restarts (crash stop) mid-run: every connection and advisory lock drops."""
    from asinwatch.migrations import runner

    pg = PrivatePostgres().start()
    try:
        db_url = pg.create_database("aw_drill")
        runner.upgrade(db_url)
        env = dict(os.environ, **RECOVERY_ENV, ASINWATCH_DATABASE__URL=db_url)
        asins = sample_asins(37, n_asins)
        track(db_url, MKT, asins)
        sim.simulator.configure(error_rate=0.0, block_rate=0.0, run_duration_s=0.5)
        with processes() as procs:
            procs.append(WorkerProcess(log_dir).start(env=env))
            procs.append(Beat(env, log_dir / f"beat-{uuid.uuid4().hex[:6]}.log"))
            run_id = start_run(env, f"drill-pg-{uuid.uuid4().hex[:8]}")
            _mid_run(sim, db_url, run_id)
            fault = time.monotonic()
            pg.restart()
            status = wait_until(lambda: run_status(db_url, run_id), "the run to finish", 300)
            recover = time.monotonic() - fault
        lost, dup = data_loss(db_url, asins)
        dead = int(one(db_url, "SELECT count(*) FROM core.dead_letters"))
        return DrillResult("pg restart mid-run", lost + dead, dup, recover, status)
    finally:
        sim.simulator.configure(run_duration_s=0.0)
        pg.remove()


def chain_runs(db_url: str, run_id: uuid.UUID) -> dict[str, tuple[bool, int]]:
    rows = query(
        db_url,
        "SELECT step, done_at IS NOT NULL, runs FROM core.ingest_run_analytics WHERE run_id = %s",
        run_id,
    )
    return {r[0]: (bool(r[1]), int(r[2])) for r in rows}


def sigkill_before_finalise(sim: SimulatorServer, db_url: str, log_dir: Path) -> DrillResult:
    """The worker dies after the last batch's promotion commit, before the finalisation.

    The drill holds an exclusive lock on core.ingest_run_analytics, which only the
    finalising transaction writes: the worker provably blocks inside finalisation (after the
    promotion committed) when SIGKILL lands, and its transaction never commits.
    """
    from asinwatch.ingestion import reconcile, service
    from asinwatch.kit.db import session_scope

    env = dict(os.environ, **RECOVERY_ENV, ASINWATCH_INGEST__AFTER_RUN_HOOK="true")
    asins = sample_asins(41, 8)
    track(db_url, MKT, asins)
    sim.simulator.configure(error_rate=0.0, block_rate=0.0, run_duration_s=0.0)
    with processes() as procs:
        first = WorkerProcess(log_dir).start(env=env)
        procs.append(first)
        # The starting worker's own sweep reads the chain table: let it finish first.
        wait_until(
            lambda: re.search(r"ingestion\.recover_stalled\[\S+\] succeeded", first.log_text()),
            "the worker's start-up sweep",
        )
        blocker = psycopg.connect(db_url)
        try:
            blocker.execute("LOCK TABLE core.ingest_run_analytics IN ACCESS EXCLUSIVE MODE")
            with session_scope() as session:
                run, _ = service.prepare_run(
                    session, marketplace=MKT, asins=asins, all_tracked=False,
                    trigger="manual", job_id=f"drill-final-{uuid.uuid4().hex[:8]}",
                )  # fmt: skip
            run_id = run.id
            service.enqueue_run_sync(run_id)
            waiting = wait_until(
                lambda: query(
                    db_url,
                    "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE NOT l.granted"
                    " AND a.query LIKE 'INSERT INTO core.ingest_run_analytics%%'"
                    " AND l.relation = 'core.ingest_run_analytics'::regclass",
                ),
                "the finalisation to block",
            )
            assert batch_counts(db_url, run_id) == {"promoted": 1}
            first.kill()
            fault = time.monotonic()
        finally:
            blocker.rollback()
            blocker.close()
        pid = waiting[0][0]
        wait_until(
            lambda: not query(db_url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid),
            "the killed worker's backend to end",
        )
        state = one(db_url, "SELECT status FROM core.ingest_runs WHERE id = %s", run_id)
        assert state == "running", state  # the finalisation really was lost
        procs.append(WorkerProcess(log_dir).start(env=env))
        wait_until(
            lambda: len(c := chain_runs(db_url, run_id)) == 4 and all(d for d, _ in c.values()),
            "the analytics chain to complete",
        )
        recover = time.monotonic() - fault
        # Another sweep (as beat would send) and a little time: nothing runs a second time.
        reconcile.reconcile(on_start=True)
        time.sleep(3)
        status = one(db_url, "SELECT status FROM core.ingest_runs WHERE id = %s", run_id)
    runs = chain_runs(db_url, run_id)
    lost = sum(1 for done, _ in runs.values() if not done) + (status != "succeeded")
    duplicated = sum(n - 1 for _, n in runs.values())
    return DrillResult("worker SIGKILL before finalise", lost, duplicated, recover, status)


def _health_senders(client: redis.Redis, queue: str) -> list[str]:
    out = []
    for body in client.lrange(queue, 0, -1):
        msg = json.loads(body)
        if msg["headers"]["task"] == "ingestion.run_health_sample":
            out.append(msg["headers"]["origin"])
    return out[::-1]  # LPUSH: oldest last in the list


def _two_beats(env: dict[str, str], log_dir: Path, procs: list[Any]) -> tuple[Beat, Beat]:
    first = Beat(env, log_dir / f"beat-a-{uuid.uuid4().hex[:6]}.log")
    procs.append(first)
    wait_until(lambda: "Acquired lock" in first.log, "the first beat to take the lock")
    second = Beat(env, log_dir / f"beat-b-{uuid.uuid4().hex[:6]}.log")
    procs.append(second)
    wait_until(lambda: "beat: Starting" in second.log, "the standby beat to start")
    return first, second


def beat_failover(log_dir: Path) -> DrillResult:
    """The active beat is SIGKILLed (no lock release) with a standby running."""
    srv = PrivateRedis().start()
    prefix = "drill-beat:"
    env = dict(
        os.environ, **RECOVERY_ENV, ASINWATCH_REDIS__URL=srv.url,
        ASINWATCH_REDIS__KEY_PREFIX=prefix, ASINWATCH_INGEST__HEALTH_SAMPLE_INTERVAL_S="1",
    )  # fmt: skip
    client = redis.Redis.from_url(srv.url)
    queue = f"{prefix}celery:celery"
    try:
        with processes() as procs:
            first, second = _two_beats(env, log_dir, procs)
            wait_until(lambda: len(_health_senders(client, queue)) >= 2, "the schedule to fire")
            first.kill()
            fault = time.monotonic()
            wait_until(
                lambda: second.origin in _health_senders(client, queue), "the standby to fire", 120
            )
            recover = time.monotonic() - fault
            senders = _health_senders(client, queue)
            alive = second.proc.poll() is None
    finally:
        client.close()
        srv.stop()
    after = senders[senders.index(second.origin) :]
    duplicated = sum(1 for s in after if s != second.origin)  # two beats firing at once
    return DrillResult("beat failover (SIGKILL)", int(not alive), duplicated, recover)


def beat_redis_restart(log_dir: Path) -> DrillResult:
    """Redis restarts under an active and a standby beat: the lock and the entries are gone."""
    srv = PrivateRedis().start()
    prefix = "drill-beat:"
    env = dict(
        os.environ, **RECOVERY_ENV, ASINWATCH_REDIS__URL=srv.url,
        ASINWATCH_REDIS__KEY_PREFIX=prefix, ASINWATCH_INGEST__HEALTH_SAMPLE_INTERVAL_S="1",
    )  # fmt: skip
    client = redis.Redis.from_url(srv.url)
    queue = f"{prefix}celery:celery"
    try:
        with processes() as procs:
            first, second = _two_beats(env, log_dir, procs)
            wait_until(lambda: len(_health_senders(client, queue)) >= 2, "the schedule to fire")
            fault = time.monotonic()
            srv.restart()
            wait_until(lambda: _health_senders(client, queue), "a beat to fire again", 120)
            recover = time.monotonic() - fault
            wait_until(lambda: len(_health_senders(client, queue)) >= 5, "more firings", 120)
            senders = set(_health_senders(client, queue))
            dead = sum(b.proc.poll() is not None for b in (first, second))
    finally:
        client.close()
        srv.stop()
    return DrillResult("beat survives redis restart", dead, len(senders) - 1, recover)

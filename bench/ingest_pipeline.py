"""Ingestion throughput: pipeline-only vs. a plain COPY, and end-to-end through Celery.

    .venv/bin/python -m bench.ingest_pipeline [--asins 5000] [--e2e-asins 5000] [--skip-e2e]

(a) Pipeline only, zero upstream latency: N simulator items (generated up front, not timed)
    go through stage (COPY into staging_raw) + promote (re-normalise, upsert metrics and the
    read model, snapshots, products, mark staged rows) batch by batch in this process, once
    with COPY into temp tables + INSERT ... ON CONFLICT and once with executemany upserts.
    Side by side: a plain COPY of the same metric rows into a scratch copy of
    core.product_metrics_daily, the physical limit of this machine's PostgreSQL.
(b) End to end: N ASINs through the real Apify adapter against the simulator with realistic
    upstream latency (every actor run takes seconds) and a real Celery worker, timed from
    enqueue to the run's finish.

It creates its own scratch database and Redis key prefix, removes both at the end, prints a
table and writes bench/results/ingest_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import redis
import structlog
from psycopg import sql

RESULTS = Path(__file__).resolve().parent / "results" / "ingest_pipeline.json"
ADMIN_URL = os.environ.get(
    "ASINWATCH_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ASINWATCH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MARKETPLACE = "amazon.com"
# 16:00 UTC is the same calendar day in UTC and in Los Angeles.
SEEN = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ingest_pipeline")
    p.add_argument("--asins", type=int, default=5000, help="ASINs for the pipeline-only part")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--e2e-asins", type=int, default=5000)
    p.add_argument("--e2e-concurrency", type=int, default=8, help="worker processes")
    p.add_argument("--run-seconds", type=float, default=2.0, help="upstream run base time")
    p.add_argument("--run-seconds-per-item", type=float, default=0.01)
    p.add_argument("--latency-ms", type=int, default=50, help="added to every upstream request")
    p.add_argument("--rate-per-s", type=float, default=20.0, help="global upstream rate limit")
    p.add_argument("--reviews-per-asin", type=int, default=5)
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def _db_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


def _drop_db(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _machine() -> dict[str, Any]:
    with psycopg.connect(ADMIN_URL) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgresql": row[0] if row else "?",
        "redis": redis.Redis.from_url(REDIS_URL).info("server").get("redis_version"),
        "platform": platform.platform(),
    }


# ---------------------------------------------------------------- (a) pipeline only


def _items(asins: list[str]) -> list[dict[str, Any]]:
    from asinwatch.simulator import SimConfig, Simulator

    sim = Simulator(SimConfig(seed=17, block_rate=0))
    return [sim.product_item(MARKETPLACE, a, SEEN) for a in asins]


def _track(db_url: str, asins: list[str]) -> None:
    with (
        psycopg.connect(db_url) as conn,
        conn.cursor() as cur,
        cur.copy("COPY core.products (marketplace, asin, is_own, tracking_state) FROM STDIN") as cp,
    ):
        for a in asins:
            cp.write_row((MARKETPLACE, a, True, "active"))


def _reset_core(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE core.product_metrics_daily, mart.product_latest, core.listing_snapshots,"
            " staging_raw.raw_events, core.ingest_batches, core.ingest_runs CASCADE"
        )
        conn.execute("UPDATE core.products SET last_seen_at = NULL, last_valid_at = NULL")
        conn.execute("VACUUM ANALYZE")


def pipeline_only(
    db_url: str, asins: list[str], items: list[dict[str, Any]], bulk: str
) -> dict[str, Any]:
    from asinwatch.ingestion import service
    from asinwatch.ingestion.promotion import promote_batch
    from asinwatch.ingestion.records import FetchResult
    from asinwatch.ingestion.staging import StagedFetch, stage_batch
    from asinwatch.kit.db import session_scope

    _reset_core(db_url)
    with session_scope() as session:
        run, _ = service.prepare_run(
            session,
            marketplace=MARKETPLACE,
            asins=asins,
            all_tracked=False,
            trigger="manual",
            job_id=None,
        )
        batches = [(b.batch_no, b.asins) for b in service.repository.list_batches(session, run.id)]
    by_asin = dict(zip(asins, items, strict=True))
    stage_s = promote_s = 0.0
    started = time.perf_counter()
    for batch_no, batch_asins in batches:
        result = FetchResult(
            [by_asin[a] for a in batch_asins], [], [], [], [], Decimal(0), ["bench"], SEEN
        )
        t0 = time.perf_counter()
        with session_scope() as session:
            stage_batch(
                session,
                run_id=run.id,
                batch_no=batch_no,
                marketplace=MARKETPLACE,
                fetches=[StagedFetch("product", "apify:bench", result)],
            )
        t1 = time.perf_counter()
        with session_scope() as session:
            promote_batch(session, run.id, batch_no, bulk=bulk)  # type: ignore[arg-type]
        promote_s += time.perf_counter() - t1
        stage_s += t1 - t0
    total = time.perf_counter() - started
    with psycopg.connect(db_url) as conn:
        landed = conn.execute("SELECT count(*) FROM core.product_metrics_daily").fetchone()
    assert landed is not None and landed[0] == len(asins), f"only {landed} metric rows landed"
    return {
        "bulk": bulk,
        "asins": len(asins),
        "batches": len(batches),
        "seconds": round(total, 3),
        "asins_per_s": round(len(asins) / total, 1),
        "stage_s": round(stage_s, 3),
        "promote_s": round(promote_s, 3),
    }


def normalise_only(
    asins: list[str], items: list[dict[str, Any]], batch_size: int
) -> dict[str, Any]:
    from asinwatch.ingestion.promotion_plan import StagedItem, plan_promotion

    started = time.perf_counter()
    run_id = uuid.uuid4()
    for i in range(0, len(asins), batch_size):
        staged = [
            StagedItem(j, "product", items[j], SEEN)
            for j in range(i, min(i + batch_size, len(asins)))
        ]
        plan_promotion(
            staged,
            marketplace=MARKETPLACE,
            batch_asins=asins[i : i + batch_size],
            run_id=run_id,
            run_kind="product_details",
        )
    total = time.perf_counter() - started
    return {"seconds": round(total, 3), "asins_per_s": round(len(asins) / total, 1)}


def plain_copy(db_url: str, asins: list[str], items: list[dict[str, Any]]) -> dict[str, Any]:
    """COPY the same metric rows into a scratch copy of the table: the physical limit."""
    from asinwatch.ingestion.promotion import copy_rows
    from asinwatch.ingestion.promotion_plan import METRIC_ROW_COLUMNS, StagedItem, plan_promotion

    plan = plan_promotion(
        [StagedItem(i, "product", it, SEEN) for i, it in enumerate(items)],
        marketplace=MARKETPLACE,
        batch_asins=asins,
        run_id=uuid.uuid4(),
        run_kind="product_details",
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.bench_metrics_copy")
        conn.execute(
            "CREATE TABLE public.bench_metrics_copy (LIKE core.product_metrics_daily"
            " INCLUDING DEFAULTS, PRIMARY KEY (marketplace, asin, date))"
        )
        conn.execute("VACUUM ANALYZE public.bench_metrics_copy")
    with psycopg.connect(db_url) as conn:
        started = time.perf_counter()
        copy_rows(conn, "bench_metrics_copy", METRIC_ROW_COLUMNS, plan.metrics)
        conn.commit()
        total = time.perf_counter() - started
        conn.execute("DROP TABLE public.bench_metrics_copy")
        conn.commit()
    return {
        "rows": len(plan.metrics),
        "seconds": round(total, 3),
        "rows_per_s": round(len(plan.metrics) / total, 1),
    }


# ---------------------------------------------------------------- (b) end to end


def end_to_end(db_url: str, args: argparse.Namespace) -> dict[str, Any]:
    from asinwatch.config import reset_settings_cache
    from asinwatch.ingestion import service
    from asinwatch.kit.db import dispose_sync_engines, session_scope
    from asinwatch.simulator import SimConfig, SimulatorServer, sample_asins

    asins = sample_asins(23, args.e2e_asins)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE core.products CASCADE")
    _reset_core(db_url)
    _track(db_url, asins)
    srv = SimulatorServer(
        SimConfig(
            seed=23,
            block_rate=0.02,
            latency_ms=args.latency_ms,
            run_duration_s=args.run_seconds,
            run_seconds_per_item=args.run_seconds_per_item,
        )
    ).start()
    os.environ.update(
        {
            "ASINWATCH_APIFY__BASE_URL": srv.base_url,
            "ASINWATCH_APIFY__ALLOWED_HOSTS": '["127.0.0.1"]',
            "ASINWATCH_APIFY__TOKEN": srv.token,
            "ASINWATCH_APIFY__MAX_REVIEWS_PER_ASIN": str(args.reviews_per_asin),
            # Simulated spend only: many runs in one wall-clock day must not hit the daily cap.
            "ASINWATCH_APIFY__MAX_COST_USD_PER_DAY": "1000000",
            "ASINWATCH_INGEST__BATCH_SIZE": str(args.batch_size),
            "ASINWATCH_INGEST__MAX_CONCURRENT_BATCHES": str(args.e2e_concurrency),
            "ASINWATCH_INGEST__RATE_LIMIT_PER_S": str(args.rate_per_s),
            # INFO: the worker's " ready." line (what the start-up wait below reads) is INFO.
            "ASINWATCH_LOG__LEVEL": "INFO",
            # Ingestion only: the analytics chain after the run is not part of this figure.
            "ASINWATCH_INGEST__AFTER_RUN_HOOK": "false",
        }
    )
    reset_settings_cache()
    dispose_sync_engines()
    log = Path(f"/tmp/asinwatch-bench-worker-{uuid.uuid4().hex[:6]}.log")
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "asinwatch",
                "worker",
                "--concurrency",
                str(args.e2e_concurrency),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the bench worker did not start; see " + str(log))
            time.sleep(0.1)
        with session_scope() as session:
            run, _ = service.prepare_run(
                session,
                marketplace=MARKETPLACE,
                asins=None,
                all_tracked=True,
                trigger="manual",
                job_id=None,
            )
        started = time.perf_counter()
        service.enqueue_run_sync(run.id)
        with psycopg.connect(db_url, autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT status, asins_succeeded, asins_quarantined, asins_failed,"
                    " batches_total, cost_usd FROM core.ingest_runs WHERE id = %s",
                    (run.id,),
                ).fetchone()
                assert row is not None
                if row[0] in ("succeeded", "partial", "failed"):
                    break
                time.sleep(0.25)
        total = time.perf_counter() - started
        with psycopg.connect(db_url) as conn:
            reviews = conn.execute("SELECT count(*) FROM core.reviews").fetchone()
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        srv.stop()
        log.unlink(missing_ok=True)
    return {
        "asins": len(asins),
        "status": row[0],
        "succeeded": row[1],
        "quarantined": row[2],
        "failed": row[3],
        "batches": row[4],
        "reviews": reviews[0] if reviews else 0,
        "cost_usd": str(row[5]),
        "seconds": round(total, 1),
        "asins_per_s": round(len(asins) / total, 1),
        "upstream": {
            "run_base_s": args.run_seconds,
            "run_s_per_item": args.run_seconds_per_item,
            "latency_ms_per_request": args.latency_ms,
            "rate_limit_per_s": args.rate_per_s,
            "reviews_per_asin": args.reviews_per_asin,
            "block_rate": 0.02,
        },
        "batch_size": args.batch_size,
        "worker_concurrency": args.e2e_concurrency,
        "max_concurrent_batches": args.e2e_concurrency,
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    db_name = f"aw_bench_ingest_{uuid.uuid4().hex[:8]}"
    prefix = f"awbench:{uuid.uuid4().hex[:8]}:"
    db_url = _db_url(db_name)
    os.environ.update(
        {
            "ASINWATCH_ENV": "test",
            "ASINWATCH_DATABASE__URL": db_url,
            "ASINWATCH_REDIS__URL": REDIS_URL,
            "ASINWATCH_REDIS__KEY_PREFIX": prefix,
            "ASINWATCH_INGEST__BATCH_SIZE": str(args.batch_size),
            "ASINWATCH_DATA_DIR": f"/tmp/asinwatch-bench-{db_name}",
        }
    )
    from asinwatch.config import reset_settings_cache
    from asinwatch.kit.db import dispose_sync_engines
    from asinwatch.migrations import runner
    from asinwatch.simulator import sample_asins

    reset_settings_cache()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    try:
        runner.upgrade(db_url)
        asins = sample_asins(17, args.asins)
        items = _items(asins)
        _track(db_url, asins)
        result: dict[str, Any] = {
            "command": "python -m bench.ingest_pipeline "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": _machine(),
            "pipeline_only": {
                "normalise_only": normalise_only(asins, items, args.batch_size),
                "copy_temp_tables": pipeline_only(db_url, asins, items, "copy"),
                "executemany": pipeline_only(db_url, asins, items, "executemany"),
                "plain_copy_limit": plain_copy(db_url, asins, items),
            },
        }
        if not args.skip_e2e:
            result["end_to_end"] = end_to_end(db_url, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        _print(result)
        return 0
    finally:
        dispose_sync_engines()
        _drop_db(db_name)
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()


def _print(result: dict[str, Any]) -> None:
    p = result["pipeline_only"]
    m = result["machine"]
    print(
        f"\nmachine: {m['cpus']} CPU ({m['cpu_model']}), {m['memory_gb']} GB, "
        f"PostgreSQL {m['postgresql']}, Redis {m['redis']}, Python {m['python']}"
    )
    print(
        f"\n{'pipeline only (zero upstream latency)':44} {'ASINs':>6} {'seconds':>8} {'per s':>9}"
    )
    n = p["copy_temp_tables"]["asins"]
    print(
        f"{'normalise only (CPU)':44} {n:>6} {p['normalise_only']['seconds']:>8} "
        f"{p['normalise_only']['asins_per_s']:>9}"
    )
    for key, label in (
        ("copy_temp_tables", "stage+promote, COPY + temp tables"),
        ("executemany", "stage+promote, executemany upserts"),
    ):
        r = p[key]
        print(
            f"{label:44} {r['asins']:>6} {r['seconds']:>8} {r['asins_per_s']:>9}"
            f"   (stage {r['stage_s']} s, promote {r['promote_s']} s)"
        )
    c = p["plain_copy_limit"]
    print(
        f"{'plain COPY of the metric rows (limit)':44} {c['rows']:>6} {c['seconds']:>8} "
        f"{c['rows_per_s']:>9}"
    )
    e = result.get("end_to_end")
    if e:
        u = e["upstream"]
        print(
            f"\nend to end: {e['asins']} ASINs, {e['batches']} batches of {e['batch_size']},"
            f" {e['worker_concurrency']} worker processes: {e['seconds']} s"
            f" ({e['asins_per_s']} ASINs/s), {e['status']}: {e['succeeded']} ok,"
            f" {e['quarantined']} quarantined, {e['failed']} failed, {e['reviews']} reviews,"
            f" cost ${e['cost_usd']}\n  upstream: run {u['run_base_s']} s + {u['run_s_per_item']}"
            f" s/item, {u['latency_ms_per_request']} ms/request, limit {u['rate_limit_per_s']}"
            f" req/s, {u['reviews_per_asin']} reviews/ASIN"
        )


if __name__ == "__main__":
    raise SystemExit(main())

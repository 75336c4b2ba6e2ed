"""Recovery drills, repeated: does every run finish by itself, losing and duplicating nothing?

    .venv/bin/python -m bench.drills [--runs 3] [--asins 600] [--drill NAME ...] [--default-clocks]

Drills (tests/ingestion/drills.py, the same code the acceptance tests run): Redis restarted
mid-run (queues lost), PostgreSQL restarted mid-run (a private cluster), a worker SIGKILLed
between the last promotion and the finalisation, the active beat SIGKILLed with a standby
running, and Redis restarted under two beats. Each drill runs N times; the table shows per
drill: runs, ASINs (or chain steps / beats) lost, rows (or step runs / firings) duplicated,
and the time from the fault to recovery (median and max, seconds) with the recovery clocks
of tests/ingestion/drills.py (reconcile every 5 s, stale after 10 s, beat lock 10 s), or with
the production defaults of config.RecoverySettings (`--default-clocks`).

It creates its own scratch database and Redis key prefix, removes both at the end, prints a
table and writes bench/results/drills.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
import redis
import structlog
from psycopg import sql

RESULTS = Path(__file__).resolve().parent / "results" / "drills.json"
ADMIN_URL = os.environ.get(
    "ASINWATCH_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ASINWATCH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DRILLS = ("redis", "pg", "finalise", "beat-failover", "beat-redis")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.drills")
    p.add_argument("--runs", type=int, default=3, help="times each drill is run")
    p.add_argument("--asins", type=int, default=600, help="ASINs of a mid-run drill's run")
    p.add_argument("--drill", action="append", choices=DRILLS, help="only these (repeatable)")
    p.add_argument(
        "--default-clocks",
        action="store_true",
        help="the production recovery settings instead of the drills' short ones",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


def _run_drills(args: argparse.Namespace, db_url: str, prefix: str) -> list[dict[str, Any]]:
    from tests.ingestion import drills
    from tests.ingestion.conftest import PIPELINE_ENV

    from asinwatch.simulator import SimConfig, SimulatorServer

    if args.default_clocks:
        drills.RECOVERY_ENV.clear()  # config.RecoverySettings' defaults
    srv = SimulatorServer(SimConfig(seed=5, block_rate=0.0)).start()
    os.environ.update(
        {
            "ASINWATCH_APIFY__BASE_URL": srv.base_url,
            "ASINWATCH_APIFY__ALLOWED_HOSTS": '["127.0.0.1"]',
            "ASINWATCH_APIFY__TOKEN": srv.token,
            **PIPELINE_ENV,
        }
    )
    from asinwatch.config import reset_settings_cache

    reset_settings_cache()
    wanted = args.drill or list(DRILLS)
    rows: list[dict[str, Any]] = []
    try:
        for name in wanted:
            results = []
            for i in range(args.runs):
                drills.reset(db_url, prefix, REDIS_URL)
                logs = Path(tempfile.mkdtemp(prefix=f"aw-drill-{name}-"))
                if name == "redis":
                    r = drills.redis_restart_mid_run(srv, db_url, logs, args.asins)
                elif name == "pg":
                    r = drills.pg_restart_mid_run(srv, prefix, logs, args.asins)
                elif name == "finalise":
                    r = drills.sigkill_before_finalise(srv, db_url, logs)
                elif name == "beat-failover":
                    r = drills.beat_failover(logs)
                else:
                    r = drills.beat_redis_restart(logs)
                if r.lost or r.duplicated or os.environ.get("ASINWATCH_BENCH_KEEP_LOGS"):
                    print(f"  logs kept in {logs}", flush=True)
                else:
                    shutil.rmtree(logs, ignore_errors=True)
                print(f"  {r.drill} #{i + 1}: lost {r.lost}, duplicated {r.duplicated},"
                      f" recovered in {r.recover_s:.1f}s {r.detail}", flush=True)  # fmt: skip
                results.append(r)
            times = [r.recover_s for r in results]
            rows.append(
                {
                    "drill": results[0].drill,
                    "runs": len(results),
                    "lost": sum(r.lost for r in results),
                    "duplicated": sum(r.duplicated for r in results),
                    "recover_s_median": round(statistics.median(times), 1),
                    "recover_s_max": round(max(times), 1),
                    "recover_s": [round(t, 2) for t in times],
                }
            )
    finally:
        srv.stop()
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    head = "| drill | runs | lost | duplicated | time to recover (s), median / max |"
    lines = [head, "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['drill']} | {r['runs']} | {r['lost']} | {r['duplicated']}"
            f" | {r['recover_s_median']} / {r['recover_s_max']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    db_name = f"aw_bench_drills_{uuid.uuid4().hex[:8]}"
    prefix = f"awbench:{uuid.uuid4().hex[:8]}:"
    db_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}"
    os.environ.update(
        {
            "ASINWATCH_ENV": "test",
            "ASINWATCH_DATABASE__URL": db_url,
            "ASINWATCH_REDIS__URL": REDIS_URL,
            "ASINWATCH_REDIS__KEY_PREFIX": prefix,
            "ASINWATCH_DATA_DIR": f"/tmp/asinwatch-bench-{db_name}",
        }
    )
    from asinwatch.config import reset_settings_cache
    from asinwatch.kit.db import dispose_sync_engines
    from asinwatch.migrations import runner

    reset_settings_cache()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    try:
        runner.upgrade(db_url)
        rows = _run_drills(args, db_url, prefix)
    finally:
        dispose_sync_engines()
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db_name)))
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
        client.close()
    print(_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python -m bench.drills " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "drills": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(r["lost"] == 0 and r["duplicated"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

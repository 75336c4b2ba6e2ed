"""Benchmark of the product summary read, side by side in one run:

- ``cached``:   GET /v1/products/{asin} with the cache warm (Redis + local layer);
- ``uncached``: the same read with ``ASINWATCH_API__READ_CACHE_ENABLED=false`` (every request
  runs the summary query on PostgreSQL);
- ``bare``:     a bare FastAPI endpoint returning a constant JSON object (the ceiling of one
  uvicorn worker on this machine).

Each runs in its own uvicorn process (1 worker) on 127.0.0.1; the two API servers share a
scratch database (created and dropped here, migrated, seeded with `--products` products x 90
days) and Redis under their own key prefix (removed at the end). Load comes from ``wrk``
(a Lua script rotates over the products and reports P50/P95/P99) or, without wrk, from httpx
async clients. The API servers run with their real middleware stack (request id, access
metrics, security headers, per-IP and per-token rate limits in Redis, JWT verification);
the limits are raised so that no request is refused, and logs are at WARNING (the bare
endpoint logs nothing either).

    .venv/bin/python -m bench api_read [--products 200] [--duration 10] [--connections 32]

Writes bench/results/api_read.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
from fastapi import FastAPI
from psycopg import sql

ADMIN_URL = os.environ.get(
    "ASINWATCH_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("ASINWATCH_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).resolve().parent / "results" / "api_read.json"
MARKETPLACE = "amazon.com"

# The ceiling: the same framework, nothing else.
bare_app = FastAPI()


@bare_app.get("/bare")
async def bare() -> dict[str, Any]:
    return {"status": "ok", "asin": "B0BENCH000", "price": 19.99}


WRK_SCRIPT = r"""
local paths = {}
local i = 0
init = function(args)
  for _, p in ipairs(args) do table.insert(paths, p) end
end
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def asin_of(i: int) -> str:
    return f"B0BENCH{i:03d}"


# --- scratch database ----------------------------------------------------------------------


@contextmanager
def scratch_database() -> Iterator[str]:
    name = f"aw_bench_{uuid.uuid4().hex[:8]}"
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def seed(url: str, products: int, days: int = 90) -> None:
    """`products` own products, each with `days` daily rows, the mart's latest row and KPIs."""
    end = date.today()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        product_columns = "marketplace, asin, title, is_own, tracking_state"
        with cur.copy(f"COPY core.products ({product_columns}) FROM STDIN") as cp:
            for i in range(products):
                cp.write_row((MARKETPLACE, asin_of(i), f"Bench product {i}", True, "active"))
        columns = (
            "marketplace, asin, date, buybox_price, currency, in_stock, bsr, bsr_category,"
            " rating, review_count, observed_at"
        )
        with cur.copy(f"COPY core.product_metrics_daily ({columns}) FROM STDIN") as cp:
            for i in range(products):
                for d in range(days):
                    day = end - timedelta(days=days - 1 - d)
                    cp.write_row(
                        (
                            MARKETPLACE,
                            asin_of(i),
                            day,
                            20 + (d % 7),
                            "USD",
                            True,
                            1000 + d,
                            "Kitchen",
                            4.5,
                            100 + d,
                            datetime.combine(day, dtime(6), tzinfo=UTC),
                        )
                    )
        cur.execute(
            f"INSERT INTO mart.product_latest ({columns})"
            f" SELECT DISTINCT ON (marketplace, asin) {columns} FROM core.product_metrics_daily"
            " ORDER BY marketplace, asin, date DESC"
        )
        cur.execute(
            "INSERT INTO mart.product_kpis_daily (marketplace, asin, date, kpis)"
            ' SELECT marketplace, asin, %s, \'{"price": {"current": 26}}\'::jsonb'
            " FROM core.products",
            (end,),
        )
        conn.commit()
        cur.execute("ANALYZE")


# --- servers -------------------------------------------------------------------------------


@contextmanager
def server(target: str, env: dict[str, str], *, factory: bool) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--log-level", "warning", "--no-access-log"]
    if factory:
        cmd.append("--factory")
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        probe = "/v1/health" if factory else "/bare"
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(base + probe, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{target} did not start")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- load ----------------------------------------------------------------------------------


def run_wrk(
    base: str, paths: list[str], headers: dict[str, str], duration: int, connections: int
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
        script = f.name
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", script]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd += [base, "--", *paths]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["errors"] + raw["non2xx"],
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


async def _httpx_load(
    base: str, paths: list[str], headers: dict[str, str], duration: int, connections: int
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def worker(n: int) -> None:
            nonlocal errors
            i = n
            while time.perf_counter() < stop:
                started = time.perf_counter()
                resp = await client.get(paths[i % len(paths)])
                latencies.append(time.perf_counter() - started)
                errors += resp.status_code != 200
                i += connections

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(connections)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(q[49] * 1000, 3),
        "p95_ms": round(q[94] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
    }


def load(
    base: str, paths: list[str], headers: dict[str, str], duration: int, connections: int
) -> dict[str, float]:
    if shutil.which("wrk"):
        return run_wrk(base, paths, headers, duration, connections)
    return asyncio.run(_httpx_load(base, paths, headers, duration, connections))


def cache_events(base: str) -> dict[str, float]:
    """The summary cache counters from the server's Prometheus metrics."""
    text = httpx.get(base + "/v1/metrics", timeout=5).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('asinwatch_cache_events_total{kind="summary"'):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = float(line.rsplit(" ", 1)[1])
    return out


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench api_read", description=__doc__)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)

    prefix = f"awbench:{uuid.uuid4().hex[:8]}:"
    results: dict[str, Any] = {}
    with scratch_database() as db_url:
        from asinwatch.migrations import runner

        runner.upgrade(db_url)
        seed(db_url, args.products)
        env = {
            "ASINWATCH_ENV": "test",
            "ASINWATCH_DATABASE__URL": db_url,
            "ASINWATCH_REDIS__URL": REDIS_URL,
            "ASINWATCH_REDIS__KEY_PREFIX": prefix,
            "ASINWATCH_LOG__LEVEL": "WARNING",
            "ASINWATCH_API__RATE_LIMIT_PER_MINUTE": "100000000",
            "ASINWATCH_API__RATE_LIMIT_PER_IP_PER_MINUTE": "100000000",
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("ASINWATCH_")})
        from asinwatch.auth.jwt import issue_dev_token
        from asinwatch.config import reset_settings_cache

        reset_settings_cache()
        token = issue_dev_token("viewer", sub="bench", ttl_s=3600)
        headers = {"Authorization": f"Bearer {token}"}
        paths = [f"/v1/products/{asin_of(i)}" for i in range(args.products)]
        try:
            with (
                server("asinwatch.app:create_app", env, factory=True) as cached,
                server(
                    "asinwatch.app:create_app",
                    {**env, "ASINWATCH_API__READ_CACHE_ENABLED": "false"},
                    factory=True,
                ) as uncached,
                server("bench.api_read:bare_app", env, factory=False) as bare_base,
            ):
                for base in (cached, uncached):  # warm: connections, JIT-free paths, cache
                    for p in paths:
                        httpx.get(base + p, headers=headers, timeout=10).raise_for_status()
                warm = cache_events(cached)
                results["cached"] = load(cached, paths, headers, args.duration, args.connections)
                after = cache_events(cached)
                results["cached"]["cache_hit_ratio"] = round(
                    (after.get("hit", 0) - warm.get("hit", 0))
                    / max(1.0, sum(after.values()) - sum(warm.values())),
                    4,
                )
                results["uncached"] = load(
                    uncached, paths, headers, args.duration, args.connections
                )
                results["bare"] = load(bare_base, ["/bare"], {}, args.duration, args.connections)
        finally:
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=prefix + "*", count=1000):
                client.delete(key)
            client.close()

    report = {
        "benchmark": "api_read",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load": {
            "tool": "wrk" if shutil.which("wrk") else "httpx",
            "connections": args.connections,
            "duration_s": args.duration,
            "products": args.products,
            "days_per_product": 90,
        },
        "scenarios": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{'scenario':<10} {'req/s':>10} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'errors':>7}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['rps']:>10.1f} {r['p50_ms']:>9.2f} {r['p95_ms']:>9.2f}"
            f" {r['p99_ms']:>9.2f} {r['errors']:>7}"
        )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

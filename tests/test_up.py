"""`asinwatch up` on the embedded default: real PostgreSQL and Redis from Python packages,
health ready, Ctrl-C stops everything cleanly, and a second `up` reuses the data folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.xdist_group("embedded")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASINWATCH_")}
    env.update(
        {
            "ASINWATCH_DATA_DIR": str(data_dir),
            "ASINWATCH_API__PORT": str(port),
            "ASINWATCH_SIMULATOR__PORT": str(_free_port()),
            "ASINWATCH_UP__DEMO_PRODUCTS": "4",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "asinwatch", "up"],
        env=env,
        cwd=data_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(
    port: int, proc: subprocess.Popen[str], timeout_s: float = 120
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            resp = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
            body: dict[str, object] = resp.json()
            if resp.status_code == 200 and body["status"] == "ok":
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("asinwatch up never became healthy")


def _wait_demo_ingested(data_dir: Path, timeout_s: float = 120) -> tuple[int, int]:
    """(tracked products, products with a latest metric) once the demo run has finished."""
    deadline = time.monotonic() + timeout_s
    dsn = f"host={data_dir / 'pg'} dbname=asinwatch user=postgres"
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            run = conn.execute(
                "SELECT status FROM core.ingest_runs WHERE job_id = 'demo:initial'"
            ).fetchone()
            if run and run[0] in ("succeeded", "partial", "failed"):
                products = conn.execute("SELECT count(*) FROM core.products").fetchone()
                latest = conn.execute("SELECT count(*) FROM mart.product_latest").fetchone()
                assert products is not None and latest is not None
                return int(products[0]), int(latest[0])
        time.sleep(1)
    raise AssertionError("the demo ingestion run did not finish")


def _ingest_counters(port: int) -> tuple[float, float]:
    """(succeeded, quarantined) ASINs as the API's /v1/metrics sums them over every process."""
    text = httpx.get(f"http://127.0.0.1:{port}/v1/metrics", timeout=10).text
    totals = {"succeeded": 0.0, "quarantined": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "asinwatch_ingest_asins_total" and s.labels["outcome"] in totals:
                totals[s.labels["outcome"]] += s.value
    return totals["succeeded"], totals["quarantined"]


def _wait_pipeline_metrics(data_dir: Path, port: int, timeout_s: float = 60) -> None:
    """The worker's ingest counters reach the API's scrape and equal the database's runs."""
    dsn = f"host={data_dir / 'pg'} dbname=asinwatch user=postgres"
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(dsn) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(asins_succeeded), 0), coalesce(sum(asins_quarantined), 0)"
                " FROM core.ingest_runs"
            ).fetchone()
        assert row is not None
        scraped = _ingest_counters(port)
        if scraped == (float(row[0]), float(row[1])) and scraped[0] > 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"/v1/metrics shows {scraped}, the runs say {tuple(row)}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        body = _wait_ready(port, proc)
        # The demo catalogue went through the real adapter, the simulator and the worker.
        products, latest = _wait_demo_ingested(tmp_path)
        _wait_pipeline_metrics(tmp_path, port)
    finally:
        out = _stop(proc)
    deps = body["dependencies"]
    assert isinstance(deps, dict)
    assert all(d["ready"] for d in deps.values()), deps
    assert proc.returncode == 0, out
    assert "asinwatch stopped" in out
    assert "Traceback" not in out, out
    assert (tmp_path / "pg" / "PG_VERSION").exists()
    assert products == 12  # 4 own products, 2 competitors each
    assert latest >= 10  # a block page may quarantine one or two

    # The second run reuses the same data folder (the database survives).
    port2 = _free_port()
    proc2 = _start(tmp_path, port2)
    try:
        _wait_ready(port2, proc2)
    finally:
        out2 = _stop(proc2)
    assert proc2.returncode == 0, out2

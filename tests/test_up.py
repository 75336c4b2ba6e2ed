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
import pytest

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
            "ASINWATCH_UP__DEMO": "false",
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


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path, port)
    try:
        body = _wait_ready(port, proc)
    finally:
        out = _stop(proc)
    deps = body["dependencies"]
    assert isinstance(deps, dict)
    assert all(d["ready"] for d in deps.values()), deps
    assert proc.returncode == 0, out
    assert "asinwatch stopped" in out
    assert "Traceback" not in out
    assert (tmp_path / "pg" / "PG_VERSION").exists()

    # The second run reuses the same data folder (the database survives).
    port2 = _free_port()
    proc2 = _start(tmp_path, port2)
    try:
        _wait_ready(port2, proc2)
    finally:
        out2 = _stop(proc2)
    assert proc2.returncode == 0, out2

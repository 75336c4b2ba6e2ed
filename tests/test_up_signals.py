"""`asinwatch up` on configured PostgreSQL and Redis (the test database and key prefix): a busy
API port ends `up` at once with the API's one-line reason; SIGTERM and SIGINT stop everything,
the API included (its port is free again)."""

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

from tests.api.server import free_port

pytestmark = pytest.mark.xdist_group("embedded")

DEADLINE_S = 120.0  # guards against a hang only


def _start_up(tmp_path: Path, api_port: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "up.log"
    env = {
        **os.environ,
        "ASINWATCH_API__PORT": str(api_port),
        "ASINWATCH_SIMULATOR__PORT": str(free_port()),
        "ASINWATCH_UP__DEMO": "false",
        "ASINWATCH_DATA_DIR": str(tmp_path / "data"),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "asinwatch", "up"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, log


def test_up_with_a_busy_api_port_stops_with_the_reason(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, log = _start_up(tmp_path, port)
        try:
            proc.wait(timeout=DEADLINE_S)  # before the fix: the API hung, `up` waited on it
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    out = log.read_text(errors="replace")
    assert proc.returncode == 1, out
    assert f"cannot listen on 127.0.0.1:{port}: the address is in use" in out
    assert "up: api exited; stopping" in out and "asinwatch stopped" in out
    assert "Traceback" not in out, out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_up_and_its_api(db_url: str, tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    proc, log = _start_up(tmp_path, port)
    health = f"http://127.0.0.1:{port}/v1/health"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while b"asinwatch is up" not in log.read_bytes():
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        assert httpx.get(health, timeout=5).status_code == 200
        proc.send_signal(sig)
        proc.wait(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = log.read_text(errors="replace")
    assert proc.returncode == 0, out
    assert "asinwatch stopped" in out and "Traceback" not in out, out
    with pytest.raises(httpx.ConnectError):
        httpx.get(health, timeout=5)

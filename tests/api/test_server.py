"""`asinwatch api` as a process: a busy port fails at once with one line; SIGINT and SIGTERM end
it, also with a request stuck in flight and idle connections open; settings.api reaches the
server (request-head cap → 431, head read timeout → 408, trusted proxies, OpenAPI in
production)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from asinwatch.auth.jwt import issue_dev_token
from tests.api.server import free_port

pytestmark = pytest.mark.xdist_group("api")

DEADLINE_S = 60.0  # guards against a hang only; never a performance assertion
PROD_ENV = {
    "ASINWATCH_ENV": "production",
    "ASINWATCH_AUTH__JWT_SECRET": "x" * 40,
    "ASINWATCH_ALERTS__WEBHOOK_SECRET": "a-real-webhook-secret",
    "ASINWATCH_APIFY__TOKEN": "apify-token",
}


class ApiProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert self.proc.poll() is None, self.output()
            try:
                if httpx.get(self.base + "/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def raw(self, data: bytes) -> bytes:
        """Send raw bytes on a new connection; what the server answers until it closes."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE_S) as s:
            s.sendall(data)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"connection: close" not in chunks[0]:
                    break
            return b"".join(chunks)


def start_api(tmp_path: Path, port: int, env: dict[str, str] | None = None) -> ApiProcess:
    log = tmp_path / f"api-{port}.log"
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would block the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "asinwatch", "api", "--port", str(port)],
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ApiProcess(proc, port, log)


@contextmanager
def running_api(tmp_path: Path, env: dict[str, str] | None = None) -> Iterator[ApiProcess]:
    api = start_api(tmp_path, free_port(), env)
    try:
        api.wait_healthy()
        yield api
    finally:
        if api.proc.poll() is None:
            api.proc.kill()
        api.proc.wait()


def test_a_busy_port_exits_non_zero_at_once_with_one_line(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "asinwatch", "api", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,  # before the fix the process never ended
        )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"asinwatch: error: cannot listen on 127.0.0.1:{port}: the address is in use (another "
        "server runs there; stop it or choose another --port / ASINWATCH_API__PORT)"
    ], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_the_api_with_a_request_stuck_in_flight(
    db_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    env = {"ASINWATCH_API__GRACEFUL_SHUTDOWN_S": "1"}
    with running_api(tmp_path, env) as api:
        token = issue_dev_token("admin")
        idle = socket.create_connection(("127.0.0.1", api.port))
        stuck = socket.create_connection(("127.0.0.1", api.port))
        # The headers of a write, its body never sent: the endpoint waits on it forever.
        stuck.sendall(
            b"POST /v1/products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 100\r\n\r\n{"
        )
        try:
            assert httpx.get(api.base + "/v1/health", timeout=5).status_code == 200
            api.proc.send_signal(sig)
            api.proc.wait(timeout=DEADLINE_S)
        finally:
            idle.close()
            stuck.close()
        assert api.proc.returncode is not None
        assert "Traceback" not in api.output(), api.output()
        with pytest.raises(httpx.ConnectError):
            httpx.get(api.base + "/v1/health", timeout=5)


def test_request_head_limits_and_timeout(db_url: str, tmp_path: Path) -> None:
    env = {"ASINWATCH_API__MAX_HEADER_BYTES": "4096", "ASINWATCH_API__HEADER_TIMEOUT_S": "1"}
    with running_api(tmp_path, env) as api:
        ok = httpx.get(api.base + "/v1/health", headers={"X-Small": "a" * 1000}, timeout=5)
        assert ok.status_code == 200

        big = api.raw(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        assert big.startswith(b"HTTP/1.1 431 "), big[:200]
        assert b"application/problem+json" in big

        many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 60) for i in range(100))
        answer = api.raw(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]

        # A header line that never ends is refused too, before it is complete.
        endless = api.raw(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Endless: " + b"c" * 8000)
        assert endless.startswith(b"HTTP/1.1 431 "), endless[:200]

        # Headers sent too slowly: 408 after settings.api.header_timeout_s.
        slow = api.raw(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        assert slow.startswith(b"HTTP/1.1 408 "), slow[:200]

        # The server still serves after refusing those.
        assert httpx.get(api.base + "/v1/health", timeout=5).status_code == 200


def test_an_idle_keep_alive_connection_is_closed_by_the_server(db_url: str, tmp_path: Path) -> None:
    with running_api(tmp_path, {"ASINWATCH_API__KEEP_ALIVE_TIMEOUT_S": "1"}) as api:
        with socket.create_connection(("127.0.0.1", api.port), timeout=DEADLINE_S) as s:
            s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while chunk := s.recv(65536):  # ends when the server closes the idle connection
                received += chunk
        assert received.startswith(b"HTTP/1.1 200 "), received[:200]
        assert received.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    db_url: str, tmp_path: Path, trusted: bool
) -> None:
    """The per-IP rate limit keys on the client address the server believes: behind a trusted
    proxy (the peer, 127.0.0.1) each forwarded client has its own budget; from an untrusted
    peer ``X-Forwarded-For`` is ignored and every request counts against the peer."""
    env = {
        "ASINWATCH_API__TRUSTED_PROXIES": '["127.0.0.1"]' if trusted else "[]",
        "ASINWATCH_API__RATE_LIMIT_PER_IP_PER_MINUTE": "2",
    }
    suffix = os.urandom(2)
    with running_api(tmp_path, env) as api:
        statuses = [
            httpx.get(
                api.base + "/v1/products",
                headers={"X-Forwarded-For": f"203.0.{suffix[0]}.{suffix[1] ^ i}"},
                timeout=5,
            ).status_code
            for i in range(4)
        ]
        # X-Forwarded-Proto too: HSTS only when the proxy that says "https" is trusted.
        hsts = httpx.get(
            api.base + "/v1/health", headers={"X-Forwarded-Proto": "https"}, timeout=5
        ).headers.get("strict-transport-security")
    if trusted:
        assert statuses == [401] * 4  # each client within its own limit (and no token)
        assert hsts is not None and hsts.startswith("max-age=")
    else:
        assert 429 in statuses, statuses
        assert hsts is None


@pytest.mark.parametrize(
    ("enabled", "status"), [(None, 404), ("false", 404), ("true", 200)], ids=str
)
def test_openapi_and_docs_in_production(
    db_url: str, tmp_path: Path, enabled: str | None, status: int
) -> None:
    env = dict(PROD_ENV)
    if enabled is not None:
        env["ASINWATCH_API__OPENAPI_IN_PRODUCTION"] = enabled
    with running_api(tmp_path, env) as api:
        spec = httpx.get(api.base + "/v1/openapi.json", timeout=5)
        docs = httpx.get(api.base + "/docs", timeout=5)
        assert spec.status_code == status and docs.status_code == status
        if status == 200:
            assert spec.json()["info"]["title"] == "asinwatch"
        else:
            assert spec.headers["content-type"] == "application/problem+json"

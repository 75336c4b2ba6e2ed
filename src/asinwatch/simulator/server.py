"""Running the simulator in-process: uvicorn in a background thread on a free loopback port.

Tests and `asinwatch up` use `SimulatorServer`; the CLI (`asinwatch simulate`) serves in the
foreground with `serve()`.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from asinwatch.simulator.app import create_app
from asinwatch.simulator.clock import SimClock
from asinwatch.simulator.engine import SimConfig, Simulator

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _bind(host: str, port: int) -> socket.socket:
    if host not in _LOOPBACK:
        raise ValueError(f"the simulator only listens on loopback, not {host!r}")
    sock = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class SimulatorServer:
    """The simulator served on `host:port` (port 0 = any free port) from a daemon thread.

    >>> with SimulatorServer(SimConfig(block_rate=0)) as srv:
    ...     srv.base_url  # "http://127.0.0.1:<port>/v2", usable as ApifySettings.base_url
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        simulator: Simulator | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.simulator = simulator or Simulator(config)
        self.host = host
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The Apify API base, to put in `ApifySettings.base_url`."""
        return self.root_url + "/v2"

    @property
    def token(self) -> str:
        return self.simulator.config.token

    def start(self, timeout_s: float = 10.0) -> SimulatorServer:
        if self._thread is not None:
            return self
        self._sock = _bind(self.host, self._requested_port)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.simulator),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        sock = self._sock
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="asinwatch-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_simulator(config: SimConfig | None = None, *, port: int = 0) -> SimulatorServer:
    """Start a simulator in a background thread and return it (call `.stop()` when done)."""
    return SimulatorServer(config, port=port).start()


def serve(
    config: SimConfig, host: str = "127.0.0.1", port: int = 8765, *, clock: SimClock | None = None
) -> None:
    """Serve in the foreground until interrupted."""
    sock = _bind(host, port)
    server = uvicorn.Server(
        uvicorn.Config(create_app(Simulator(config, clock)), log_level="info", lifespan="off")
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()

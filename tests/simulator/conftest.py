"""Simulator fixtures: a fresh in-process server per test (cheap) so fault draws never leak."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from asinwatch.simulator import SimConfig, SimulatorServer

ServerFactory = Callable[..., SimulatorServer]


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    started: list[SimulatorServer] = []

    def factory(**config: Any) -> SimulatorServer:
        config.setdefault("block_rate", 0.0)
        srv = SimulatorServer(SimConfig(**config)).start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
def server(make_server: ServerFactory) -> SimulatorServer:
    return make_server()


@pytest.fixture
def http(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.root_url,
        headers={"Authorization": f"Bearer {server.token}"},
        trust_env=False,
    ) as client:
        yield client

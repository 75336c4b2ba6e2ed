"""Redis stopped during a load of reads: no 5xx, answers from the database, health degraded;
Redis back (same port): health ok and cache hits resume.

The API runs against its own redis-server, started here on a free port and killed mid-load.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis
from fastapi import FastAPI

from asinwatch.config import reset_settings_cache
from asinwatch.observability.metrics import CACHE_EVENTS
from tests.api.conftest import client_for, started_app
from tests.api.seed import COMP, OWN
from tests.api.server import free_port

REDIS_SERVER = "/usr/bin/redis-server"
ROUNDS = 12
CONCURRENCY = 8
KILL_AFTER_ROUND = 4


class RedisProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def own_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    monkeypatch.setenv("ASINWATCH_REDIS__URL", server.url)
    # Only Redis answers hits: the local layer would hide the outage for its TTL.
    monkeypatch.setenv("ASINWATCH_CACHE__LOCAL_TTL_S", "0")
    reset_settings_cache()
    yield server
    server.kill()


@pytest.fixture
async def outage_app(seeded: str, own_redis: RedisProcess) -> AsyncIterator[FastAPI]:
    async for app in started_app():
        yield app


def hits() -> float:
    return sum(
        CACHE_EVENTS.labels(kind, "hit")._value.get() for kind in ("summary", "metrics", "compare")
    )


@pytest.mark.xdist_group("api")
async def test_reads_survive_redis_going_away_and_coming_back(
    outage_app: FastAPI, own_redis: RedisProcess, auth: Callable[..., dict[str, str]]
) -> None:
    paths = [
        f"/v1/products/{OWN}",
        f"/v1/products/{COMP}",
        f"/v1/products/{OWN}/metrics?range=30d",
        f"/v1/competitions/{OWN}",
    ]
    headers = auth("viewer")
    statuses: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    async with client_for(outage_app) as client:

        async def read(i: int) -> None:
            resp = await client.get(paths[i % len(paths)], headers=headers)
            statuses[resp.status_code] += 1
            outcomes[resp.headers.get("x-cache", "")] += 1

        for round_no in range(ROUNDS):
            if round_no == KILL_AFTER_ROUND:
                own_redis.kill()
            await asyncio.gather(*(read(i) for i in range(CONCURRENCY)))

        assert set(statuses) == {200}, statuses  # never a 5xx, never a wrong 4xx
        assert outcomes["hit"] > 0 and outcomes["bypass"] > 0, outcomes
        assert outage_app.state.cache.healthy is False

        health = await client.get("/v1/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"
        assert health.json()["cache"] == {"healthy": False}

        own_redis.start()  # same port, empty
        health = await client.get("/v1/health")
        assert health.json()["status"] == "ok" and health.json()["cache"] == {"healthy": True}
        first = await client.get(paths[0], headers=headers)
        assert first.status_code == 200 and first.headers["x-cache"] == "miss"
        before = hits()
        again = await client.get(paths[0], headers=headers)
        assert again.headers["x-cache"] == "hit"
        assert hits() == before + 1

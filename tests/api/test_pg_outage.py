"""PostgreSQL stopped under a load of reads (cache off): 503 problem + Retry-After, never 500;
started again: 200. The API runs against its own cluster (tests/private_pg.py), never the
shared server. Also: which errors `retry_db` retries, on real connection errors."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from asinwatch.config import reset_settings_cache
from asinwatch.kit.db import database_url
from asinwatch.kit.unavailable import retry_db
from asinwatch.migrations import runner
from tests.api.conftest import client_for, started_app
from tests.api.seed import OWN, seed_standard
from tests.api.server import free_port
from tests.private_pg import PrivatePostgres

ATTEMPTS = 3
RETRY_AFTER = "7"
PATHS = [
    f"/v1/products/{OWN}",  # cache-first reads, the cache off: straight to the database
    f"/v1/products/{OWN}/metrics?range=30d",
    f"/v1/competitions/{OWN}",
    "/v1/products",  # reads through the request's session
    "/v1/alerts",
]


@pytest.fixture
def private_pg(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.init()
        runner.upgrade(pg.url)
        seed_standard(pg.url)
        monkeypatch.setenv("ASINWATCH_DATABASE__URL", pg.url)
        monkeypatch.setenv("ASINWATCH_API__READ_CACHE_ENABLED", "false")
        monkeypatch.setenv("ASINWATCH_API__DB_CONNECT_ATTEMPTS", str(ATTEMPTS))
        monkeypatch.setenv("ASINWATCH_API__DB_RETRY_BACKOFF_S", "0.05")
        monkeypatch.setenv("ASINWATCH_API__UNAVAILABLE_RETRY_AFTER_S", RETRY_AFTER)
        reset_settings_cache()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
async def pg_app(private_pg: PrivatePostgres, redis_client: object) -> AsyncIterator[FastAPI]:
    async for app in started_app():
        yield app


def _assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == RETRY_AFTER
    assert resp.headers["content-type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == 503 and body["type"].endswith("/dependency-unavailable")


@pytest.mark.xdist_group("api")
async def test_reads_answer_503_while_postgres_is_down_and_200_when_back(
    pg_app: FastAPI, private_pg: PrivatePostgres, auth: Callable[..., dict[str, str]]
) -> None:
    headers = auth("viewer")
    statuses: Counter[int] = Counter()
    async with client_for(pg_app) as client:

        async def read(i: int) -> httpx.Response:
            resp = await client.get(PATHS[i % len(PATHS)], headers=headers)
            statuses[resp.status_code] += 1
            return resp

        for resp in await asyncio.gather(*(read(i) for i in range(len(PATHS)))):
            assert resp.status_code == 200, resp.text

        # Reads keep coming while the server shuts down (sessions terminated mid-flight).
        stopping = asyncio.ensure_future(asyncio.to_thread(private_pg.stop))
        while not stopping.done():
            await asyncio.gather(*(read(i) for i in range(8)))
        await stopping

        for path in PATHS:
            _assert_unavailable(await client.get(path, headers=headers))
        assert 500 not in statuses and set(statuses) <= {200, 503}, statuses

        health = await client.get("/v1/health")
        assert health.status_code == 503 and health.json()["ready"] is False

        await asyncio.to_thread(private_pg.start)
        deadline = time.monotonic() + 60  # guards against a hang only
        while True:
            answers = [await read(i) for i in range(len(PATHS))]
            if all(r.status_code == 200 for r in answers):
                break
            assert time.monotonic() < deadline, [r.text for r in answers]
            await asyncio.sleep(0.1)
        assert 500 not in statuses, statuses


async def test_a_connection_error_is_retried_until_it_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASINWATCH_API__DB_CONNECT_ATTEMPTS", str(ATTEMPTS))
    monkeypatch.setenv("ASINWATCH_API__DB_RETRY_BACKOFF_S", "0.01")
    reset_settings_cache()
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    calls = 0

    async def read(fail_times: int) -> str:
        nonlocal calls
        calls += 1
        if calls <= fail_times:
            await psycopg.AsyncConnection.connect(closed, connect_timeout=5)  # refused
        return "ok"

    assert await retry_db(lambda: read(ATTEMPTS - 1)) == "ok"
    assert calls == ATTEMPTS

    calls = 0
    with pytest.raises(psycopg.OperationalError):
        await retry_db(lambda: read(ATTEMPTS))
    assert calls == ATTEMPTS  # then gives up: the caller answers 503


async def test_a_statement_timeout_is_not_retried(db_url: str) -> None:
    engine = create_async_engine(database_url(db_url))
    calls = 0

    async def slow_read() -> None:
        nonlocal calls
        calls += 1
        async with engine.connect() as conn:
            await conn.execute(text("SET statement_timeout = 10"))
            await conn.execute(text("SELECT pg_sleep(5)"))

    try:
        with pytest.raises(sa_exc.OperationalError) as caught:
            await retry_db(slow_read)
    finally:
        await engine.dispose()
    assert isinstance(caught.value.orig, psycopg.errors.QueryCanceled)
    assert calls == 1

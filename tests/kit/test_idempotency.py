"""Idempotency-Key in the real PostgreSQL: replay, 409 while in flight, 422 on a different
body, scoping per principal, release on failure, expiry."""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
import psycopg
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from asinwatch.auth.guards import idempotency, idempotency_required
from asinwatch.auth.jwt import issue_dev_token
from asinwatch.kit.idempotency import Idempotency, purge_expired
from tests.kit.conftest import build_app, client_for


class Work:
    def __init__(self) -> None:
        self.calls = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False


def make_app(work: Work) -> FastAPI:
    app = build_app()

    @app.post("/orders")
    async def create(
        request: Request, idem: Annotated[Idempotency, Depends(idempotency)]
    ) -> Response:
        async def handler() -> Response:
            work.calls += 1
            work.entered.set()
            await work.release.wait()
            if work.fail:
                raise RuntimeError("downstream broke")
            body = await request.json()
            return JSONResponse(
                {"order": work.calls, "echo": body}, status_code=201, headers={"Location": "/o/1"}
            )

        return await idem.run(handler)

    @app.post("/strict")
    async def strict(idem: Annotated[Idempotency, Depends(idempotency_required)]) -> Response:
        return await idem.run(lambda: _ok())

    return app


async def _ok() -> Response:
    return JSONResponse({"ok": True})


def auth(sub: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {issue_dev_token('operator', sub=sub)}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


@pytest.fixture
async def setup(clean_db: str) -> tuple[Work, httpx.AsyncClient]:
    work = Work()
    return work, client_for(make_app(work))


async def test_replay_returns_the_stored_response(setup: tuple[Work, httpx.AsyncClient]) -> None:
    work, c = setup
    async with c:
        first = await c.post("/orders", json={"asin": "B0TEST0001"}, headers=auth("u1", "k-1"))
        again = await c.post("/orders", json={"asin": "B0TEST0001"}, headers=auth("u1", "k-1"))
    assert first.status_code == 201 and again.status_code == 201
    assert again.content == first.content
    assert again.headers["location"] == "/o/1"
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert work.calls == 1


async def test_same_key_different_body_is_422(setup: tuple[Work, httpx.AsyncClient]) -> None:
    work, c = setup
    async with c:
        await c.post("/orders", json={"asin": "B0TEST0001"}, headers=auth("u1", "k-2"))
        other = await c.post("/orders", json={"asin": "B0TEST0002"}, headers=auth("u1", "k-2"))
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert work.calls == 1


async def test_keys_are_scoped_to_the_principal(setup: tuple[Work, httpx.AsyncClient]) -> None:
    work, c = setup
    async with c:
        a = await c.post("/orders", json={"x": 1}, headers=auth("alice", "shared"))
        b = await c.post("/orders", json={"x": 1}, headers=auth("bob", "shared"))
    assert a.json()["order"] == 1 and b.json()["order"] == 2
    assert work.calls == 2
    assert "idempotent-replayed" not in b.headers


async def test_duplicate_while_in_flight_is_409(setup: tuple[Work, httpx.AsyncClient]) -> None:
    work, c = setup
    work.release.clear()
    async with c:
        first = asyncio.create_task(c.post("/orders", json={"x": 1}, headers=auth("u1", "k-3")))
        await asyncio.wait_for(work.entered.wait(), timeout=30)
        dup = await c.post("/orders", json={"x": 1}, headers=auth("u1", "k-3"))
        work.release.set()
        done = await first
        after = await c.post("/orders", json={"x": 1}, headers=auth("u1", "k-3"))
    assert dup.status_code == 409
    assert dup.headers["retry-after"] == "1"
    assert dup.json()["type"].endswith("/idempotency-in-flight")
    assert done.status_code == 201
    assert after.status_code == 201 and after.headers["idempotent-replayed"] == "true"
    assert work.calls == 1


async def test_failure_releases_the_key(setup: tuple[Work, httpx.AsyncClient]) -> None:
    work, c = setup
    work.fail = True
    async with c:
        failed = await c.post("/orders", json={"x": 1}, headers=auth("u1", "k-4"))
        work.fail = False
        retried = await c.post("/orders", json={"x": 1}, headers=auth("u1", "k-4"))
    assert failed.status_code == 500
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert work.calls == 2


async def test_expired_key_runs_again_and_is_purged(
    setup: tuple[Work, httpx.AsyncClient], clean_db: str
) -> None:
    work, c = setup
    async with c:
        await c.post("/orders", json={"x": 1}, headers=auth("u1", "k-5"))
        with psycopg.connect(clean_db, autocommit=True) as conn:
            conn.execute(
                "UPDATE core.idempotency_keys SET expires_at = now() - interval '1 minute'"
            )
        again = await c.post("/orders", json={"x": 1}, headers=auth("u1", "k-5"))
        assert again.status_code == 201 and "idempotent-replayed" not in again.headers
        assert work.calls == 2
        await c.post("/orders", json={"x": 1}, headers=auth("u1", "k-6"))
    with psycopg.connect(clean_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE core.idempotency_keys SET expires_at = now() - interval '1 minute' "
            "WHERE key = 'k-6'"
        )
    assert await purge_expired() == 1
    with psycopg.connect(clean_db) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM core.idempotency_keys")]
    assert keys == ["k-5"]


async def test_without_a_key_every_call_runs(setup: tuple[Work, httpx.AsyncClient]) -> None:
    work, c = setup
    async with c:
        await c.post("/orders", json={"x": 1}, headers=auth("u1"))
        await c.post("/orders", json={"x": 1}, headers=auth("u1"))
    assert work.calls == 2


async def test_bad_or_missing_key(setup: tuple[Work, httpx.AsyncClient]) -> None:
    work, c = setup
    async with c:
        too_long = await c.post("/orders", json={}, headers=auth("u1", "k" * 256))
        missing = await c.post("/strict", headers=auth("u1"))
        present = await c.post("/strict", headers=auth("u1", "s-1"))
        unauthenticated = await c.post("/strict", headers={"Idempotency-Key": "s-2"})
    assert too_long.status_code == 400
    assert too_long.json()["type"].endswith("/invalid-idempotency-key")
    assert missing.status_code == 400
    assert missing.json()["type"].endswith("/idempotency-key-required")
    assert present.status_code == 200
    assert unauthenticated.status_code == 401
    assert work.calls == 0

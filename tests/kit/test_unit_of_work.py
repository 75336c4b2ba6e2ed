"""The unit of work on the real database and Redis: a commit flushes the queued cache keys
and then the hooks, in order; an exception rolls the work back and drops them all; a failing
hook cannot undo the commit, the other hooks still run and its error is raised afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis

from asinwatch.catalog.cache_keys import summary_key
from asinwatch.jobs import service as jobs
from asinwatch.kit.cache import Cache
from asinwatch.kit.db import async_session_scope
from asinwatch.kit.redis_client import prefixed
from asinwatch.kit.unit_of_work import unit_of_work


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[Cache]:
    c = Cache(aioredis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2))
    yield c
    await c.aclose()


async def job_status(job_id: object) -> str | None:
    async with async_session_scope() as session:
        job = await jobs.get_job_async(session, job_id)  # type: ignore[arg-type]
    return None if job is None else job.status


async def test_commit_then_keys_then_hooks_in_order(
    clean_db: str, cache: Cache, redis_client: redis.Redis
) -> None:
    key = summary_key("amazon.com", "B0UOWKEY01")
    redis_client.set(prefixed(key), b"cached")
    seen: list[str] = []

    async with unit_of_work(cache) as uow:
        job = await jobs.create_job_async(uow.session, "test.uow", {})

        async def first() -> None:
            # the hook runs after the commit: another session already sees the row
            seen.append(f"first:{await job_status(job.id)}:{redis_client.exists(prefixed(key))}")

        async def second() -> None:
            seen.append("second")

        uow.invalidate(key, key)
        uow.after_commit(first)
        uow.after_commit(second)
        assert uow.pending == ([key], 2)
        assert await job_status(job.id) is None  # not committed yet
    assert seen == ["first:queued:0", "second"]
    assert uow.pending == ([], 0)


async def test_an_exception_rolls_back_and_drops_everything(
    clean_db: str, cache: Cache, redis_client: redis.Redis
) -> None:
    key = summary_key("amazon.com", "B0UOWKEY02")
    redis_client.set(prefixed(key), b"cached")
    ran: list[str] = []

    async def hook() -> None:
        ran.append("hook")

    with pytest.raises(LookupError):
        async with unit_of_work(cache) as uow:
            job = await jobs.create_job_async(uow.session, "test.uow", {})
            uow.invalidate(key)
            uow.after_commit(hook)
            raise LookupError("the request failed")
    assert ran == []
    assert await job_status(job.id) is None
    assert redis_client.get(prefixed(key)) == b"cached"


async def test_a_failing_hook_keeps_the_commit_and_the_other_hooks(clean_db: str) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise ConnectionError("queue down")

    async def after() -> None:
        ran.append("after")

    with pytest.raises(ConnectionError, match="queue down"):
        async with unit_of_work() as uow:
            job = await jobs.create_job_async(uow.session, "test.uow", {})
            uow.after_commit(broken)
            uow.after_commit(after)
    assert ran == ["after"]
    assert await job_status(job.id) == "queued"

"""The async service API the REST layer calls: start (idempotent by job id), enqueue after
commit (once), get and list runs, clear errors for bad requests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from asinwatch.ingestion import service
from asinwatch.kit.db import async_session_scope
from asinwatch.simulator import sample_asins
from tests.ingestion.conftest import track, truncate

pytestmark = pytest.mark.xdist_group("celery")


@pytest.fixture
async def empty_db(db_url: str, redis_url: str) -> AsyncIterator[str]:
    from asinwatch.kit.db import dispose_async_engines
    from asinwatch.worker.celery_app import celery_app

    truncate(db_url, worker_running=False)
    yield db_url
    celery_app.control.purge()  # no worker runs in this module: drop what was enqueued
    await dispose_async_engines()


async def test_start_commit_enqueue_get_and_list(empty_db: str) -> None:
    asins = sample_asins(41, 130)
    async with async_session_scope() as session:
        run = await service.start_run(
            session,
            marketplace="amazon.de",
            asins=asins,
            all_tracked=False,
            trigger="api",
            job_id="api:key-1",
        )
    assert (run.status, run.asins_requested, run.batches_total, run.marketplace) == (
        "queued",
        130,
        3,
        "amazon.de",
    )
    assert await service.enqueue_run(run.id)
    assert not await service.enqueue_run(run.id)  # at most one dispatch per run

    async with async_session_scope() as session:
        again = await service.start_run(
            session,
            marketplace="amazon.de",
            asins=asins[:1],
            all_tracked=False,
            trigger="api",
            job_id="api:key-1",
        )
        fetched = await service.get_run(session, run.id)
        batches = await service.list_batches(session, run.id)
    assert again.id == run.id and again.asins_requested == 130
    assert fetched is not None and fetched.job_id == "api:key-1"
    assert [b.batch_no for b in batches] == [0, 1, 2]
    assert [len(b.asins) for b in batches] == [50, 50, 30]

    async with async_session_scope() as session:
        second = await service.start_run(
            session,
            marketplace=None,
            asins=asins[:5],
            all_tracked=False,
            trigger="api",
            job_id=None,
        )
    async with async_session_scope() as session:
        listed = await service.list_runs(session, limit=10)
        older = await service.list_runs(session, limit=10, before=listed[0].created_at)
    assert [r.id for r in listed] == [second.id, run.id]
    assert [r.id for r in older] == [run.id]
    assert second.marketplace == "amazon.com" and second.job_id.startswith("api:")


async def test_bad_requests_are_clear_errors(empty_db: str) -> None:
    async with async_session_scope() as session:
        with pytest.raises(service.NothingToIngestError, match="not both"):
            await service.start_run(
                session,
                marketplace=None,
                asins=["B0AAAAAAAA"],
                all_tracked=True,
                trigger="api",
                job_id=None,
            )
        with pytest.raises(service.NothingToIngestError, match="no ASIN"):
            await service.start_run(
                session,
                marketplace=None,
                asins=None,
                all_tracked=True,
                trigger="api",
                job_id=None,
            )
        with pytest.raises(ValueError, match="invalid ASIN"):
            await service.start_run(
                session,
                marketplace=None,
                asins=["nope"],
                all_tracked=False,
                trigger="api",
                job_id=None,
            )
        with pytest.raises(ValueError, match="unknown marketplace"):
            await service.start_run(
                session,
                marketplace="amazon.xx",
                asins=["B0AAAAAAAA"],
                all_tracked=False,
                trigger="api",
                job_id=None,
            )


async def test_all_tracked_takes_only_active_products(empty_db: str) -> None:
    import psycopg

    asins = sample_asins(42, 12)
    track(empty_db, "amazon.com", asins)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            "UPDATE core.products SET tracking_state = 'paused' WHERE asin = ANY(%s)",
            (asins[:2],),
        )
    async with async_session_scope() as session:
        run = await service.start_run(
            session,
            marketplace="amazon.com",
            asins=None,
            all_tracked=True,
            trigger="api",
            job_id=None,
        )
        batches = await service.list_batches(session, run.id)
    assert run.asins_requested == 10
    assert sorted(a for b in batches for a in b.asins) == sorted(asins[2:])


async def test_schemas_serialise_runs_and_validate_requests(empty_db: str) -> None:
    from pydantic import ValidationError

    from asinwatch.ingestion.schemas import IngestBatchOut, IngestRunOut, StartRunIn

    body = StartRunIn(marketplace="www.Amazon.de", asins=[" b0aaaaaaaa "], job_id="k")
    assert body.marketplace == "amazon.de" and body.asins == ["B0AAAAAAAA"]
    with pytest.raises(ValidationError):
        StartRunIn(asins=["nope"])
    with pytest.raises(ValidationError):
        StartRunIn(asins=["B0AAAAAAAA"], unknown_field=1)  # type: ignore[call-arg]
    async with async_session_scope() as session:
        run = await service.start_run(
            session,
            marketplace=body.marketplace,
            asins=body.asins,
            all_tracked=False,
            trigger="api",
            job_id=body.job_id,
        )
        batches = await service.list_batches(session, run.id)
    out = IngestRunOut.model_validate(run).model_dump(mode="json")
    assert out["job_id"] == "k" and out["status"] == "queued" and out["asins_requested"] == 1
    assert IngestBatchOut.model_validate(batches[0]).asins == ["B0AAAAAAAA"]

"""Competitive reports and recommendations on the real database: versions only when the
inputs change, files in the local object store, cache invalidation, and the refresh job."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from asinwatch.jobs import service as jobs
from asinwatch.kit.cache import Cache
from asinwatch.kit.db import async_session_scope, session_scope
from asinwatch.kit.readthrough import invalidate
from asinwatch.kit.redis_client import prefixed
from asinwatch.recommendations import service as recs
from asinwatch.recommendations.cache_keys import recommendation_key
from asinwatch.recommendations.rules import RULESET_VERSION
from asinwatch.recommendations.tasks import refresh_for_run, run_refresh_job
from asinwatch.reports import service as reports
from asinwatch.reports.cache_keys import report_key
from asinwatch.reports.storage import object_store
from asinwatch.reports.tasks import gen_competitive_report
from tests.analytics_integration.helpers import COMP_A, COMP_B, MKT, OWN, ingest, item, seed


def day_of_data(day: int, comp_a_price: float = 18.0) -> uuid.UUID:
    return ingest(
        day,
        [
            item(OWN, 20.0, reviews=100),
            item(COMP_A, comp_a_price, stars=4.1, reviews=900, bsr=3000),
            item(COMP_B, 25.0, stars=4.7, reviews=300, bsr=9000),
        ],
    )


def setup_catalogue() -> None:
    seed({OWN: True, COMP_A: False, COMP_B: False}, {OWN: [COMP_A, COMP_B]})


def test_report_versions_files_and_cache(clean_db: str, redis_client: redis.Redis) -> None:
    setup_catalogue()
    run = day_of_data(0)
    with session_scope() as s:
        first = reports.generate_competitive_report(s, MKT, OWN)
    assert first.created and first.version == 1
    store = object_store()
    md = store.get(reports.object_key(MKT, OWN, 1, "md")).decode()
    doc = json.loads(store.get(reports.object_key(MKT, OWN, 1, "json")))
    assert md.startswith(f"# Competitive report: {OWN}") and f"## vs {COMP_A}" in md
    assert doc["version"] == 1 and doc["inputs_hash"] == first.inputs_hash
    assert [c["asin"] for c in doc["competitors"]] == [COMP_A, COMP_B]
    assert doc["summary"]["price_position"] == {"rank": 2, "of": 3, "cheaper_competitors": 1}
    assert doc["narrative"] is None  # the LLM is off by default; the report stands alone

    with session_scope() as s:  # same inputs: same version
        same = reports.generate_competitive_report(s, MKT, OWN)
    assert not same.created and same.version == 1

    day_of_data(1, comp_a_price=15.0)  # a competitor's price moved
    redis_client.set(prefixed(report_key(MKT, OWN)), b"stale")
    result = gen_competitive_report(str(run))  # the task: the run touched OWN and its rivals
    assert result["created"] == [OWN]
    assert redis_client.get(prefixed(report_key(MKT, OWN))) is None
    assert store.exists(reports.object_key(MKT, OWN, 2, "md"))
    assert gen_competitive_report(marketplace=MKT, asin=OWN)["unchanged"] == [OWN]

    with session_scope() as s, pytest.raises(reports.ReportTargetError, match="competitor"):
        reports.generate_competitive_report(s, MKT, COMP_A)


async def test_report_reads(clean_db: str) -> None:
    setup_catalogue()
    day_of_data(0)
    with session_scope() as s:
        reports.generate_competitive_report(s, MKT, OWN)
    day_of_data(1, comp_a_price=15.0)
    with session_scope() as s:
        reports.generate_competitive_report(s, MKT, OWN)
    async with async_session_scope() as session:
        latest = await reports.get_report(session, MKT, OWN)
        first = await reports.get_report(session, MKT, OWN, version=1)
        versions = await reports.list_report_versions(session, MKT, OWN)
        older = await reports.list_report_versions(session, MKT, OWN, before_version=2)
        missing = await reports.get_report(session, MKT, OWN, version=9)
    assert latest is not None and latest.version == 2
    assert first is not None and first.inputs_hash != latest.inputs_hash
    assert [v.version for v in versions] == [2, 1] and [v.version for v in older] == [1]
    assert missing is None


def test_recommendation_versions_and_refresh_job(clean_db: str, redis_client: redis.Redis) -> None:
    setup_catalogue()
    run = day_of_data(0)
    assert refresh_for_run(str(run))["created"] == [OWN]  # competitors get none
    with session_scope() as s:
        again = recs.refresh_product(s, MKT, OWN)
    assert not again.created and again.version == 1 and again.ruleset_version == RULESET_VERSION

    with session_scope() as s:
        job = jobs.create_job(s, "recommendations.refresh", {"marketplace": MKT, "asin": OWN})
    assert job.status == "queued"
    day_of_data(1, comp_a_price=15.0)
    redis_client.set(prefixed(recommendation_key(MKT, OWN)), b"stale")
    result = run_refresh_job(job.id, MKT, OWN)
    assert result is not None and result["version"] == 2 and result["created"] is True
    with session_scope() as s:
        done = jobs.get_job(s, job.id)
    assert done is not None and done.status == "succeeded" and done.attempts == 1
    assert done.result == result and done.finished_at is not None
    assert redis_client.get(prefixed(recommendation_key(MKT, OWN))) is None
    assert run_refresh_job(job.id, MKT, OWN) is None  # a finished job is not redone

    with session_scope() as s:
        bad = jobs.create_job(s, "recommendations.refresh", {"asin": "B0NOPE0000"})
    assert run_refresh_job(bad.id, MKT, "B0NOPE0000") is None
    with session_scope() as s:
        failed = jobs.get_job(s, bad.id)
    assert failed is not None and failed.status == "failed" and "not known" in (failed.error or "")


async def test_latest_recommendations_read(clean_db: str) -> None:
    setup_catalogue()
    day_of_data(0)
    with session_scope() as s:
        recs.refresh_product(s, MKT, OWN)
    async with async_session_scope() as session:
        latest = await recs.get_latest(session, MKT, OWN)
        none = await recs.get_latest(session, MKT, COMP_A)
        job = await jobs.create_job_async(session, "recommendations.refresh", {"asin": OWN})
    assert none is None
    assert latest is not None and latest.version == 1
    rules = {i["rule_id"]: i for i in latest.items}
    # 4 bullets, 4 images, no A+, 300-char description: the listing rules fire with evidence
    assert rules["bullets.count"]["evidence"] == {"bullets": 4, "minimum": 5, "missing": 1}
    assert rules["aplus.missing"]["priority"] == 2
    assert all(i["ruleset_version"] == RULESET_VERSION for i in latest.items)
    async with async_session_scope() as session:
        fetched = await jobs.get_job_async(session, job.id)
    assert fetched is not None and fetched.status == "queued"


async def test_latest_reads_through_the_cache_without_http(clean_db: str, redis_url: str) -> None:
    """The services' cached reads (what the routers serve) need no request: a miss loads the
    JSON of the typed read, a second read hits, a write's invalidation shows the new version."""
    setup_catalogue()
    day_of_data(0)
    with session_scope() as s:
        reports.generate_competitive_report(s, MKT, OWN)
        recs.refresh_product(s, MKT, OWN)
    cache = Cache(aioredis.Redis.from_url(redis_url))
    try:
        first = await reports.read_latest_report(cache, MKT, OWN)
        again = await reports.read_latest_report(cache, MKT, OWN)
        assert (first.outcome, again.outcome) == ("miss", "hit")
        assert first.value["version"] == 1 and "stale_at" not in first.value
        async with async_session_scope() as session:
            typed = await reports.get_report(session, MKT, OWN)
        assert typed is not None
        assert first.value == typed.model_dump(mode="json", exclude={"stale_at"})

        day_of_data(1, comp_a_price=15.0)
        with session_scope() as s:
            reports.generate_competitive_report(s, MKT, OWN)
        assert (await reports.read_latest_report(cache, MKT, OWN)).value["version"] == 1
        await invalidate(cache, report_key(MKT, OWN))
        assert (await reports.read_latest_report(cache, MKT, OWN)).value["version"] == 2

        rec = await recs.read_latest(cache, MKT, OWN)
        none = await recs.read_latest(None, MKT, COMP_A)
        assert rec.outcome == "miss" and rec.value["version"] == 1
        assert (none.outcome, none.value) == ("off", None)
    finally:
        await cache.aclose()

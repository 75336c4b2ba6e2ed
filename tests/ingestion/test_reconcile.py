"""The reconciler, `ingest runs / resume / replay` and slot leases, without a worker.

Messages the reconciler sends land in this run's own broker queue (no worker consumes it
here), so the test reads exactly what was re-sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from asinwatch.cli import main
from asinwatch.config import get_settings
from asinwatch.ingestion import chain_progress, flows, pipeline, reconcile, repository
from asinwatch.ingestion.ratelimit import BatchSlots
from asinwatch.kit.db import session_scope
from asinwatch.simulator import sample_asins
from asinwatch.worker.celery_app import celery_app
from tests.ingestion.test_promotion import fetch, items_for, new_run, stage_and_promote


@pytest.fixture
def queue(clean_db: str, redis_client: redis.Redis) -> Iterator[Any]:
    """A function returning the (task, args) sent to this run's broker queue so far."""
    key = get_settings().redis.key_prefix + "celery:celery"
    redis_client.delete(key)

    def sent() -> list[tuple[str, list[Any]]]:
        out = []
        for raw in reversed(redis_client.lrange(key, 0, -1)):
            msg = json.loads(raw)
            args = json.loads(base64.b64decode(msg["body"]))[0]
            out.append((msg["headers"]["task"], args))
        return out

    yield sent
    redis_client.delete(key)


def sql(db_url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def running_run(db_url: str, n_asins: int) -> uuid.UUID:
    run_id = new_run(sample_asins(uuid.uuid4().int % 1000, n_asins))
    sql(
        db_url,
        "UPDATE core.ingest_runs SET status = 'running', started_at = now() - '1h'::interval,"
        " created_at = now() - '1h'::interval",
    )
    return run_id


def test_only_quiet_batches_no_live_worker_holds_are_resent(clean_db: str, queue: Any) -> None:
    run_id = running_run(clean_db, 150)  # batches 0, 1, 2
    sql(
        clean_db,
        "UPDATE core.ingest_batches SET status = 'fetching', started_at = now() - '1h'::interval,"
        " heartbeat_at = CASE batch_no WHEN 0 THEN now() ELSE now() - '1h'::interval END"
        " WHERE run_id = %s",
        run_id,
    )
    # batch 0: a fresh heartbeat; batch 1: quiet but a live worker holds its lock;
    # batch 2: quiet and unheld -> lost.
    with repository.batch_lock(run_id, 1) as got:
        assert got
        done = reconcile.reconcile()
        assert done.batches == [(run_id, 2)]
        assert queue() == [("ingestion.fetch_product_details", [str(run_id), 2])]
        # It was just re-sent: the next sweep leaves it alone until it is quiet again.
        assert reconcile.reconcile().batches == []
    # The holder of batch 1 dies (its lock goes with its connection): batch 1 is lost now.
    assert reconcile.reconcile().batches == [(run_id, 1)]
    # A starting worker re-sends every unheld unfinished batch at once.
    assert sorted(reconcile.reconcile(on_start=True).batches) == [(run_id, n) for n in (0, 1, 2)]


def test_a_run_whose_batches_are_all_final_is_finalised_and_its_chain_sent(
    clean_db: str, queue: Any
) -> None:
    asins = sample_asins(77, 5)
    run_id = new_run(asins)
    stage_and_promote(run_id, 0, [fetch(items_for(asins))])  # the worker died right here
    assert sql(clean_db, "SELECT status FROM core.ingest_runs") == [("queued",)]

    done = reconcile.reconcile()
    assert done.finalised == [run_id]
    assert sql(clean_db, "SELECT status FROM core.ingest_runs") == [("succeeded",)]
    assert queue() == [(flows.STEP_TASK, [str(run_id), "kpis"])]
    assert reconcile.reconcile().total == 0  # nothing twice


def test_a_lost_step_is_resent_and_a_done_step_never_runs_again(
    clean_db: str, queue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run(sample_asins(78, 3))
    with session_scope() as session:
        chain_progress.record_chain(session, run_id, list(flows.STEPS))
    flows.send_due_steps(run_id)
    assert queue() == [(flows.STEP_TASK, [str(run_id), "kpis"])]
    assert reconcile.reconcile().steps == []  # just sent: not lost

    calls: list[str] = []
    for name in (flows.KPI_TASK, flows.DETECT_TASK):
        monkeypatch.setitem(celery_app.tasks, name, lambda rid, _n=name: calls.append(_n))
    assert flows.run_step(run_id, "kpis") == "ran"
    assert flows.run_step(run_id, "kpis") == "done"  # a duplicate delivery
    assert calls == [flows.KPI_TASK]
    assert queue()[-1] == (flows.STEP_TASK, [str(run_id), "detect"])

    # The detect message is lost (broker restart): once quiet, the reconciler re-sends it.
    sql(
        clean_db,
        "UPDATE core.ingest_run_analytics SET sent_at = now() - '1h'::interval"
        " WHERE step = 'detect'",
    )
    assert reconcile.reconcile().steps == [(run_id, "detect")]
    assert flows.run_step(run_id, "detect") == "ran"
    assert flows.run_step(run_id, "detect") == "done"
    assert calls == [flows.KPI_TASK, flows.DETECT_TASK]
    runs = dict(sql(clean_db, "SELECT step, runs FROM core.ingest_run_analytics"))
    assert runs == {"kpis": 1, "detect": 1, "report": 0, "recommend": 0}
    assert {args[1] for _, args in queue()[-2:]} == {"report", "recommend"}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()  # drop earlier log lines
    try:
        main(list(args))
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr()
    out = capsys.readouterr().out
    return "\n".join(line for line in out.splitlines() if "[info" not in line)


def test_ingest_runs_shows_a_stalled_run_and_resume_re_enqueues_it(
    clean_db: str, queue: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = running_run(clean_db, 100)  # batches 0 and 1, never started
    sql(clean_db, "UPDATE core.ingest_batches SET enqueued_at = now() - '1h'::interval")
    out = cli(capsys, "ingest", "runs")
    header, row = out.splitlines()[:2]
    assert header.endswith("\tage_s\tstalled")
    assert str(run_id) in row
    assert "yes: 2 open batch(es) (2 never started), no heartbeat or message for" in row

    out = cli(capsys, "ingest", "resume", str(run_id))
    assert f"run {run_id} resumed: re-enqueued batch(es) 0, 1" in out
    assert [a for _, a in queue()] == [[str(run_id), 0], [str(run_id), 1]]
    assert cli(capsys, "ingest", "runs").splitlines()[1].endswith("\tno")


def test_resume_finalises_a_run_whose_batches_are_all_final(
    clean_db: str, queue: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    asins = sample_asins(79, 4)
    run_id = new_run(asins)
    sql(clean_db, "UPDATE core.ingest_runs SET status = 'running'")
    stage_and_promote(run_id, 0, [fetch(items_for(asins))])
    assert "every batch final, run not finalised" in cli(capsys, "ingest", "runs")
    assert f"run {run_id} finalised: succeeded" in cli(capsys, "ingest", "resume", str(run_id))
    assert "nothing to resume" in cli(capsys, "ingest", "resume", str(run_id))


def test_the_same_job_id_resumes_the_unfinished_run(
    clean_db: str, queue: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    asins = sample_asins(80, 3)
    run_id = new_run(asins, job="nightly-1")
    sql(clean_db, "UPDATE core.ingest_runs SET status = 'running'")
    out = cli(capsys, "ingest", "run", "--asins", ",".join(asins), "--job-id", "nightly-1")
    assert f"run {run_id} resumed: job nightly-1" in out
    assert queue() == [("ingestion.fetch_product_details", [str(run_id), 0])]


def test_replay_also_covers_batches_that_never_started(
    clean_db: str, queue: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = running_run(clean_db, 100)
    sql(clean_db, "UPDATE core.ingest_batches SET status = 'pending'")
    out = cli(capsys, "ingest", "replay", str(run_id))
    assert "re-enqueued 2 never fetched" in out
    assert [a for _, a in queue()] == [[str(run_id), 0], [str(run_id), 1]]


def test_a_dead_workers_slot_frees_after_its_lease_and_a_live_one_keeps_it(
    clean_db: str, redis_client: redis.Redis
) -> None:
    import redis.asyncio as aioredis

    s = get_settings()
    run_id = running_run(clean_db, 10)
    with session_scope() as session:
        claim = repository.claim_batch(session, run_id, 0, 5)
    assert claim is not None

    async def scenario() -> tuple[bool, bool, bool]:
        client = aioredis.Redis.from_url(s.redis.url)
        slots = BatchSlots(client, s.redis.key_prefix + f"{uuid.uuid4().hex}:", 1, lease_s=0.5)
        try:
            alive = await slots.acquire()
            beat = asyncio.create_task(pipeline._heartbeat(claim, slots, alive, 0.1))
            await asyncio.sleep(1.5)  # three leases: the heartbeat kept it
            kept = not await slots.try_acquire("other")
            beat.cancel()  # the worker dies: nobody renews any more
            await slots.acquire("other", poll_s=0.05)  # frees within a lease
            freed = await slots.in_use() == 1
            hb = sql(
                clean_db, "SELECT heartbeat_at > now() - '1s'::interval FROM core.ingest_batches"
            )
            return kept, freed, bool(hb[0][0])
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == (True, True, True)

"""Upstream spend through the pipeline: batches run in-process (pipeline.run_batch, the task's
body) against the simulator, with the real database and Redis. Runs started upstream are
counted on the simulator."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from asinwatch.config import reset_settings_cache
from asinwatch.ingestion import pipeline, repository, service, spend
from asinwatch.kit.db import session_scope
from asinwatch.simulator import SimulatorServer, sample_asins
from tests.ingestion.conftest import track, truncate

MKT = "amazon.com"
TASK = "ingestion.fetch_product_details"


@pytest.fixture
def sim(simulator: SimulatorServer, pipeline_db: str) -> Iterator[SimulatorServer]:
    truncate(pipeline_db, worker_running=False)
    defaults = {
        k: getattr(simulator.simulator.config, k)
        for k in (
            "start_fault_after_create",
            "poll_not_found",
            "pad_items_to",
            "cost_override_usd",
            "fail_next_runs",
            "fail_runs_of",
            "run_duration_s",
        )
    }
    yield simulator
    simulator.simulator.configure(**defaults)


def start(asins: list[str]) -> uuid.UUID:
    with session_scope() as session:
        run, _ = service.prepare_run(
            session, marketplace=MKT, asins=asins, all_tracked=False, trigger="manual", job_id=None
        )
    return run.id


def rows(db_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def run_status(db_url: str, run_id: uuid.UUID) -> tuple[Any, ...]:
    return rows(
        db_url,
        "SELECT status, asins_succeeded, asins_failed, cost_usd, params"
        " FROM core.ingest_runs WHERE id = %s",
        run_id,
    )[0]


def test_ambiguous_start_and_polling_404s_cost_no_extra_run(
    sim: SimulatorServer, pipeline_db: str
) -> None:
    asins = sample_asins(61, 10)
    track(pipeline_db, MKT, asins)
    sim.simulator.configure(start_fault_after_create=2, poll_not_found=3, run_duration_s=0.3)
    before = sim.simulator.run_count
    run_id = start(asins)
    assert pipeline.run_batch(run_id, 0, TASK).status == "promoted"
    status, succeeded, failed, *_ = run_status(pipeline_db, run_id)
    assert (status, succeeded, failed) == ("succeeded", 10, 0)
    assert sim.simulator.run_count - before == 2  # one product run, one reviews run
    ((ids,),) = rows(
        pipeline_db, "SELECT upstream_run_ids FROM core.ingest_batches WHERE run_id = %s", run_id
    )
    assert len(ids) == 2 == len(set(ids))  # recorded at start, not duplicated at staging


def test_a_batch_retry_reuses_the_run_that_succeeded(
    sim: SimulatorServer, pipeline_db: str
) -> None:
    asins = sample_asins(62, 8)
    track(pipeline_db, MKT, asins)
    sim.simulator.configure(fail_next_runs=1, fail_runs_of="reviews")
    before = sim.simulator.run_count
    run_id = start(asins)
    first = pipeline.run_batch(run_id, 0, TASK)
    assert first.status == "retry" and "FAILED" in (first.error or "")
    assert sim.simulator.run_count - before == 2
    assert pipeline.run_batch(run_id, 0, TASK).status == "promoted"
    # The product run that succeeded was reused; only the failed reviews run was replaced.
    assert sim.simulator.run_count - before == 3
    ((ids,),) = rows(
        pipeline_db, "SELECT upstream_run_ids FROM core.ingest_batches WHERE run_id = %s", run_id
    )
    assert len(ids) == 3
    status, succeeded, *_, params = run_status(pipeline_db, run_id)
    assert (status, succeeded) == ("succeeded", 8)
    assert any(n["guard"] == "run_reused" for n in params["upstream_notes"])


def test_absurd_cost_and_oversized_dataset_are_noted_not_fatal(
    sim: SimulatorServer, pipeline_db: str
) -> None:
    asins = sample_asins(63, 10)
    track(pipeline_db, MKT, asins)
    sim.simulator.configure(cost_override_usd=1e308, pad_items_to=10_000)
    run_id = start(asins)
    assert pipeline.run_batch(run_id, 0, TASK).status == "promoted"
    status, succeeded, failed, cost, params = run_status(pipeline_db, run_id)
    assert (status, succeeded, failed, cost) == ("succeeded", 10, 0, Decimal(0))
    guards = [n["guard"] for n in params["upstream_notes"]]
    assert guards.count("cost_unknown") == 2 and guards.count("dataset_truncated") == 2
    ((kept,),) = rows(
        pipeline_db,
        "SELECT count(*) FROM staging_raw.raw_events WHERE run_id = %s AND kind = 'review'",
        run_id,
    )
    assert kept <= 10 * 2 + 5  # maxItems (2 reviews per ASIN) + slack, not 10,000


def _fill_today(db_url: str, usd: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO core.ingest_runs (id, job_id, trigger, kind, marketplace, status,"
            " asins_requested, asins_succeeded, asins_quarantined, asins_failed, batches_total,"
            " batches_done, cost_usd, params, finished_at) VALUES (%s, %s, 'manual',"
            " 'product_details', %s, 'succeeded', 1, 1, 0, 0, 1, 1, %s, '{}', now())",
            (uuid.uuid4(), f"spent:{uuid.uuid4().hex}", MKT, Decimal(usd)),
        )


def _cap_alert(db_url: str) -> tuple[Any, ...] | None:
    found = rows(
        db_url,
        "SELECT a.severity, a.status, a.occurrences, array_agg(e.event ORDER BY e.id)"
        " FROM core.alerts a JOIN core.alert_events e ON e.alert_id = a.id"
        " WHERE a.alert_type = 'upstream_spend_cap' GROUP BY a.id",
    )
    return found[0] if found else None


def test_the_daily_cap_refuses_new_runs_and_further_batches(
    sim: SimulatorServer, pipeline_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASINWATCH_APIFY__MAX_COST_USD_PER_DAY", "1.0")
    reset_settings_cache()
    asins = sample_asins(64, 4)
    track(pipeline_db, MKT, asins)
    queued = start(asins)  # under the cap: accepted
    _fill_today(pipeline_db, "1.0")
    before = sim.simulator.run_count
    with pytest.raises(spend.SpendCapReachedError) as info:
        start(asins)
    assert "spend cap" in str(info.value) and info.value.retry_after_s > 0
    # A batch of the run accepted earlier is refused before any upstream call.
    outcome = pipeline.run_batch(queued, 0, TASK)
    assert outcome.status == "dead" and "spend cap" in (outcome.error or "")
    assert sim.simulator.run_count == before
    spend.raise_cap_alert(info.value)
    alert = _cap_alert(pipeline_db)
    assert alert is not None
    severity, state, occurrences, events = alert
    assert (severity, state) == ("critical", "open") and occurrences == 2
    assert events[0] == "opened" and "repeated" in events
    # The same job id again is not a new run: it is returned, not refused.
    with session_scope() as session:
        run = repository.get_run(session, queued)
        assert run is not None
        again, created = service.prepare_run(
            session,
            marketplace=MKT,
            asins=asins,
            all_tracked=False,
            trigger="manual",
            job_id=run.job_id,
        )
    assert again.id == queued and not created
    # The schedule is refused too (and says so in the alert), without raising.
    from asinwatch.ingestion import tasks

    assert tasks.run_scheduled() == []
    alert = _cap_alert(pipeline_db)
    assert alert is not None and alert[2] == 3
    # CLI: one line, non-zero exit.
    done = subprocess.run(
        [sys.executable, "-m", "asinwatch", "ingest", "run", "--asins", asins[0]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1 and "spend cap" in done.stderr
    # One readable line for the operator; the CLI's JSON log lines (the refusal is logged and
    # counted too) are not part of it.
    human = [ln for ln in done.stderr.strip().splitlines() if not ln.startswith("{")]
    assert len(human) == 1 and "Traceback" not in done.stderr


def test_untracked_or_large_runs_need_admin(
    sim: SimulatorServer, pipeline_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asinwatch.auth.jwt import issue_dev_token

    monkeypatch.setenv("ASINWATCH_INGEST__ADMIN_RUN_SIZE", "3")
    reset_settings_cache()
    tracked = sample_asins(65, 4)
    track(pipeline_db, MKT, tracked)
    with session_scope() as session:
        with pytest.raises(spend.AdminRequiredError, match="not tracked"):
            service.prepare_run(
                session,
                marketplace=MKT,
                asins=[tracked[0], "B0UNTRACK1"],
                all_tracked=False,
                trigger="api",
                job_id=None,
                role="operator",
            )
        with pytest.raises(spend.AdminRequiredError, match="admin_run_size=3"):
            service.prepare_run(
                session,
                marketplace=MKT,
                asins=tracked,
                all_tracked=False,
                trigger="api",
                job_id=None,
                role="operator",
            )
        ok, created = service.prepare_run(
            session,
            marketplace=MKT,
            asins=tracked[:3],
            all_tracked=False,
            trigger="api",
            job_id=None,
            role="operator",
        )
        assert created and ok.asins_requested == 3

    def cli(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asinwatch", "ingest", "run", "--asins", "B0UNTRACK2", *extra],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    refused = cli()
    assert refused.returncode == 2 and "admin" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    operator = cli("--token", issue_dev_token("operator", sub="op"))
    assert operator.returncode == 2 and "admin" in operator.stderr
    bad = cli("--token", "not-a-jwt")
    assert bad.returncode == 2 and "--token refused" in bad.stderr
    admin = cli("--token", issue_dev_token("admin", sub="boss"))
    assert admin.returncode == 0, admin.stderr
    assert "started" in admin.stdout

"""Acceptance: the database is the source of truth for work; every run finishes by itself.

Real parts throughout (Celery workers and beats as processes, PostgreSQL, Redis, the Apify
simulator); what a drill restarts runs on its own port (tests/outage_servers.py). The drills
themselves live in tests/ingestion/drills.py, shared with bench/drills.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asinwatch.simulator import SimulatorServer
from tests.ingestion import drills

pytestmark = pytest.mark.xdist_group("celery")


@pytest.fixture
def drill_db(pipeline_db: str, key_prefix: str, redis_url: str) -> Iterator[str]:
    drills.reset(pipeline_db, key_prefix, redis_url)
    yield pipeline_db
    drills.reset(pipeline_db, key_prefix, redis_url)


def test_redis_restart_mid_run_with_its_queue_lost_completes_by_itself(
    drill_db: str, simulator: SimulatorServer, tmp_path: Path
) -> None:
    result = drills.redis_restart_mid_run(simulator, drill_db, tmp_path)
    assert result.resent >= 1  # the queue really was lost: the reconciler brought work back
    assert result.detail == "succeeded"
    assert (result.lost, result.duplicated) == (0, 0)
    assert drills.one(drill_db, "SELECT count(*) FROM core.dead_letters") == 0


def test_postgres_restart_mid_run_loses_and_duplicates_nothing(
    simulator: SimulatorServer, key_prefix: str, tmp_path: Path
) -> None:
    result = drills.pg_restart_mid_run(simulator, key_prefix, tmp_path)
    assert result.detail == "succeeded"
    assert (result.lost, result.duplicated) == (0, 0)


def test_worker_killed_before_finalise_run_is_finalised_and_chain_runs_once(
    drill_db: str, simulator: SimulatorServer, tmp_path: Path
) -> None:
    result = drills.sigkill_before_finalise(simulator, drill_db, tmp_path)
    assert result.detail == "succeeded"
    assert result.lost == 0  # every step of the chain done
    assert result.duplicated == 0  # and none ran twice
    assert drills.one(drill_db, "SELECT count(*) FROM mart.product_kpis_daily") == 8


def test_standby_beat_fires_after_the_active_one_is_killed(tmp_path: Path) -> None:
    result = drills.beat_failover(tmp_path)
    assert result.lost == 0  # the standby is alive and fired
    assert result.duplicated == 0  # the killed beat never fired after the take-over


def test_beat_survives_a_redis_restart(tmp_path: Path) -> None:
    result = drills.beat_redis_restart(tmp_path)
    assert result.lost == 0  # both beats still running
    assert result.duplicated == 0  # and exactly one of them fires

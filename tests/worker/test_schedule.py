"""The beat schedule follows the ingest settings (time of day, time zone, health interval)."""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab

from asinwatch.config import IngestSettings, Settings
from asinwatch.worker.celery_app import TASK_MODULES, beat_schedule, create_celery


def test_daily_batch_and_health_sample_come_from_settings() -> None:
    s = Settings(ingest=IngestSettings(daily_at="01:15", timezone="Europe/Berlin"))
    schedule = beat_schedule(s)
    daily = schedule["daily-full-batch"]
    assert daily["task"] == "ingestion.run_scheduled"
    assert isinstance(daily["schedule"], crontab)
    assert daily["schedule"].hour == {1} and daily["schedule"].minute == {15}
    health = schedule["health-sample"]
    assert health["task"] == "ingestion.run_health_sample"
    assert isinstance(health["schedule"], crontab) and health["schedule"].hour == {0, 6, 12, 18}
    assert create_celery(s).conf.timezone == "Europe/Berlin"
    assert "asinwatch.ingestion.tasks" in TASK_MODULES


def test_health_sample_interval_overrides_the_crontab() -> None:
    s = Settings(ingest=IngestSettings(health_sample_interval_s=2))
    assert beat_schedule(s)["health-sample"]["schedule"] == timedelta(seconds=2)


def test_only_one_beat_is_ever_active_by_configuration() -> None:
    conf = create_celery(Settings()).conf
    assert conf.beat_scheduler == "asinwatch.worker.beat.ResilientRedBeatScheduler"
    assert conf.redbeat_lock_timeout <= 30  # a standby takes over within 30 s
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1

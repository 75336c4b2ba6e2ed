"""The Celery app: Redis broker, late acks, one active beat (RedBeat lock, beat.py), the schedule.

Why these settings (see docs/DESIGN_DECISIONS.md): early acks lose tasks when a worker is
killed, so tasks are acked late and re-delivered on worker loss, and every task is idempotent.
The visibility timeout exceeds the longest task. Redis keeps no delivery counter, so tasks
count their own attempts and park poison work as a dead letter.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from celery.schedules import crontab

from asinwatch.config import Settings, get_settings
from asinwatch.observability.logging import configure_logging
from asinwatch.worker import metrics_signals  # noqa: F401  (connects the metrics exit hooks)

# Modules holding tasks; each domain adds its own `tasks` module here.
TASK_MODULES = [
    "asinwatch.worker.maintenance",
    "asinwatch.ingestion.tasks",
    "asinwatch.alerts.tasks",
    "asinwatch.metrics.tasks",
    "asinwatch.alerts.detection",
    "asinwatch.reports.tasks",
    "asinwatch.recommendations.tasks",
]


def kombu_url(url: str) -> str:
    """Celery spells a Redis unix socket `redis+socket://`; redis-py spells it `unix://`."""
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://")
    return url


def beat_schedule(s: Settings) -> dict[str, dict[str, object]]:
    hh, mm = (int(x) for x in s.ingest.daily_at.split(":"))
    every = s.ingest.health_sample_every_hours
    # A fixed interval instead of the crontab lets tests and demos see the sample fire.
    health: object = (
        timedelta(seconds=s.ingest.health_sample_interval_s)
        if s.ingest.health_sample_interval_s
        else crontab(minute=0, hour=f"*/{every}")
    )
    return {
        "daily-full-batch": {
            "task": "ingestion.run_scheduled",
            "schedule": crontab(hour=hh, minute=mm),
            "kwargs": {"trigger": "schedule"},
        },
        "health-sample": {
            "task": "ingestion.run_health_sample",
            "schedule": health,
        },
        # Batches a dead worker left behind come back without waiting for the visibility
        # timeout (re-sent deliveries of a batch that is in progress are no-ops).
        "ingest-recover-stalled": {
            "task": "ingestion.recover_stalled",
            "schedule": timedelta(seconds=s.recovery.reconcile_interval_s),
        },
        "metric-partitions": {
            "task": "maintenance.ensure_partitions",
            "schedule": crontab(hour=1, minute=5),
        },
        "retention": {
            "task": "maintenance.apply_retention",
            "schedule": crontab(hour=2, minute=15),
        },
        "alert-deliveries": {
            "task": "alerts.deliver_due",
            "schedule": timedelta(seconds=30),
        },
    }


def create_celery(settings: Settings | None = None) -> Celery:
    s = settings or get_settings()
    broker = kombu_url(s.broker_url) if s.broker_url else "memory://"
    app = Celery("asinwatch", broker=broker, include=TASK_MODULES)
    transport = {
        "visibility_timeout": s.broker.visibility_timeout_s,
        "global_keyprefix": s.redis.key_prefix + "celery:",
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone=s.ingest.timezone,
        enable_utc=True,
        beat_schedule=beat_schedule(s),
        beat_scheduler="asinwatch.worker.beat.ResilientRedBeatScheduler",
        # Reconnects after a broker restart with tasks in flight (worker/consumer.py).
        worker_consumer="asinwatch.worker.consumer:ResilientConsumer",
        redbeat_redis_url=s.redis.url,
        redbeat_key_prefix=s.redis.key_prefix + "redbeat:",
        # A standby beat takes over within lock timeout + one tick of the first one dying.
        redbeat_lock_timeout=s.recovery.beat_lock_timeout_s,
        beat_max_loop_interval=s.recovery.beat_loop_s,
    )
    return app


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Worker and beat log like the API: JSON lines, secrets masked (a receiver on this
    signal stops Celery from installing its own handlers)."""
    s = get_settings()
    role = "beat" if "beat" in sys.argv[1:] else "worker"
    configure_logging(f"{s.service_name}-{role}", s.log.level, s.log.json_format)


celery_app = create_celery()

"""Celery tasks of alert delivery: the periodic sweep and the immediate send after raising.

Both are idempotent (the delivery rows carry the state), so late acks and re-delivery are safe.
"""

from __future__ import annotations

from asinwatch.alerts.delivery import process_due
from asinwatch.worker.celery_app import celery_app


@celery_app.task(name="alerts.deliver_due")
def deliver_due() -> dict[str, int]:
    """Send every due pending delivery (beat runs this every 30 s)."""
    return process_due().as_dict()


@celery_app.task(name="alerts.deliver_alert")
def deliver_alert(alert_id: int) -> dict[str, int]:
    """Send the due deliveries of one alert now (queued right after the alert is raised)."""
    return process_due(alert_id=int(alert_id)).as_dict()

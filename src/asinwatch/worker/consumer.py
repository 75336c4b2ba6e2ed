"""The worker's broker consumer: Celery's, surviving a broker restart with tasks in flight.

Celery 5.7 closes the broken broker connection when it is lost; with acked-late messages in
flight, kombu's Redis channel then tries to restore them through a connection it has already
detached and raises AttributeError, which Celery treats as unrecoverable: the worker exits.
(Nothing is left to restore after a Redis restart anyway; the reconciler re-sends lost work.)
This consumer makes that close best-effort, so the worker reconnects as it does for any other
connection error.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery.worker.consumer import Consumer

log = structlog.get_logger(__name__)


class ResilientConsumer(Consumer):
    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        if connection is not None:
            close = connection.close

            def best_effort_close(*args: Any, **kwargs: Any) -> None:
                try:
                    close(*args, **kwargs)
                except Exception as err:
                    log.warning("broker connection close failed", error=f"{type(err).__name__}")

            connection.close = best_effort_close
        super().on_connection_error_after_connected(exc)

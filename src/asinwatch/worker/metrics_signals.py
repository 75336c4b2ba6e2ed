"""Prometheus multiprocess bookkeeping of Celery's processes (observability.multiproc).

A prefork child leaves with os._exit, so no atexit hook runs there: worker_process_shutdown
(sent in the child just before it exits) drops its live-gauge files instead; worker_shutdown
does the same for the main worker process. Counters and histograms stay in the shared folder,
so what a finished child counted is still summed by /v1/metrics.
"""

from __future__ import annotations

import os
from typing import Any

from celery.signals import worker_process_shutdown, worker_shutdown

from asinwatch.observability.multiproc import mark_dead


@worker_process_shutdown.connect
def _child_exits(**_: Any) -> None:
    mark_dead(os.getpid())


@worker_shutdown.connect
def _worker_exits(**_: Any) -> None:
    mark_dead(os.getpid())

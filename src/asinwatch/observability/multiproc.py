"""Prometheus multiprocess mode: the shared folder, its start-up clean-up, the scrape, exits.

Owns where every process writes its samples (``PROMETHEUS_MULTIPROC_DIR``) and the rules
around that folder (docs/DESIGN_DECISIONS.md, "Worker metrics"):

- `activate()` runs once per process, before the first metric exists (observability.metrics
  calls it). It picks the folder (setting `prometheus.multiproc_dir`, else the environment
  variable, else ``<data_dir>/prometheus``), exports it for prometheus_client and for child
  processes, and switches prometheus_client's value class to the file-backed one.
- The folder is emptied only when no process that wrote to it is alive any more (a fresh
  start of everything, e.g. `asinwatch up` after a stop). A dead process's counter files are
  kept while others live: dropping them would make the summed counters go down, which
  Prometheus reads as a reset. Check, clean-up and this process's first file happen under an
  exclusive lock on ``<dir>/.lock``, so two processes starting at once cannot wipe each
  other's files.
- `registry()` is what GET /v1/metrics serialises: a MultiProcessCollector over the folder
  (every live and dead process's counters and histograms, summed) or, with multiprocess mode
  off, this process's own registry.
- `mark_dead(pid)` drops a finished process's live-gauge files (its counters stay). It runs at
  interpreter exit and, for Celery's prefork children (which leave with os._exit), from the
  worker_process_shutdown signal (worker/metrics_signals.py).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values
from prometheus_client.mmap_dict import MmapedDict

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)

_active: Path | None = None
_activated = False


def chosen_dir() -> Path | None:
    """The folder the settings ask for, or None when multiprocess mode is off.

    Settings that do not validate are reported by whoever reads them next (one line from the
    CLI); here they only fall back to the environment variable.
    """
    from asinwatch.config import get_settings

    try:
        s = get_settings()
    except Exception:
        env = os.environ.get(ENV_VAR)
        return Path(env) if env else None
    if not s.prometheus.multiprocess:
        return None
    if s.prometheus.multiproc_dir is not None:
        return s.prometheus.multiproc_dir
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else s.data_dir / "prometheus"


def activate() -> Path | None:
    """Set this process up for multiprocess mode (once); the folder in use, or None."""
    global _active, _activated
    if _activated:
        return _active
    _activated = True
    path = chosen_dir()
    if path is not None:
        try:
            path = path.resolve()
            path.mkdir(parents=True, exist_ok=True)
            claim(path)
        except OSError as exc:
            log.warning(
                "prometheus multiprocess folder %s is not usable (%s): metrics of this "
                "process stay in memory and reach no other process's /v1/metrics",
                path,
                exc,
            )
            path = None
    if path is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = str(path)
        atexit.register(lambda: mark_dead(os.getpid()))
    # prometheus_client picks the value class when it is imported; pick it again now that
    # the variable is (un)set, before any metric is built.
    values.ValueClass = values.get_value_class()
    _active = path
    return path


def active_dir() -> Path | None:
    """The folder this process writes to (None: in memory only)."""
    return _active


def _pid_of(file: Path) -> int | None:
    """The process id in ``counter_123.db`` / ``gauge_livesum_123.db`` (None if not ours)."""
    tail = file.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def claim(path: Path) -> bool:
    """Under the folder's lock: empty it if no process that wrote there is alive, then create
    this process's counter file so that later starters see it alive. True if it was emptied.

    A file left with this process's own id belongs to a dead predecessor (the id was reused);
    prometheus_client continues its counts, which keeps the sums monotonic.
    """
    me = os.getpid()
    with (path / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            files = list(path.glob("*.db"))
            pids = {p for p in map(_pid_of, files) if p is not None and p != me}
            wiped = not any(_alive(p) for p in pids)
            if wiped:
                for file in files:
                    with contextlib.suppress(FileNotFoundError):
                        file.unlink()
            MmapedDict(str(path / f"counter_{me}.db")).close()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return wiped


def mark_dead(pid: int) -> None:
    """Forget a finished process's live gauges (its counters and histograms stay summed)."""
    if _active is not None:
        multiprocess.mark_process_dead(pid, str(_active))


def registry() -> CollectorRegistry:
    """The registry GET /v1/metrics serialises: every process's samples, or this one's."""
    if activate() is None:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=str(active_dir()))
    return collected

"""The shared Prometheus folder (observability.multiproc) across real processes.

Each child is a real Python process that imports asinwatch's metrics, counts, and exits (or
waits on stdin). The folder is read the way GET /v1/metrics reads it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

# Counts `argv[1]` promoted batches; with a second argument also sets a live gauge and waits
# for a line on stdin before exiting normally.
CHILD = """
import sys
from asinwatch.observability import metrics, multiproc
metrics.INGEST_BATCHES.labels("promoted").inc(float(sys.argv[1]))
if len(sys.argv) > 2:
    metrics.DEPENDENCY_UP.labels("database").set(1)
print(multiproc.active_dir(), flush=True)
if len(sys.argv) > 2:
    sys.stdin.readline()
"""

PROMOTED = ("asinwatch_ingest_batches_total", {"outcome": "promoted"})
DB_UP = ("asinwatch_dependency_up", {"dependency": "database"})


def child_env(**extra: str) -> dict[str, str]:
    # This test process exports its own folder; a child must find its folder from settings.
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    return env


def run_child(env: dict[str, str], count: int) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@contextmanager
def live_child(env: dict[str, str], count: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(count), "wait"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # it has counted
        yield proc
    finally:
        if proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.write("bye\n")
            proc.stdin.close()
            proc.wait(30)


def sample(folder: Path, name: str, labels: dict[str, str]) -> float | None:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return registry.get_sample_value(name, labels)


def test_counts_survive_their_process_and_the_folder_is_emptied_only_when_none_lives(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "prom"
    env = child_env(ASINWATCH_PROMETHEUS__MULTIPROC_DIR=str(folder))

    assert run_child(env, 3) == str(folder)
    assert sample(folder, *PROMOTED) == 3  # a finished process's counts stay

    with live_child(env, 5):
        # Nothing that wrote the 3 was alive: the first new process emptied the folder.
        assert sample(folder, *PROMOTED) == 5
        assert sample(folder, *DB_UP) == 1
        run_child(env, 2)  # starts and ends while the other one lives
        assert sample(folder, *PROMOTED) == 7
        run_child(env, 4)  # did not wipe the finished one's files either
        assert sample(folder, *PROMOTED) == 11
    # A process that exits drops its live gauge; its counters stay in the sum.
    assert sample(folder, *DB_UP) is None
    assert sample(folder, *PROMOTED) == 11

    run_child(env, 1)  # a fresh start of everything: only the new count
    assert sample(folder, *PROMOTED) == 1


def test_the_default_folder_is_under_the_data_dir_and_off_means_in_memory(
    tmp_path: Path,
) -> None:
    env = child_env(ASINWATCH_DATA_DIR=str(tmp_path / "data"))
    env.pop("ASINWATCH_PROMETHEUS__MULTIPROC_DIR", None)
    assert run_child(env, 2) == str(tmp_path / "data" / "prometheus")
    assert sample(tmp_path / "data" / "prometheus", *PROMOTED) == 2

    # The standard variable is honoured when the setting is unset.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "std")
    (tmp_path / "std").mkdir()
    assert run_child(env, 4) == str(tmp_path / "std")
    assert sample(tmp_path / "std", *PROMOTED) == 4

    off = child_env(
        ASINWATCH_DATA_DIR=str(tmp_path / "off"), ASINWATCH_PROMETHEUS__MULTIPROCESS="false"
    )
    assert run_child(off, 2) == "None"
    assert not (tmp_path / "off").exists()

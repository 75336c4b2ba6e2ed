"""Exactly one scheduler: two `asinwatch beat` processes, only the RedBeat lock holder fires.

The health sample is scheduled every second (ASINWATCH_INGEST__HEALTH_SAMPLE_INTERVAL_S) so
firing is visible; the beats use their own Redis key prefix (under the run's), so the
messages they send land in a queue no worker of this test run consumes. Each message carries
its sender in the `origin` header (`gen<pid>@host`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis


class Beat:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "asinwatch", "beat"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=log_path.parent,
                start_new_session=True,
            )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def beat_prefix(key_prefix: str, redis_url: str) -> Iterator[str]:
    prefix = f"{key_prefix}beat-test:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*", count=1000):
        client.delete(key)
    client.close()


def test_only_the_lock_holder_fires_and_the_standby_takes_over(
    beat_prefix: str, redis_url: str, tmp_path: Path
) -> None:
    env = dict(
        os.environ,
        ASINWATCH_REDIS__KEY_PREFIX=beat_prefix,
        ASINWATCH_INGEST__HEALTH_SAMPLE_INTERVAL_S="1",
    )
    client = redis.Redis.from_url(redis_url)
    queue = f"{beat_prefix}celery:celery"

    def senders() -> list[str]:
        bodies = client.lrange(queue, 0, -1)
        return [
            json.loads(b)["headers"]["origin"]
            for b in bodies
            if json.loads(b)["headers"]["task"] == "ingestion.run_health_sample"
        ]

    first = Beat(env, tmp_path / "beat-1.log")
    second: Beat | None = None
    try:
        wait_until(lambda: "Acquired lock" in first.log, "the first beat to take the lock")
        second = Beat(env, tmp_path / "beat-2.log")
        wait_until(lambda: "beat: Starting" in second.log, "the second beat to start")
        wait_until(lambda: len(senders()) >= 4, "the schedule to fire")

        origins = set(senders())
        assert origins == {f"gen{first.proc.pid}@{os.uname().nodename}"}
        assert "Acquired lock" not in second.log
        assert "Sending due task" not in second.log
        assert second.proc.poll() is None  # alive, waiting for the lock

        first.stop()  # a clean shutdown releases the lock: the standby takes over
        wait_until(lambda: "Acquired lock" in second.log, "the standby to take the lock")
        mine = f"gen{second.proc.pid}@{os.uname().nodename}"
        wait_until(lambda: mine in senders(), "the standby to fire")
        assert set(senders()) == origins | {mine}
    finally:
        first.stop()
        if second is not None:
            second.stop()
        client.close()

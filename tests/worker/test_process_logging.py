"""Worker, beat and CLI write JSON log lines with secrets masked, and no local variables.

Real processes: an `asinwatch worker` running a task that fails, an `asinwatch beat`, CLI
commands, each with a database URL holding a password; Apprise given a mistyped target
whose token it would otherwise print.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asinwatch.config import get_settings, reset_settings_cache
from tests.ingestion.conftest import WorkerProcess
from tests.worker.test_beat import Beat, wait_until

PASSWORD = "Sup3rSecretPw"
SLACK_TOKEN = "TIiajk!dnlazkcOXrIdevi7FQ"
TG_TOKEN = "123456789:abcdefg_hijk$lmnop"


def _with_password(url: str) -> str:
    # Trust auth on the test server: the password is sent and ignored, the URL still works.
    scheme, rest = url.split("://", 1)
    user_host = rest.split("@", 1)
    if len(user_host) == 2:
        user, host = user_host
        user = user.split(":", 1)[0]
    else:
        user, host = "postgres", rest
    return f"{scheme}://{user}:{PASSWORD}@{host}"


def _json_lines(text: str) -> list[dict[str, object]]:
    """Every non-empty line parsed as a JSON object (fails on any other line)."""
    # Celery's SIGTERM handler prints this one notice itself (not through logging).
    lines = [
        line
        for line in text.splitlines()
        if line.strip() and not re.fullmatch(r"worker: (Warm|Cold) shutdown \(MainProcess\)", line)
    ]
    parsed = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r}")
        assert isinstance(value, dict), line
        parsed.append(value)
    return parsed


def _assert_clean(text: str) -> None:
    assert PASSWORD not in text
    assert SLACK_TOKEN not in text and TG_TOKEN not in text
    # Rich/structlog pretty tracebacks print a locals table; plain tracebacks never do.
    assert "locals" not in text.lower() and "╭" not in text


@pytest.fixture
def secret_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    monkeypatch.setenv("ASINWATCH_DATABASE__URL", _with_password(db_url))
    monkeypatch.setenv("ASINWATCH_LOG__JSON_FORMAT", "true")
    monkeypatch.setenv("ASINWATCH_LOG__LEVEL", "INFO")
    reset_settings_cache()
    yield dict(os.environ)
    reset_settings_cache()


def test_worker_logs_a_failing_task_as_masked_json(secret_env, tmp_path: Path) -> None:
    from asinwatch.worker.celery_app import create_celery

    worker = WorkerProcess(tmp_path).start(concurrency=1)
    try:
        app = create_celery(get_settings())
        # A task that raises inside the worker, the exception's message holding a URL with a
        # password: int("postgresql://user:...") fails with that value quoted.
        app.send_task(
            "alerts.deliver_alert", kwargs={"alert_id": f"postgresql://user:{PASSWORD}@db/x"}
        )
        wait_until(lambda: "raised unexpected" in worker.log_text(), "the task failure", 90)
    finally:
        worker.stop()
    text = worker.log_text()
    records = _json_lines(text)
    _assert_clean(text)
    failure = next(r for r in records if "raised unexpected" in str(r.get("msg")))
    assert failure["level"] == "error"
    assert failure["service"] == "asinwatch-worker"
    assert "Traceback" in str(failure.get("exception"))  # a plain traceback, masked
    assert "postgresql://user:***@db/x" in str(failure["msg"])


def test_beat_logs_masked_json(secret_env, key_prefix: str, tmp_path: Path) -> None:
    env = {
        **secret_env,
        "ASINWATCH_REDIS__KEY_PREFIX": f"{key_prefix}logbeat:",
        "ASINWATCH_INGEST__HEALTH_SAMPLE_INTERVAL_S": "1",
    }
    beat = Beat(env, tmp_path / "beat.log")
    try:
        wait_until(lambda: "Scheduler: Sending due task" in beat.log, "beat to send a task", 90)
    finally:
        beat.stop()
    records = _json_lines(beat.log)
    _assert_clean(beat.log)
    assert {r["service"] for r in records} == {"asinwatch-beat"}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "asinwatch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_unreachable_database_never_shows_the_password(secret_env) -> None:
    env = {**secret_env, "ASINWATCH_DATABASE__URL": f"postgresql://u:{PASSWORD}@127.0.0.1:1/x"}
    result = _cli("products", "list", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("asinwatch: error: cannot reach the database")
    _assert_clean(result.stdout + result.stderr)


def test_cli_unexpected_failure_is_a_masked_json_traceback(secret_env) -> None:
    env = {**secret_env, "ASINWATCH_DATABASE__URL": f"postgresql://u:{PASSWORD}@h:notaport/x"}
    result = _cli("products", "list", env=env)
    assert result.returncode != 0
    _assert_clean(result.stdout + result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("asinwatch: error: ")  # the one line for the user
    _json_lines("\n".join(lines[:-1]))  # anything before it is JSON log lines


def test_cli_logs_json_with_masked_url_passwords(secret_env) -> None:
    # `migrate` runs for real against the test database with a password in its URL.
    result = _cli("migrate", env=secret_env)
    assert result.returncode == 0, result.stderr
    _json_lines(result.stderr)
    _assert_clean(result.stdout + result.stderr)


APPRISE_SCRIPT = """
import structlog
from asinwatch.alerts.targets import InvalidTargetError, validate_target
from asinwatch.observability.logging import configure_logging

configure_logging("asinwatch-test", "DEBUG", True)
for target in {targets!r}:
    try:
        validate_target("apprise", target, [])
    except InvalidTargetError as exc:
        structlog.get_logger().warning("target refused", error=str(exc))
"""


def test_apprise_never_logs_the_tokens_of_a_mistyped_target(secret_env) -> None:
    targets = [
        f"slack://T1JJ3T3L2/A1BRTD4JD/{SLACK_TOKEN}",
        f"tgram://{TG_TOKEN}/12315544/",
        f"tgram://123456789:abcdefg_hijklmnop/@bad!{PASSWORD}",
    ]
    result = subprocess.run(
        [sys.executable, "-c", APPRISE_SCRIPT.format(targets=targets)],
        env=secret_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    records = _json_lines(result.stderr)
    apprise_lines = [r for r in records if "Token" in str(r.get("msg"))]
    assert len(apprise_lines) >= 2  # Apprise did complain about both tokens...
    _assert_clean(result.stderr)  # ...without naming them
    assert PASSWORD not in result.stderr


def test_mask_text_masks_every_url_password() -> None:
    from asinwatch.observability.logging import mask_text

    text = (
        f"postgresql+psycopg://app:{PASSWORD}@db:5432/x redis://:{PASSWORD}@r:6379/0 "
        f"amqp://guest:{PASSWORD}@mq// http://host:8080/path@x"
    )
    masked = mask_text(text)
    assert PASSWORD not in masked
    assert "app:***@db" in masked and "redis://:***@r" in masked and "guest:***@mq" in masked
    assert "http://host:8080/path@x" in masked  # a port is not a password


TRACEBACK_SCRIPT = """
import logging, structlog
from asinwatch.observability.logging import configure_logging

configure_logging("asinwatch-test", "INFO", {json_format})

def connect():
    database_url = "postgresql://app:{password}@db/x"  # a local: must never be printed
    raw_item = {{"title": "whole raw item", "api_key": "{password}"}}
    raise RuntimeError("cannot connect")

try:
    connect()
except RuntimeError:
    structlog.get_logger().exception("structlog failure")
    logging.getLogger("celery.app.trace").exception("stdlib failure")
"""


@pytest.mark.parametrize("json_format", [True, False])
def test_tracebacks_show_no_local_variables(json_format: bool) -> None:
    script = TRACEBACK_SCRIPT.format(json_format=json_format, password=PASSWORD)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert out.count("RuntimeError: cannot connect") == 2  # both tracebacks are there
    _assert_clean(out)
    assert "whole raw item" not in out
    if json_format:
        assert len(_json_lines(result.stderr)) == 2


def test_apprise_mask_keeps_http_statuses() -> None:
    from asinwatch.observability.logging import mask_apprise_text

    line = "Failed to send Slack notification: Bad Request (error=400). Token (xoxb-123-abc) bad"
    assert mask_apprise_text(line) == (
        "Failed to send Slack notification: Bad Request (error=400). Token (***) bad"
    )

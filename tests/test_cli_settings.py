"""A bad setting is one line on stderr and exit 2 from every command (real subprocesses), and
list settings take a JSON list or comma-separated values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asinwatch.config import Settings

# The installed console script (next to the interpreter in a venv, else on PATH).
_BESIDE = Path(sys.executable).with_name("asinwatch")
ASINWATCH = str(_BESIDE) if _BESIDE.exists() else (shutil.which("asinwatch") or str(_BESIDE))

BAD_SETTINGS = [
    # Malformed JSON where a nested model is given whole: pydantic-settings' SettingsError.
    ({"ASINWATCH_APIFY": "{not json"}, "invalid configuration"),
    # A malformed JSON list.
    ({"ASINWATCH_APIFY__ALLOWED_HOSTS": '["127.0.0.1"'}, "apify.allowed_hosts"),
    # A value of the wrong type.
    ({"ASINWATCH_API__PORT": "eighty"}, "api.port"),
    # Production refusing the development JWT secret.
    ({"ASINWATCH_ENV": "production"}, "production mode refuses to start"),
]
COMMANDS = [["version"], ["worker"], ["beat"], ["products", "list"], ["token", "--role", "admin"]]


def _run(command: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **extra}
    return subprocess.run(
        [ASINWATCH, *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(("extra", "needle"), BAD_SETTINGS, ids=lambda v: str(v)[:40])
def test_a_bad_setting_is_one_line_and_exit_2(
    command: list[str], extra: dict[str, str], needle: str
) -> None:
    done = _run(command, extra)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("asinwatch: error: invalid configuration"), lines[0]
    assert needle in lines[0]
    assert done.stdout == ""


def test_the_reported_case_a_bare_host_is_a_one_item_list() -> None:
    done = _run(["version"], {"ASINWATCH_APIFY__ALLOWED_HOSTS": "127.0.0.1"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip()


def test_comma_separated_lists_in_a_subprocess() -> None:
    script = "from asinwatch.config import Settings; s = Settings(); print(s.apify.allowed_hosts)"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "ASINWATCH_APIFY__ALLOWED_HOSTS": "127.0.0.1, api.apify.com"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "['127.0.0.1', 'api.apify.com']"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('["a.example", "b.example"]', ["a.example", "b.example"]),
        ("a.example,b.example", ["a.example", "b.example"]),
        (" a.example , b.example ,", ["a.example", "b.example"]),
        ("a.example", ["a.example"]),
        ("", []),
        ("[]", []),
    ],
)
def test_list_settings_accept_json_or_commas(
    raw: str, expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in (
        "ASINWATCH_APIFY__ALLOWED_HOSTS",
        "ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS",
        "ASINWATCH_API__CORS_ORIGINS",
    ):
        monkeypatch.setenv(key, raw)
    s = Settings()
    assert s.apify.allowed_hosts == expected
    assert s.alerts.delivery_allowed_hosts == expected
    assert s.api.cors_origins == expected
    monkeypatch.setenv("ASINWATCH_AUTH__ALGORITHMS", "RS256,ES256")
    assert Settings().auth.algorithms == ["RS256", "ES256"]

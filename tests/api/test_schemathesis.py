"""schemathesis (every default check, all phases: examples, coverage, fuzzing, stateful)
against the running API with an admin token and seeded data: no failure.

The test sends the channel "test" operation nowhere: it would deliver to whatever URL a
generated channel holds (outbound traffic), so it is excluded; tests/api/test_roles.py covers
it against a closed local port.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from asinwatch.auth.jwt import issue_dev_token
from tests.api.server import api_server

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 15
SEED = 20261129


@pytest.mark.xdist_group("api")
def test_schemathesis_finds_no_failure(seeded: str, redis_url: str, tmp_path: Path) -> None:
    token = issue_dev_token("admin", sub="schemathesis")
    limits = {
        # One token makes thousands of requests here; the limits are tested elsewhere.
        "ASINWATCH_API__RATE_LIMIT_PER_MINUTE": "1000000",
        "ASINWATCH_API__RATE_LIMIT_PER_IP_PER_MINUTE": "1000000",
        "ASINWATCH_LOG__LEVEL": "WARNING",
    }
    with api_server(limits) as base:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(CONFIG),
                "run",
                f"{base}/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--exclude-path",
                "/v1/channels/{channel_id}/test",
                "--max-examples",
                str(MAX_EXAMPLES),
                "--seed",
                str(SEED),
                "--generation-database",
                "none",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=240,
        )
    report = result.stdout[-6000:]
    assert result.returncode == 0, report
    assert "Tested: 33" in result.stdout, report

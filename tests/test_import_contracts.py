"""The import contracts (pyproject.toml [tool.importlinter]) hold on the code, and they fail
on a violation: `lint-imports` as a real subprocess, on this tree and on a copy with one
forbidden import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BESIDE = Path(sys.executable).with_name("lint-imports")
LINT_IMPORTS = str(_BESIDE) if _BESIDE.exists() else (shutil.which("lint-imports") or "")


def _lint(src: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [LINT_IMPORTS, "--cache-dir", str(cache), str(ROOT / "pyproject.toml")],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def src_copy(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "asinwatch", src / "asinwatch", ignore=shutil.ignore_patterns("__pycache__")
    )
    return src


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(ROOT / "src", tmp_path / "cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "evidence"),
    [
        (
            "kit/etag.py",
            "from asinwatch.catalog import models as _m",
            "kit imports no domain, no auth and no entry point BROKEN",
            "asinwatch.kit.etag -> asinwatch.catalog.models",
        ),
        (
            "kit/pagination.py",
            "from asinwatch.auth import roles as _r",
            "kit imports no domain, no auth and no entry point BROKEN",
            "asinwatch.kit.pagination -> asinwatch.auth.roles",
        ),
        (
            "alerts/service.py",
            "from asinwatch import cli as _c",
            "no domain imports the CLI or the app factory BROKEN",
            "asinwatch.alerts.service -> asinwatch.cli",
        ),
        (
            "jobs/router.py",
            "import psycopg as _p",
            "routers import no SQL driver BROKEN",
            "asinwatch.jobs.router -> psycopg",
        ),
        (
            "catalog/service.py",
            "from asinwatch.alerts import models as _a",
            "the top-level packages form no cycle except the declared ones BROKEN",
            "No cycles are allowed in asinwatch",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    src_copy: Path, tmp_path: Path, module: str, line: str, contract: str, evidence: str
) -> None:
    target = src_copy / "asinwatch" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint(src_copy, tmp_path / "cache")
    assert result.returncode == 1, result.stdout + result.stderr
    assert contract in result.stdout
    assert evidence in result.stdout

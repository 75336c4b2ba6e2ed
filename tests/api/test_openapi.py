"""The committed contract (docs/openapi.json) is exactly what the app serves."""

from __future__ import annotations

import json
from pathlib import Path

from asinwatch.app import create_app
from asinwatch.openapi_export import main, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_docs_openapi_matches_the_app() -> None:
    committed = json.loads(DOC.read_text(encoding="utf-8"))
    assert committed == create_app().openapi(), (
        "docs/openapi.json drifted from the app: run `make openapi` and review the diff"
    )


def test_export_writes_the_rendered_document(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "openapi.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render(create_app().openapi())
    assert main([]) == 2


def test_every_v1_operation_except_ops_requires_a_token() -> None:
    doc = create_app().openapi()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            secured = bool(op.get("security"))
            assert secured == (path not in ("/v1/health", "/v1/metrics")), (method, path)

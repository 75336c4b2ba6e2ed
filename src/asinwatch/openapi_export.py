"""Write the API's OpenAPI document: ``python -m asinwatch.openapi_export docs/openapi.json``.

The document is generated from `create_app()` without starting it (no database or Redis
needed) and written with sorted keys, so a diff shows exactly what changed in the contract.
tests/api/test_openapi.py fails when docs/openapi.json drifts from the app.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def openapi_document() -> dict[str, Any]:
    from asinwatch.app import create_app

    document: dict[str, Any] = create_app().openapi()
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m asinwatch.openapi_export PATH", file=sys.stderr)
        return 2
    target = Path(args[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(openapi_document()), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

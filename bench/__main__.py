"""``python -m bench [NAME ...] [-- ARGS]``: run the named bench modules (all when none given).

Each module of this folder with a ``main(argv) -> int`` is a benchmark; ARGS after ``--`` go
to every module run. Results land in bench/results/<name>.json.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    names, extra = (
        (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
    )
    unknown = [n for n in names if n not in available()]
    if unknown:
        print(f"bench: unknown module(s) {', '.join(unknown)}; known: {', '.join(available())}")
        return 2
    status = 0
    for name in names or available():
        module = importlib.import_module(f"bench.{name}")
        print(f"== bench {name}")
        status |= int(module.main(extra) or 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main())

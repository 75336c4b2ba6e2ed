"""Work over several products where one product's failure must not stop the others.

`for_each_product(asins, work, expected=..., event=...)` calls ``work(asin)`` (True: it created
something new; False: nothing changed) for each ASIN and tallies ``{"created": [...],
"unchanged": [...], "failed": {asin: error}}``: an `expected` error is recorded by its message,
any other is logged with its traceback under `event` and recorded by type and message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def for_each_product(
    asins: Iterable[str],
    work: Callable[[str], bool],
    *,
    expected: tuple[type[Exception], ...],
    event: str,
    **log_fields: Any,
) -> dict[str, object]:
    created: list[str] = []
    unchanged: list[str] = []
    failed: dict[str, str] = {}
    for asin in asins:
        try:
            changed = work(asin)
        except expected as exc:
            failed[asin] = str(exc)
            continue
        except Exception as exc:  # one product's failure must not stop the others
            log.exception(event, asin=asin, **log_fields)
            failed[asin] = f"{type(exc).__name__}: {exc}"
            continue
        (created if changed else unchanged).append(asin)
    return {"created": created, "unchanged": unchanged, "failed": failed}

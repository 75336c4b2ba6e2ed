"""JSON logs with structlog: one line per event, secrets masked, request/job ids bound.

Fields follow the architecture: ts, level, service, request_id, job_id, asin, actor,
latency_ms, cost, status, error, cache.hit ... Context variables bound with
`structlog.contextvars.bind_contextvars` (request id, job id) appear on every line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(token|secret|password|authorization|api_key|apikey)", re.I)
# Bearer tokens, JWTs and ?token= query values inside free text.
_SECRET_TEXT = re.compile(
    r"(Bearer\s+)[A-Za-z0-9._\-]+|(token=)[^&\s]+|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"
)
MASK = "***"


def mask_text(text: str) -> str:
    """Replace bearer tokens, JWTs and token query values in free text."""

    def _sub(m: re.Match[str]) -> str:
        prefix = m.group(1) or m.group(2) or ""
        return prefix + MASK

    return _SECRET_TEXT.sub(_sub, text)


def mask_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask values of secret-looking keys and tokens inside strings."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and value is not None:
            event_dict[key] = MASK
        elif isinstance(value, str):
            event_dict[key] = mask_text(value)
    return event_dict


def configure_logging(
    service: str = "asinwatch", level: str = "INFO", json_format: bool = True
) -> None:
    """Configure structlog and the stdlib root logger to write one JSON object per line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.EventRenamer("msg"),
        mask_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_format
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            lambda _l, _m, ed: {"service": service, **ed},
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, lambda _l, _m, ed: {"service": service, **ed}],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Access logs come from our own middleware, with the request id.
    logging.getLogger("uvicorn.access").disabled = True

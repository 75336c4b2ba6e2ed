"""JSON logs with structlog: one line per event, secrets masked, request/job ids bound.

Fields follow the architecture: ts, level, service, request_id, job_id, asin, actor,
latency_ms, cost, status, error, cache.hit ... Context variables bound with
`structlog.contextvars.bind_contextvars` (request id, job id) appear on every line.

Masking runs last, after exceptions are formatted, so tracebacks are masked too: values of
secret-looking keys, bearer tokens, JWTs, ``token=`` values and the password of any URL
(``postgresql://user:***@host``, redis://, amqp://, ...). Tracebacks never show local
variables. Apprise's logger gets its own filter (`AppriseMaskFilter`): Apprise names the
tokens of a target it cannot parse, so values it quotes and URLs it prints are masked.
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
# The password of a URL: scheme://user:PASSWORD@host (the user part may be empty).
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)[^@\s/]+@")
MASK = "***"


def mask_text(text: str) -> str:
    """Replace bearer tokens, JWTs and token query values in free text."""

    def _sub(m: re.Match[str]) -> str:
        prefix = m.group(1) or m.group(2) or ""
        return prefix + MASK

    return _URL_PASSWORD.sub(r"\1" + MASK + "@", _SECRET_TEXT.sub(_sub, text))


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {
            k: MASK if isinstance(k, str) and _SECRET_KEYS.search(k) else _mask_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask values of secret-looking keys and tokens inside strings."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and value is not None:
            event_dict[key] = MASK
        elif isinstance(value, str | dict | list | tuple):
            event_dict[key] = _mask_value(value)
    return event_dict


# Apprise quotes the values it rejects in parentheses ("Token (xoxb-...) was specified") and
# prints URLs; both may hold a channel's tokens.
_APPRISE_QUOTED = re.compile(r"\(([^()\s]{3,}|[^()]*[/:@][^()]*)\)")
# ...but an HTTP status it quotes, "(error=500)", is no secret.
_APPRISE_STATUS = re.compile(r"(error=)?\d{3}")
_ANY_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*)://\S+")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-:$!%.]{20,}")


def mask_apprise_text(text: str) -> str:
    """Apprise log text without the tokens it may quote (see the module docstring)."""
    text = _ANY_URL.sub(lambda m: f"{m.group(1)}://{MASK}", text)
    text = _APPRISE_QUOTED.sub(
        lambda m: m.group(0) if _APPRISE_STATUS.fullmatch(m.group(1)) else f"({MASK})", text
    )
    return mask_text(_LONG_TOKEN.sub(MASK, text))


class AppriseMaskFilter(logging.Filter):
    """Masks every record of the ``apprise`` logger before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_apprise_text(record.getMessage())
        record.args = None
        return True


def install_apprise_mask() -> None:
    """Attach `AppriseMaskFilter` to the ``apprise`` logger (once)."""
    apprise_logger = logging.getLogger("apprise")
    if not any(isinstance(f, AppriseMaskFilter) for f in apprise_logger.filters):
        apprise_logger.addFilter(AppriseMaskFilter())


class _StderrLogger:
    """structlog's print logger, writing to whatever `sys.stderr` is at the time (tests and
    embedded runs swap it; a stream captured at configure time may be closed later)."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _StderrHandler(logging.StreamHandler):
    """A stream handler on the current `sys.stderr` (see `_StderrLogger`)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(
    service: str = "asinwatch", level: str = "INFO", json_format: bool = True
) -> None:
    """Configure structlog and the stdlib root logger to write one JSON object per line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.EventRenamer("msg"),
        # Plain tracebacks as text (never rich's, which print local variables), then masked.
        structlog.processors.format_exc_info,
        mask_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_format
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            *shared,
            lambda _l, _m, ed: {"service": service, **ed},
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=lambda *_args: _StderrLogger(),
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, lambda _l, _m, ed: {"service": service, **ed}],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Celery's pool (billiard) logs to "multiprocessing" without propagating: same handler,
    # or Python's last-resort handler prints its lines raw.
    logging.getLogger("multiprocessing").handlers[:] = [handler]
    # Access logs come from our own middleware, with the request id.
    logging.getLogger("uvicorn.access").disabled = True
    install_apprise_mask()
    logging.captureWarnings(True)

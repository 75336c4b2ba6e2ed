"""Typed errors of the sources; their text never contains a secret.

Retryable ones (429, 5xx, transport) are retried inside the adapter with backoff; when they
still escape, the retries are spent. Everything else is raised at once.
"""

from __future__ import annotations

from decimal import Decimal


class SourceError(Exception):
    """Base of every error a source raises."""


class InvalidBatchError(SourceError, ValueError):
    """The batch itself is bad (a non-ASIN, an unknown marketplace): nothing was sent."""


class DisallowedHostError(SourceError):
    """An outbound request (or a redirect) would go to a host outside the allow-list."""


class ApifyError(SourceError):
    """An error answered by (or on the way to) the Apify API."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_type = error_type
        self.endpoint = endpoint

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(
                f"(HTTP {self.status_code}{', ' + self.error_type if self.error_type else ''})"
            )
        return " ".join(parts)


class ApifyClientError(ApifyError):
    """A 4xx other than 401/403/404/429: the request is wrong and retrying will not help."""


class ApifyAuthError(ApifyClientError):
    """401/403: missing or invalid token, or no permission."""


class ApifyNotFoundError(ApifyClientError):
    """404: unknown actor, run or dataset."""


class ApifyRetryableError(ApifyError):
    retryable = True


class ApifyRateLimitError(ApifyRetryableError):
    """429 rate-limit-exceeded."""


class ApifyServerError(ApifyRetryableError):
    """5xx."""


class ApifyTransportError(ApifyRetryableError):
    """Connection refused, reset, timed out ...

    `maybe_sent` is False only when the connection was never made (the request cannot have
    reached upstream); a run-starting POST is then retried without reconciliation.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.maybe_sent = maybe_sent


class ApifyStartUnknownError(ApifyError):
    """A run start got an ambiguous answer (5xx, timeout, dropped connection) and checking the
    actor's recent runs for our marker failed too: whether a billed run exists is unknown.

    Never retried inside the adapter; the batch's next attempt reconciles before starting.
    """


class ApifyRunUnreachableError(ApifyError):
    """Polling an in-flight run kept failing (404, 5xx, connection) for `poll_outage_s`.

    Not permanent: the batch's next attempt finds the run again (or, if it is really gone,
    starts a new one).
    """

    def __init__(self, message: str, *, run_id: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.run_id = run_id


class ApifyRunFailedError(ApifyError):
    """The run ended FAILED, TIMED-OUT or ABORTED (not by us)."""

    def __init__(self, message: str, *, run_id: str, status: str, cost_usd: Decimal) -> None:
        super().__init__(message, error_type=status.lower())
        self.run_id = run_id
        self.status = status
        self.cost_usd = cost_usd


class ApifyBudgetExceededError(ApifyError):
    """We aborted the run: it ran longer than run_timeout_s or cost more than max_run_cost_usd."""

    def __init__(self, message: str, *, run_id: str, reason: str, cost_usd: Decimal) -> None:
        super().__init__(message, error_type=f"budget-{reason}")
        self.run_id = run_id
        self.reason = reason  # "cost" | "time"
        self.cost_usd = cost_usd

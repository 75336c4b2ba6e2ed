"""Upstream data sources (owns: the Source protocol, the Apify adapter and their errors)."""

from asinwatch.ingestion.sources.apify import ActorRun, ApifySource
from asinwatch.ingestion.sources.base import Source
from asinwatch.ingestion.sources.errors import (
    ApifyAuthError,
    ApifyBudgetExceededError,
    ApifyClientError,
    ApifyError,
    ApifyNotFoundError,
    ApifyRateLimitError,
    ApifyRetryableError,
    ApifyRunFailedError,
    ApifyRunUnreachableError,
    ApifyServerError,
    ApifyStartUnknownError,
    ApifyTransportError,
    DisallowedHostError,
    InvalidBatchError,
    SourceError,
)

__all__ = [
    "ActorRun",
    "ApifyAuthError",
    "ApifyBudgetExceededError",
    "ApifyClientError",
    "ApifyError",
    "ApifyNotFoundError",
    "ApifyRateLimitError",
    "ApifyRetryableError",
    "ApifyRunFailedError",
    "ApifyRunUnreachableError",
    "ApifyServerError",
    "ApifySource",
    "ApifyStartUnknownError",
    "ApifyTransportError",
    "DisallowedHostError",
    "InvalidBatchError",
    "Source",
    "SourceError",
]

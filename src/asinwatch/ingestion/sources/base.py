"""The Source protocol: what the pipeline needs from any upstream (Apify, the simulator, ...).

A source fetches one batch for one marketplace and returns a FetchResult: raw items (kept for
replay), normalised records, quarantined items with reasons, the ASINs that came back with
nothing, the cost and the upstream run ids. Bad input (a non-ASIN) is refused before any call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from asinwatch.ingestion.records import FetchResult

# Awaited before every outbound request (a global rate limiter hooks in here).
BeforeRequestHook = Callable[[], Awaitable[None]]
# Called on every 429 so the limiter can slow down; may be sync or async.
RateLimitedHook = Callable[[], Awaitable[None] | None]


@runtime_checkable
class Source(Protocol):
    async def fetch_products(self, marketplace: str, asins: Sequence[str]) -> FetchResult:
        """Product details of `asins` on `marketplace` (one observation per ASIN at most)."""
        ...

    async def fetch_reviews(self, marketplace: str, asins: Sequence[str]) -> FetchResult:
        """The newest reviews of `asins` on `marketplace` (in `FetchResult.reviews`)."""
        ...

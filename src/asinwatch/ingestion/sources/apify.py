"""The Apify adapter: actor runs over httpx, with budgets, retries, an allow-list and metrics.

One batch = one actor run: start it (`POST /actors/{actor}/runs` with timeout, maxItems and
maxTotalChargeUsd), poll `GET /actor-runs/{id}?waitForFinish=N` until a terminal status,
page the dataset (`clean=true`), normalise. A run that outlives `run_timeout_s` or whose
`usageTotalUsd` passes `max_run_cost_usd` is aborted and reported as
ApifyBudgetExceededError with what it cost. 429, 5xx and transport errors are retried with
exponential backoff and full jitter (tenacity); other 4xx raise a typed error at once.
The token only travels in the Authorization header and is masked in every error and log line.
Hosts must be in settings.apify.allowed_hosts; an allow-listed name must also resolve to
external addresses only, and each request connects to the address that was checked
(kit.netguard); an allow-listed address literal (the simulator's 127.0.0.1) is used as is.
Why httpx rather than apify-client: docs/DESIGN_DECISIONS.md, "httpx adapter, not apify-client".

Spend guards (an actor run is billed, so it is never started twice by accident):
- a run-starting POST is never retried blind: the input carries a marker
  (`asinwatchRequestId`); after an ambiguous answer (5xx, dropped connection) the actor's newest
  runs (`GET /actors/{actor}/runs?desc=1`) are checked for it via their INPUT record, and the
  run found is adopted; only when none carries it is the POST tried again; when the check
  itself fails, ApifyStartUnknownError (the batch's next attempt reconciles first);
- `known_run_ids` (the batch's earlier runs) are reused when SUCCEEDED or still in flight;
- 404 / 5xx / connection errors while polling an in-flight run are retried for
  `poll_outage_s`, then ApifyRunUnreachableError (not permanent);
- the dataset is read up to maxItems + `dataset_item_slack` items, `max_dataset_bytes` and
  `max_dataset_pages`, whatever the pagination headers claim; the excess is dropped and noted;
- `usageTotalUsd` must be finite, >= 0 and <= `max_sane_run_cost_usd`, else it is noted as
  unknown (and counted as 0).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from asinwatch.catalog.marketplaces import (
    InvalidAsinError,
    UnknownMarketplaceError,
    get_marketplace,
    normalise_asin,
    product_url,
)
from asinwatch.config import ApifySettings, get_settings
from asinwatch.ingestion.normalise import normalise_products, normalise_reviews
from asinwatch.ingestion.rawjson import loads_bounded
from asinwatch.ingestion.records import FetchResult
from asinwatch.ingestion.sources.base import BeforeRequestHook, RateLimitedHook
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
)
from asinwatch.kit import netguard
from asinwatch.observability.logging import MASK, mask_text
from asinwatch.observability.metrics import (
    UPSTREAM_COST_USD,
    UPSTREAM_GUARDS,
    UPSTREAM_LATENCY,
    UPSTREAM_REQUESTS,
    UPSTREAM_RETRIES,
    UPSTREAM_RUNS,
)

log = structlog.get_logger(__name__)

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
_ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(?:~[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")
MARKER_FIELD = "asinwatchRequestId"
RunStartedHook = Callable[[str, str], Awaitable[None] | None]  # (actor, upstream run id)


@dataclass(frozen=True, slots=True)
class DatasetRead:
    """A dataset read within the budgets: the items kept and what was left out."""

    items: list[Any]
    truncated: str | None = None  # "items" | "bytes" | "pages" when a budget stopped it
    dropped: int = 0  # items received and discarded
    unread_claimed: int | None = None  # items the Total header still claimed, never read


@dataclass(frozen=True, slots=True)
class ActorRun:
    """A finished actor run and its dataset."""

    run_id: str
    actor: str
    status: str
    dataset_id: str
    started_at: datetime
    cost_usd: Decimal  # 0 when the reported cost was unusable (see `notes`)
    items: list[Any]
    run: dict[str, Any]
    notes: tuple[dict[str, Any], ...] = ()  # what the spend guards did (JSON-able)


def check_allowed_url(url: str, allowed_hosts: Sequence[str]) -> None:
    """Refuse any URL whose host is not allow-listed (and plain http except on loopback)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    allowed = {h.strip().lower() for h in allowed_hosts}
    if parts.username or parts.password:
        raise DisallowedHostError("refused an upstream URL with credentials in it")
    if not host or host not in allowed:
        raise DisallowedHostError(
            f"refused outbound request to host {host or '?'!r}: not in the Apify allow-list"
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        raise DisallowedHostError(f"refused {parts.scheme or '?'}:// to {host!r}: https only")


def guarded_transport(allowed_hosts: Sequence[str]) -> netguard.AsyncGuardedTransport:
    """The adapter's transport: an allow-listed *name* must resolve to external addresses
    only, and the request goes to the address that was checked (no DNS rebinding); an
    allow-listed address literal or ``localhost`` (the simulator) is reached as it is."""
    literal = [
        h
        for h in allowed_hosts
        if netguard.parse_address(h) is not None or netguard.normalise_host(h) == "localhost"
    ]
    return netguard.AsyncGuardedTransport(trusted_hosts=literal)


def run_cost(run: dict[str, Any], sane_max_usd: float) -> Decimal | None:
    """`usageTotalUsd` if it is a usable cost (finite, >= 0, <= sane_max_usd); None if not.

    Absent or null counts as 0 (a run that has just started reports no usage yet).
    """
    raw = run.get("usageTotalUsd")
    if raw is None:
        return Decimal(0)
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or value > Decimal(str(sane_max_usd)):
        return None
    return value


def _parse_time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


class ApifySource:
    """A `Source` over the Apify API v2 (the real service or the local simulator)."""

    def __init__(
        self,
        settings: ApifySettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        before_request: BeforeRequestHook | None = None,
        on_rate_limited: RateLimitedHook | None = None,
        page_size: int = 1000,
        max_offers: int = 0,
        actor_route: Literal["actors", "acts"] = "actors",
        clock: Callable[[], float] = time.monotonic,
        min_poll_interval_s: float = 0.25,
        known_run_ids: Sequence[str] = (),
        reconcile_first: bool = False,
        marker: str | None = None,
        on_run_started: RunStartedHook | None = None,
    ) -> None:
        """`known_run_ids`: upstream runs an earlier attempt of this batch started (reused when
        SUCCEEDED or in flight). `marker`: a stable id of the batch, so a retry can recognise
        its own runs (default: a fresh one per source). `reconcile_first`: look for a run with
        the marker before starting one (a retried batch whose last start was ambiguous).
        `on_run_started(actor, run_id)` is awaited as soon as a run is known to exist."""
        self.settings = settings or get_settings().apify
        self._base = self.settings.base_url.rstrip("/")
        check_allowed_url(self._base + "/", self.settings.allowed_hosts)
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._token = self.settings.token.get_secret_value()
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            transport=guarded_transport(self.settings.allowed_hosts),
            timeout=self.settings.request_timeout_s,
            follow_redirects=False,
            trust_env=False,
        )
        self._before_request = before_request
        self._on_rate_limited = on_rate_limited
        self._page_size = page_size
        self._max_offers = max_offers
        self._route = actor_route
        self._clock = clock
        self._min_poll_s = min_poll_interval_s
        self._known = [r for r in known_run_ids if isinstance(r, str) and _ID.match(r)]
        self._reconcile_first = reconcile_first
        self._marker = marker or f"aw-{uuid.uuid4().hex}"
        self._on_run_started = on_run_started
        self._actor_ids: dict[str, str] = {}
        self._lost_sight: set[str] = set()  # runs whose polling saw an outage

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> ApifySource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the Source protocol ----------------------------------------------------------

    async def fetch_products(self, marketplace: str, asins: Sequence[str]) -> FetchResult:
        domain, wanted = self._validate(marketplace, asins)
        if not wanted:
            return _empty()
        run_input = {
            "categoryOrProductUrls": [{"url": product_url(domain, a)} for a in wanted],
            "maxItemsPerStartUrl": 1,
            "maxOffers": self._max_offers,
            "scrapeProductDetails": True,
            "useCaptchaSolver": False,
        }
        run = await self.run_actor(self.settings.product_actor, run_input, max_items=len(wanted))
        norm = normalise_products(
            run.items,
            marketplace=domain,
            requested=wanted,
            observed_at=run.started_at,
            now=datetime.now(UTC),
        )
        return FetchResult(
            raw_items=run.items,
            records=norm.records,
            reviews=[],
            quarantined=norm.quarantined,
            missing_asins=norm.missing_asins,
            cost_usd=run.cost_usd,
            upstream_run_ids=[run.run_id],
            observed_at=run.started_at,
            upstream_notes=run.notes,
        )

    async def fetch_reviews(self, marketplace: str, asins: Sequence[str]) -> FetchResult:
        domain, wanted = self._validate(marketplace, asins)
        per_asin = self.settings.max_reviews_per_asin
        if not wanted or per_asin == 0:
            return _empty()
        run_input = {
            "productUrls": [{"url": product_url(domain, a)} for a in wanted],
            "maxReviews": per_asin,
            "sort": "recent",
        }
        run = await self.run_actor(
            self.settings.reviews_actor, run_input, max_items=per_asin * len(wanted)
        )
        norm = normalise_reviews(
            run.items,
            marketplace=domain,
            requested=wanted,
            observed_at=run.started_at,
            now=datetime.now(UTC),
        )
        return FetchResult(
            raw_items=run.items,
            records=[],
            reviews=norm.reviews,
            quarantined=norm.quarantined,
            missing_asins=norm.asins_without_reviews,
            cost_usd=run.cost_usd,
            upstream_run_ids=[run.run_id],
            observed_at=run.started_at,
            upstream_notes=run.notes,
        )

    # --- runs -------------------------------------------------------------------------

    async def run_actor(
        self, actor: str, run_input: dict[str, Any], *, max_items: int | None = None
    ) -> ActorRun:
        """Start (or reuse) a run, wait for it within the budgets, read its dataset."""
        started = self._clock()
        notes: list[dict[str, Any]] = []
        marker = f"{self._marker}:{actor}"
        run = await self._reusable_run(actor, marker)
        if run is not None:
            notes.append({"guard": "run_reused", "actor": actor, "run_id": run.get("id")})
        else:
            run_input = {**run_input, MARKER_FIELD: marker}
            run = await self.start_run(actor, run_input, max_items=max_items, marker=marker)
        run_id = self._id(run.get("id"), "run id")
        await self._started(actor, run_id)
        log.info("apify.run.started", actor=actor, run_id=run_id, max_items=max_items)
        while str(run.get("status")) not in TERMINAL:
            await self._enforce_budget(actor, run_id, run, started)
            remaining = self.settings.run_timeout_s - (self._clock() - started)
            wait = int(max(0.0, min(float(self.settings.poll_wait_s), remaining)))
            run = await self._poll(run_id, wait)
            if wait == 0 and str(run.get("status")) not in TERMINAL:
                await asyncio.sleep(self._min_poll_s)
        if run_id in self._lost_sight and not await self._carries(run, marker):
            # After an outage the id may name another run (an upstream that lost its state).
            raise ApifyRunUnreachableError(
                f"Apify run {run_id} of {actor} vanished during polling", run_id=run_id
            )
        status = str(run.get("status"))
        cost = self._cost(run, actor, run_id, notes)
        UPSTREAM_COST_USD.labels(actor).inc(float(cost))
        UPSTREAM_RUNS.labels(actor, status.lower().replace("-", "_")).inc()
        if cost > Decimal(str(self.settings.max_run_cost_usd)):
            log.warning("apify.run.over_budget_after_finish", run_id=run_id, cost_usd=str(cost))
        if status != "SUCCEEDED":
            raise ApifyRunFailedError(
                f"Apify run {run_id} of {actor} ended {status}",
                run_id=run_id,
                status=status,
                cost_usd=cost,
            )
        dataset_id = self._id(run.get("defaultDatasetId"), "dataset id")
        read = await self.read_dataset(dataset_id, max_items=max_items)
        if read.truncated:
            UPSTREAM_GUARDS.labels(f"dataset_{read.truncated}").inc()
            note = {
                "guard": "dataset_truncated",
                "actor": actor,
                "run_id": run_id,
                "reason": read.truncated,
                "kept": len(read.items),
                "dropped": read.dropped,
                "unread_claimed": read.unread_claimed,
            }
            notes.append(note)
            log.warning("apify.dataset.truncated", **note)
        log.info(
            "apify.run.finished",
            actor=actor,
            run_id=run_id,
            status=status,
            items=len(read.items),
            cost=str(cost),
            latency_ms=round((self._clock() - started) * 1000),
        )
        return ActorRun(
            run_id=run_id,
            actor=actor,
            status=status,
            dataset_id=dataset_id,
            started_at=_parse_time(run.get("startedAt")),
            cost_usd=cost,
            items=read.items,
            run=run,
            notes=tuple(notes),
        )

    def _cost(
        self, run: dict[str, Any], actor: str, run_id: str, notes: list[dict[str, Any]] | None
    ) -> Decimal:
        cost = run_cost(run, self.settings.max_sane_run_cost_usd)
        if cost is not None:
            return cost
        raw = str(run.get("usageTotalUsd"))[:40]
        if notes is not None:
            UPSTREAM_GUARDS.labels("cost_unknown").inc()
            notes.append({"guard": "cost_unknown", "actor": actor, "run_id": run_id, "raw": raw})
            log.warning("apify.run.cost_unknown", actor=actor, run_id=run_id, raw=raw)
        return Decimal(0)

    async def _started(self, actor: str, run_id: str) -> None:
        if self._on_run_started is None:
            return
        result = self._on_run_started(actor, run_id)
        if inspect.isawaitable(result):
            await result

    async def _reusable_run(self, actor: str, marker: str) -> dict[str, Any] | None:
        """The newest of `known_run_ids` of this actor if it SUCCEEDED or is in flight (and
        its INPUT carries our marker: an id alone could name another batch's run)."""
        if not self._known:
            return None
        actor_id = await self._actor_id(actor)
        for run_id in reversed(self._known):
            try:
                run = await self.get_run(run_id)
            except ApifyNotFoundError:
                continue  # gone upstream: nothing to reuse
            if run.get("actId") != actor_id:
                continue
            status = str(run.get("status"))
            if not await self._carries(run, marker):
                continue
            if status == "SUCCEEDED" or status not in TERMINAL:
                UPSTREAM_GUARDS.labels("run_reused").inc()
                log.info("apify.run.reused", actor=actor, run_id=run_id, status=status)
                return run
            return None  # its latest run failed: a new one is needed
        return None

    async def _actor_id(self, actor: str) -> str:
        if actor not in self._actor_ids:
            if not _ACTOR.match(actor):
                raise ApifyClientError(f"invalid actor id {actor[:60]!r}")
            path = f"/{self._route}/{quote(actor, safe='~')}"
            data = self._data(await self._request("GET", path, "actor.get"), "actor.get")
            self._actor_ids[actor] = self._id(data.get("id"), "actor id")
        return self._actor_ids[actor]

    async def _poll(self, run_id: str, wait: int) -> dict[str, Any]:
        """One status read of an in-flight run; transient failures retried for poll_outage_s."""
        retrying = AsyncRetrying(
            stop=stop_after_delay(self.settings.poll_outage_s),
            wait=wait_random_exponential(
                multiplier=self.settings.backoff_base_s, max=self.settings.backoff_max_s
            ),
            retry=retry_if_exception_type((ApifyRetryableError, ApifyNotFoundError)),
            before_sleep=_log_retry,
            reraise=True,
        )

        async def attempt() -> dict[str, Any]:
            try:
                return await self.get_run(run_id, wait_s=wait, retries=False)
            except (ApifyNotFoundError, ApifyRetryableError):
                self._lost_sight.add(run_id)
                raise

        try:
            run: dict[str, Any] = await retrying(attempt)
        except (ApifyRetryableError, ApifyNotFoundError) as exc:
            raise ApifyRunUnreachableError(
                f"lost track of Apify run {run_id} for {self.settings.poll_outage_s:.0f}s: {exc}",
                run_id=run_id,
                status_code=exc.status_code,
                endpoint="run.get",
            ) from None
        return run

    async def _enforce_budget(
        self, actor: str, run_id: str, run: dict[str, Any], started: float
    ) -> None:
        cost = self._cost(run, actor, run_id, None)
        elapsed = self._clock() - started
        if cost > Decimal(str(self.settings.max_run_cost_usd)):
            reason, why = "cost", f"cost ${cost} > ${self.settings.max_run_cost_usd}"
        elif elapsed > self.settings.run_timeout_s:
            reason, why = "time", f"ran {elapsed:.0f}s > {self.settings.run_timeout_s}s"
        else:
            return
        try:
            final = await self.abort_run(run_id)
            cost = max(cost, self._cost(final, actor, run_id, None))
        except ApifyError as exc:
            log.warning("apify.run.abort_failed", run_id=run_id, error=str(exc))
        UPSTREAM_COST_USD.labels(actor).inc(float(cost))
        UPSTREAM_RUNS.labels(actor, f"budget_{reason}").inc()
        log.warning("apify.run.aborted", actor=actor, run_id=run_id, reason=reason, cost=str(cost))
        raise ApifyBudgetExceededError(
            f"aborted Apify run {run_id} of {actor}: {why}",
            run_id=run_id,
            reason=reason,
            cost_usd=cost,
        )

    async def start_run(
        self,
        actor: str,
        run_input: dict[str, Any],
        *,
        max_items: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """Start a run. With `marker` (also in `run_input`), an ambiguous answer is reconciled
        with the actor's newest runs; without it, an ambiguous answer is never retried."""
        if not _ACTOR.match(actor):
            raise ApifyClientError(f"invalid actor id {actor[:60]!r}")
        if marker is not None and self._reconcile_first:
            found = await self.find_run(actor, marker)
            if found is not None:
                UPSTREAM_GUARDS.labels("run_adopted").inc()
                log.info("apify.run.adopted", actor=actor, run_id=found.get("id"), when="before")
                return found
        params: dict[str, str] = {
            "timeout": str(self.settings.run_timeout_s),
            "maxTotalChargeUsd": str(self.settings.max_run_cost_usd),
        }
        if max_items is not None:
            params["maxItems"] = str(max_items)
        path = f"/{self._route}/{quote(actor, safe='~')}/runs"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=wait_random_exponential(
                multiplier=self.settings.backoff_base_s, max=self.settings.backoff_max_s
            ),
            retry=retry_if_exception_type(ApifyRetryableError),
            before_sleep=_log_retry,
            reraise=True,
        )
        run: dict[str, Any] = await retrying(
            self._start_once, actor, path, params, run_input, marker
        )
        return run

    async def _start_once(
        self,
        actor: str,
        path: str,
        params: dict[str, str],
        run_input: dict[str, Any],
        marker: str | None,
    ) -> dict[str, Any]:
        """One POST. Raises a retryable error only when no run can have started from it."""
        try:
            resp = await self._request(
                "POST", path, "run.start", params=params, json=run_input, retries=False
            )
        except (ApifyServerError, ApifyTransportError) as exc:
            if isinstance(exc, ApifyTransportError) and not exc.maybe_sent:
                raise  # never connected: nothing was sent
            if marker is None:
                raise ApifyStartUnknownError(
                    f"run start of {actor} answered ambiguously and is not retried: {exc}",
                    status_code=exc.status_code,
                    endpoint="run.start",
                ) from None
            try:
                found = await self.find_run(actor, marker)
            except ApifyError as check:
                raise ApifyStartUnknownError(
                    f"run start of {actor} answered ambiguously ({exc}) and the check of its"
                    f" recent runs failed ({check}): not retried",
                    status_code=exc.status_code,
                    endpoint="run.start",
                ) from None
            if found is not None:
                UPSTREAM_GUARDS.labels("run_adopted").inc()
                log.warning(
                    "apify.run.adopted", actor=actor, run_id=found.get("id"), error=str(exc)
                )
                return found
            UPSTREAM_GUARDS.labels("start_not_started").inc()
            raise exc  # no run carries our marker: a new POST cannot duplicate one
        return self._data(resp, "run.start")

    async def find_run(self, actor: str, marker: str) -> dict[str, Any] | None:
        """The actor's newest run whose INPUT carries `marker` and that SUCCEEDED or is in
        flight, among its newest `reconcile_scan_runs` (a failed one is no use to adopt)."""
        path = f"/{self._route}/{quote(actor, safe='~')}/runs"
        params = {"desc": "1", "limit": str(self.settings.reconcile_scan_runs)}
        listing = self._data(
            await self._request("GET", path, "run.list", params=params), "run.list"
        )
        entries = listing.get("items")
        if not isinstance(entries, list):
            raise ApifyError("upstream run list has no `items` array", endpoint="run.list")
        for entry in entries[: self.settings.reconcile_scan_runs]:
            if not isinstance(entry, dict):
                continue
            store = entry.get("defaultKeyValueStoreId")
            run_id = entry.get("id")
            if not (isinstance(store, str) and _ID.match(store) and isinstance(run_id, str)):
                continue
            status = str(entry.get("status"))
            if status in TERMINAL and status != "SUCCEEDED":
                continue
            if await self._carries(entry, marker):
                # The list entry carries id, status and dataset; polling refreshes the rest.
                return entry
        return None

    async def _carries(self, run: dict[str, Any], marker: str) -> bool:
        """Whether the run's INPUT record (in its default key-value store) has our marker."""
        store = run.get("defaultKeyValueStoreId")
        if not (isinstance(store, str) and _ID.match(store)):
            return False
        try:
            resp = await self._request(
                "GET", f"/key-value-stores/{store}/records/INPUT", "run.input"
            )
        except ApifyNotFoundError:
            return False
        body = self._json(resp, "run.input")
        return isinstance(body, dict) and body.get(MARKER_FIELD) == marker

    async def get_run(
        self, run_id: str, *, wait_s: int = 0, retries: bool = True
    ) -> dict[str, Any]:
        params = {"waitForFinish": str(min(max(wait_s, 0), 60))} if wait_s else None
        path = f"/actor-runs/{self._id(run_id, 'run id')}"
        resp = await self._request(
            "GET", path, "run.get", params=params, extra_timeout=wait_s, retries=retries
        )
        return self._data(resp, "run.get")

    async def abort_run(self, run_id: str) -> dict[str, Any]:
        path = f"/actor-runs/{self._id(run_id, 'run id')}/abort"
        return self._data(await self._request("POST", path, "run.abort"), "run.abort")

    async def list_items(self, dataset_id: str, *, max_items: int | None = None) -> list[Any]:
        """The dataset's items within the read budgets (see `read_dataset`)."""
        return (await self.read_dataset(dataset_id, max_items=max_items)).items

    async def read_dataset(self, dataset_id: str, *, max_items: int | None = None) -> DatasetRead:
        """Page a dataset (`limit` applies before empties are skipped) within the budgets:
        `max_items` + `dataset_item_slack` items, `max_dataset_bytes`, `max_dataset_pages`."""
        path = f"/datasets/{self._id(dataset_id, 'dataset id')}/items"
        s = self.settings
        cap = None if max_items is None else max_items + s.dataset_item_slack
        items: list[Any] = []
        offset = nbytes = dropped = 0
        total: int | None = None
        for _ in range(s.max_dataset_pages):
            want = self._page_size if cap is None else min(self._page_size, cap - len(items))
            if want <= 0:
                return self._truncated(items, "items", dropped, total, offset)
            params = {"offset": str(offset), "limit": str(want), "clean": "true"}
            resp = await self._request("GET", path, "dataset.items", params=params)
            nbytes += len(resp.content)
            page = self._json(resp, "dataset.items")
            if not isinstance(page, list):
                raise ApifyError("dataset items are not a JSON array", endpoint="dataset.items")
            if nbytes > s.max_dataset_bytes:
                return self._truncated(items, "bytes", dropped + len(page), total, offset)
            if len(page) > want:  # the server ignored `limit`
                dropped += len(page) - want
                page = page[:want]
            items.extend(page)
            total = _header_int(resp, "X-Apify-Pagination-Total")
            applied = _header_int(resp, "X-Apify-Pagination-Limit") or want
            offset += max(min(applied, want), len(page))
            if total is None:
                if not page:
                    return DatasetRead(
                        items, dropped=dropped, truncated="items" if dropped else None
                    )
            elif offset >= total:
                return DatasetRead(items, dropped=dropped, truncated="items" if dropped else None)
        return self._truncated(items, "pages", dropped, total, offset)

    @staticmethod
    def _truncated(
        items: list[Any], reason: str, dropped: int, total: int | None, offset: int
    ) -> DatasetRead:
        unread = max(total - offset, 0) if total is not None else None
        return DatasetRead(items, truncated=reason, dropped=dropped, unread_claimed=unread)

    # --- HTTP -------------------------------------------------------------------------

    def _validate(self, marketplace: str, asins: Sequence[str]) -> tuple[str, list[str]]:
        try:
            domain = get_marketplace(marketplace).domain
        except UnknownMarketplaceError as exc:
            raise InvalidBatchError(str(exc)) from None
        if isinstance(asins, str):
            raise InvalidBatchError("asins must be a list of ASINs, not one string")
        wanted: list[str] = []
        bad: list[str] = []
        for value in asins:
            try:
                wanted.append(normalise_asin(value if isinstance(value, str) else repr(value)))
            except InvalidAsinError:
                bad.append(repr(value)[:24])
        if bad:
            shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
            raise InvalidBatchError(f"batch refused, not ASINs: {shown}")
        if not self._token:
            raise ApifyAuthError("no Apify token configured (ASINWATCH_APIFY__TOKEN)")
        return domain, list(dict.fromkeys(wanted))

    def _id(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or not _ID.match(value):
            raise ApifyError(f"upstream returned an unusable {what}: {str(value)[:40]!r}")
        return value

    def _mask(self, text: str) -> str:
        text = mask_text(text)
        if len(self._token) >= 4:
            text = text.replace(self._token, MASK)
        return text

    def _json(self, resp: httpx.Response, endpoint: str) -> Any:
        try:
            # Depth-bounded: one absurdly nested item must not make the whole page unreadable.
            return loads_bounded(resp.content)
        except ValueError:
            raise ApifyError(
                "upstream answered with a body that is not JSON",
                status_code=resp.status_code,
                endpoint=endpoint,
            ) from None

    def _data(self, resp: httpx.Response, endpoint: str) -> dict[str, Any]:
        body = self._json(resp, endpoint)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ApifyError("upstream answer has no `data` object", endpoint=endpoint)
        return data

    async def _request(
        self,
        method: str,
        path: str,
        endpoint: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        extra_timeout: float = 0.0,
        retries: bool = True,
    ) -> httpx.Response:
        url = self._base + path
        check_allowed_url(url, self.settings.allowed_hosts)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_retries + 1 if retries else 1),
            wait=wait_random_exponential(
                multiplier=self.settings.backoff_base_s, max=self.settings.backoff_max_s
            ),
            retry=retry_if_exception_type(ApifyRetryableError),
            before_sleep=_log_retry,
            reraise=True,
        )
        response: httpx.Response = await retrying(
            self._send_once, method, url, endpoint, params, json, extra_timeout
        )
        return response

    async def _send_once(
        self,
        method: str,
        url: str,
        endpoint: str,
        params: dict[str, str] | None,
        json: Any,
        extra_timeout: float,
    ) -> httpx.Response:
        if self._before_request is not None:
            await self._before_request()
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        t0 = time.perf_counter()
        try:
            resp = await self._client.request(
                method,
                url,
                params=params,
                json=json,
                headers=headers,
                timeout=self.settings.request_timeout_s + extra_timeout,
                follow_redirects=False,
            )
        except netguard.BlockedAddressError as exc:
            UPSTREAM_REQUESTS.labels(endpoint, "refused").inc()
            raise DisallowedHostError(f"refused outbound request: {exc}") from None
        except httpx.TransportError as exc:
            UPSTREAM_REQUESTS.labels(endpoint, "transport_error").inc()
            raise ApifyTransportError(
                self._mask(f"{type(exc).__name__}: {exc}"),
                endpoint=endpoint,
                maybe_sent=not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout),
            ) from None
        finally:
            UPSTREAM_LATENCY.labels(endpoint).observe(time.perf_counter() - t0)
        status = resp.status_code
        UPSTREAM_REQUESTS.labels(endpoint, str(status)).inc()
        if status < 300:
            return resp
        if status < 400:
            target = urlsplit(resp.headers.get("location", "")).hostname or "?"
            raise DisallowedHostError(
                f"upstream answered {status} redirect to {target!r}; redirects are not followed"
            )
        error_type, message = self._error_body(resp)
        kwargs: dict[str, Any] = {
            "status_code": status,
            "error_type": error_type,
            "endpoint": endpoint,
        }
        text = self._mask(f"Apify {endpoint} failed: {message}")
        if status == 429:
            await self._rate_limited()
            raise ApifyRateLimitError(text, **kwargs)
        if status >= 500:
            raise ApifyServerError(text, **kwargs)
        if status in (401, 403):
            raise ApifyAuthError(text, **kwargs)
        if status == 404:
            raise ApifyNotFoundError(text, **kwargs)
        raise ApifyClientError(text, **kwargs)

    async def _rate_limited(self) -> None:
        if self._on_rate_limited is None:
            return
        result = self._on_rate_limited()
        if inspect.isawaitable(result):
            await result

    @staticmethod
    def _error_body(resp: httpx.Response) -> tuple[str | None, str]:
        try:
            body = resp.json()
        except ValueError:
            snippet = " ".join(resp.text.split())[:120]
            return None, f"HTTP {resp.status_code} with a non-JSON body: {snippet!r}"
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            kind = error.get("type")
            return (str(kind) if kind else None), str(error.get("message") or kind or "")[:300]
        return None, f"HTTP {resp.status_code}"


def _header_int(resp: httpx.Response, name: str) -> int | None:
    raw = resp.headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    endpoint = getattr(exc, "endpoint", None) or "?"
    reason = getattr(exc, "error_type", None) or type(exc).__name__
    UPSTREAM_RETRIES.labels(endpoint, str(reason)).inc()
    log.warning(
        "apify.retry",
        endpoint=endpoint,
        attempt=state.attempt_number,
        status=getattr(exc, "status_code", None),
        error=str(exc)[:200],
        sleep_s=round(state.next_action.sleep, 3) if state.next_action else None,
    )


def _empty() -> FetchResult:
    return FetchResult([], [], [], [], [], Decimal(0), [], datetime.now(UTC))

"""The simulator's core, without HTTP: actors, runs, datasets, injected faults and ground truth.

Runs progress with the wall clock (READY -> RUNNING -> SUCCEEDED after `run_duration_s`,
0 in tests) and are dated by the simulated clock, so a run started "on day 37" has
`startedAt` on day 37 and sees that day's listings. Items are regenerated from the run's
parameters on demand (a small LRU keeps recent ones), so retained runs cost a few hundred bytes.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from asinwatch.catalog.marketplaces import MARKETPLACES, is_asin
from asinwatch.config import SimulatorSettings
from asinwatch.simulator.clock import SimClock
from asinwatch.simulator.hostile import HOSTILE_KINDS, hostile_item, hostile_reviews
from asinwatch.simulator.items import (
    BLOCK_KINDS,
    bad_review_item,
    block_item,
    product_item,
    review_items,
)
from asinwatch.simulator.market import (
    EVENT_TYPES,
    SELLER_AMAZON,
    MarketModel,
    SimEvent,
    seller_identity,
)
from asinwatch.simulator.randomness import apify_id, unit

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED-OUT", "ABORTED"})
USD_PER_COMPUTE_UNIT = 0.4
_PRODUCT_URL = re.compile(
    r"^https?://(?:www\.)?(?P<domain>amazon\.[a-z.]+)/(?:[^?#]*/)?(?:dp|gp/product)/(?P<asin>[A-Za-z0-9]{10})(?:[/?#].*)?$"
)


class SimInputError(ValueError):
    """The actor input or a query parameter is invalid (HTTP 400 invalid-input)."""


@dataclass(frozen=True, slots=True)
class ActorSpec:
    id: str
    name: str  # owner~name
    kind: str  # "products" | "reviews"
    default_memory_mb: int
    default_timeout_s: int


ACTORS: tuple[ActorSpec, ...] = (
    ActorSpec(
        apify_id("actor", "junglee~amazon-crawler"),
        "junglee~amazon-crawler",
        "products",
        1024,
        3600,
    ),
    ActorSpec(
        apify_id("actor", "junglee~amazon-reviews-scraper"),
        "junglee~amazon-reviews-scraper",
        "reviews",
        1024,
        3600,
    ),
)


@dataclass(slots=True)
class SimConfig:
    """Everything that shapes the simulated upstream; change it live with `Simulator.configure`."""

    seed: int = 42
    token: str = "sim-token"
    epoch: date = date(2026, 1, 1)
    latency_ms: int = 0
    error_rate: float = 0.0  # share of /v2 requests answered 429 or 5xx
    block_rate: float = 0.02  # share of items that are block pages
    dead_rate: float = 0.0  # share of ASINs whose page is gone (no item)
    run_fail_rate: float = 0.0  # share of runs that end FAILED
    run_duration_s: float = 0.0  # wall-clock seconds a run takes ...
    run_seconds_per_item: float = 0.0  # ... plus this per item
    price_per_product_usd: float = 0.003
    price_per_review_usd: float = 0.003
    start_cost_usd: float = 0.001  # compute billed for booting the run
    honour_max_charge: bool = True  # stop producing items at maxTotalChargeUsd
    max_runs: int = 2000  # runs kept in memory (oldest forgotten first)
    timeline_cache: int = 6000  # listings whose history stays computed (~6 KB per 100 days)
    max_block_events: int = 200_000
    # ASIN -> one of hostile.HOSTILE_KINDS: that listing's item carries one odd value.
    hostile: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, s: SimulatorSettings, **overrides: Any) -> SimConfig:
        base = cls(
            seed=s.seed,
            token=s.token.get_secret_value(),
            latency_ms=s.latency_ms,
            error_rate=s.error_rate,
            block_rate=s.block_rate,
        )
        return replace(base, **overrides)


@dataclass(slots=True)
class Run:
    id: str
    seq: int
    actor: ActorSpec
    dataset_id: str
    kv_store_id: str
    request_queue_id: str
    started_at: datetime  # simulated
    day: int
    created_mono: float
    duration_s: float
    timeout_s: int
    memory_mb: int
    build: str
    max_items: int | None
    max_charge_usd: float | None
    targets: tuple[tuple[str, str, str], ...]  # (marketplace, asin, input url)
    max_reviews: int
    max_offers: int
    total_items: int = 0
    unit_price_usd: float = 0.0
    fails: bool = False
    aborted_after_s: float | None = None
    block_indexes: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    status: str
    elapsed_s: float
    items_done: int


class Simulator:
    """An Apify-compatible simulated marketplace. Thread-safe."""

    def __init__(self, config: SimConfig | None = None, clock: SimClock | None = None) -> None:
        self.config = config or SimConfig()
        start = datetime.combine(self.config.epoch, datetime.min.time(), UTC)
        self.clock = clock or SimClock(start)
        self.market = MarketModel(
            self.config.seed,
            self.config.epoch,
            dead_rate=self.config.dead_rate,
            cache_size=self.config.timeline_cache,
        )
        self._lock = threading.RLock()
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._datasets: dict[str, str] = {}
        self._items_cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._block_events: deque[SimEvent] = deque(maxlen=self.config.max_block_events)
        self._tracked: set[tuple[str, str]] = set()
        self._run_seq = 0
        self._runs_by_actor: Counter[str] = Counter()
        self._request_seq = 0
        self.requests: deque[tuple[str, str]] = deque(maxlen=10_000)

    # --- configuration and accounting -------------------------------------------------

    def configure(self, **changes: Any) -> SimConfig:
        """Change fault rates, latency or run duration live (seed and epoch stay)."""
        with self._lock:
            for key in ("seed", "epoch", "dead_rate", "timeline_cache"):
                if key in changes:
                    raise ValueError(f"{key} cannot change on a running simulator")
            unknown = set(changes.get("hostile", {}).values()) - set(HOSTILE_KINDS)
            if unknown:
                raise ValueError(f"unknown hostile kinds: {sorted(unknown)}")
            self.config = replace(self.config, **changes)
            return self.config

    @property
    def request_count(self) -> int:
        """How many /v2 requests arrived (including refused and faulted ones)."""
        return self._request_seq

    @property
    def run_count(self) -> int:
        return self._run_seq

    def runs_by_actor(self) -> dict[str, int]:
        """How many runs each actor ("owner~name") was started for (each one is billed)."""
        with self._lock:
            return dict(self._runs_by_actor)

    def note_request(self, method: str, path: str) -> int:
        with self._lock:
            n = self._request_seq
            self._request_seq += 1
            self.requests.append((method, path))
            return n

    def injected_fault(self, n: int) -> tuple[int, str] | None:
        """The fault request n gets, if any: deterministic from (seed, n)."""
        if unit(self.config.seed, "fault", n) >= self.config.error_rate:
            return None
        k = unit(self.config.seed, "fault-kind", n)
        if k < 0.5:
            return 429, "rate-limit-exceeded"
        if k < 0.7:
            return 500, "internal-server-error"
        if k < 0.85:
            return 502, "bad-gateway"
        return 503, "service-unavailable"

    # --- actors and runs --------------------------------------------------------------

    def find_actor(self, ref: str) -> ActorSpec | None:
        ref = ref.replace("/", "~")
        return next((a for a in ACTORS if ref in (a.id, a.name)), None)

    def create_run(self, actor: ActorSpec, run_input: Any, params: dict[str, str]) -> Run:
        if not isinstance(run_input, dict):
            raise SimInputError("Input must be a JSON object")
        timeout_s = _int_param(params, "timeout", actor.default_timeout_s, minimum=0)
        memory = _int_param(params, "memory", actor.default_memory_mb, minimum=128)
        if memory & (memory - 1):
            raise SimInputError("Parameter 'memory' must be a power of 2")
        max_items = _opt_int_param(params, "maxItems")
        max_charge = _opt_float_param(params, "maxTotalChargeUsd")
        if actor.kind == "products":
            urls = _url_list(run_input, "categoryOrProductUrls")
            max_reviews = 0
            max_offers = _int_value(run_input.get("maxOffers", 0), "maxOffers")
        else:
            urls = _url_list(run_input, "productUrls")
            max_reviews = _int_value(run_input.get("maxReviews", 100), "maxReviews")
            max_offers = 0
        targets = tuple(t for t in (_parse_product_url(u) for u in urls) if t is not None)
        cfg = self.config
        with self._lock:
            seq = self._run_seq
            self._run_seq += 1
            self._runs_by_actor[actor.name] += 1
            started = self.clock.now()
            run = Run(
                id=apify_id(cfg.seed, "run", seq),
                seq=seq,
                actor=actor,
                dataset_id=apify_id(cfg.seed, "dataset", seq),
                kv_store_id=apify_id(cfg.seed, "kvs", seq),
                request_queue_id=apify_id(cfg.seed, "rq", seq),
                started_at=started,
                day=self.market.day_of(started),
                created_mono=time.monotonic(),
                duration_s=0.0,
                timeout_s=timeout_s,
                memory_mb=memory,
                build=params.get("build", "latest"),
                max_items=max_items,
                max_charge_usd=max_charge,
                targets=targets,
                max_reviews=max_reviews,
                max_offers=max_offers,
                unit_price_usd=(
                    cfg.price_per_product_usd
                    if actor.kind == "products"
                    else cfg.price_per_review_usd
                ),
                fails=unit(cfg.seed, "run-fails", seq) < cfg.run_fail_rate,
            )
            for i in range(len(targets)):
                if unit(cfg.seed, "block", seq, i) < cfg.block_rate:
                    k = int(unit(cfg.seed, "block-kind", seq, i) * len(BLOCK_KINDS))
                    run.block_indexes[i] = (
                        BLOCK_KINDS[k] if actor.kind == "products" else "bad_review"
                    )
            items = self._materialise(run)
            self._cache_items(run.id, items)
            total = len(items)
            if max_items is not None:
                total = min(total, max_items)
            if cfg.honour_max_charge and max_charge is not None and run.unit_price_usd > 0:
                total = min(total, int(max_charge / run.unit_price_usd + 1e-9))
            run.total_items = total
            run.duration_s = cfg.run_duration_s + cfg.run_seconds_per_item * total
            self._runs[run.id] = run
            self._datasets[run.dataset_id] = run.id
            while len(self._runs) > cfg.max_runs:
                old_id, old = self._runs.popitem(last=False)
                self._datasets.pop(old.dataset_id, None)
                self._items_cache.pop(old_id, None)
            for mp, asin, _ in targets:
                self._tracked.add((mp, asin))
            for i, kind in run.block_indexes.items():
                mp, asin, _ = targets[i]
                self._block_events.append(
                    SimEvent(asin, mp, started, "block_page", {"kind": kind, "run_id": run.id})
                )
            return run

    def get_run(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def run_for_dataset(self, dataset_id: str) -> Run | None:
        with self._lock:
            run_id = self._datasets.get(dataset_id)
            return self._runs.get(run_id) if run_id else None

    def abort(self, run: Run) -> bool:
        """Stop a run where it stands; False when it had already finished."""
        with self._lock:
            snap = self.snapshot(run)
            if snap.status in TERMINAL_STATUSES:
                return False
            run.aborted_after_s = snap.elapsed_s
            return True

    def snapshot(self, run: Run, now_mono: float | None = None) -> RunSnapshot:
        now = time.monotonic() if now_mono is None else now_mono
        elapsed = now - run.created_mono
        if run.aborted_after_s is not None:
            return RunSnapshot("ABORTED", run.aborted_after_s, self._done(run, run.aborted_after_s))
        limit = run.timeout_s if run.timeout_s > 0 else math.inf
        end = min(run.duration_s, limit)
        if elapsed >= end:
            if run.fails:
                return RunSnapshot("FAILED", end, self._done(run, end) // 2)
            status = "SUCCEEDED" if run.duration_s <= limit else "TIMED-OUT"
            return RunSnapshot(status, end, self._done(run, end))
        status = "READY" if elapsed < min(0.5, 0.1 * run.duration_s) else "RUNNING"
        return RunSnapshot(status, elapsed, self._done(run, elapsed))

    @staticmethod
    def _done(run: Run, elapsed: float) -> int:
        if run.duration_s <= 0 or elapsed >= run.duration_s:
            return run.total_items
        return int(run.total_items * elapsed / run.duration_s)

    def items(self, run: Run) -> list[dict[str, Any]]:
        """The run's dataset as it stands now (partial while running)."""
        done = self.snapshot(run).items_done
        with self._lock:
            cached = self._items_cache.get(run.id)
            if cached is None:
                cached = self._materialise(run)
            self._cache_items(run.id, cached)
            return cached[:done]

    def _cache_items(self, run_id: str, items: list[dict[str, Any]]) -> None:
        # Recently read datasets stay materialised; older ones are regenerated on demand.
        self._items_cache[run_id] = items
        self._items_cache.move_to_end(run_id)
        while len(self._items_cache) > 32:
            self._items_cache.popitem(last=False)

    def _materialise(self, run: Run) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        m = self.market
        for i, (mp, asin, url) in enumerate(run.targets):
            tl = m.timeline(mp, asin)
            p = tl.profile
            if not p.listed:
                continue
            block = run.block_indexes.get(i)
            hostile = self.config.hostile.get(asin)
            if run.actor.kind == "products":
                v = m.view(mp, asin, run.day)
                if block:
                    out.append(block_item(m, p, v, url, block, (run.seq, i)))
                else:
                    good = product_item(m, p, v, url, max_offers=run.max_offers)
                    if hostile:
                        good = hostile_item(m, p, v, url, hostile, good, (run.seq, i))
                    out.append(good)
            else:
                reviews = review_items(m, p, run.day, run.max_reviews, url)
                if block and reviews:
                    reviews[0] = bad_review_item(p, url)
                if hostile:
                    reviews = hostile_reviews(reviews, hostile)
                out.extend(reviews)
        return out

    def run_json(self, run: Run, *, status: str | None = None) -> dict[str, Any]:
        """The run object exactly as Apify shapes it (camelCase)."""
        snap = self.snapshot(run)
        st = status or snap.status
        terminal = st in TERMINAL_STATUSES
        elapsed = snap.elapsed_s
        cu = run.memory_mb / 1024 * elapsed / 3600
        boot_cu = self.config.start_cost_usd / USD_PER_COMPUTE_UNIT
        compute_usd = (cu + boot_cu) * USD_PER_COMPUTE_UNIT
        items_usd = snap.items_done * run.unit_price_usd
        total_usd = round(compute_usd + items_usd, 6)
        finished = run.started_at + timedelta(seconds=elapsed) if terminal else None
        messages = {
            "READY": "Starting the run",
            "RUNNING": f"Crawled {snap.items_done}/{run.total_items} items",
            "SUCCEEDED": "Finished! Total items: " + str(snap.items_done),
            "FAILED": "The actor process exited with code 1",
            "TIMED-OUT": "The run timed out",
            "ABORTED": "The run was aborted",
            "ABORTING": "Aborting the run",
        }
        return {
            "id": run.id,
            "actId": run.actor.id,
            "userId": "simUser0000000000",
            "actorTaskId": None,
            "startedAt": _iso(run.started_at),
            "finishedAt": _iso(finished) if finished else None,
            "status": st,
            "statusMessage": messages.get(st, st),
            "isStatusMessageTerminal": terminal,
            "meta": {"origin": "API", "userAgent": "asinwatch-simulator"},
            "stats": {
                "inputBodyLen": 0,
                "restartCount": 0,
                "resurrectCount": 0,
                "durationMillis": round(elapsed * 1000),
                "runTimeSecs": round(elapsed, 3),
                "computeUnits": round(cu + boot_cu, 6),
                "memAvgBytes": run.memory_mb * 1024 * 1024 // 3,
                "memMaxBytes": run.memory_mb * 1024 * 1024 // 2,
                "cpuAvgUsage": 37.5,
            },
            "options": {
                "build": run.build,
                "timeoutSecs": run.timeout_s,
                "memoryMbytes": run.memory_mb,
                "diskMbytes": run.memory_mb * 2,
                "maxItems": run.max_items,
                "maxTotalChargeUsd": run.max_charge_usd,
            },
            "buildId": apify_id("build", run.actor.name),
            "buildNumber": "0.3.12",
            "exitCode": (1 if st == "FAILED" else 0) if terminal else None,
            "generalAccess": "FOLLOW_USER_SETTING",
            "defaultKeyValueStoreId": run.kv_store_id,
            "defaultDatasetId": run.dataset_id,
            "defaultRequestQueueId": run.request_queue_id,
            "containerUrl": f"https://{run.id.lower()}.runs.apify.net",
            "usage": {
                "ACTOR_COMPUTE_UNITS": round(cu + boot_cu, 6),
                "DATASET_READS": 0,
                "DATASET_WRITES": snap.items_done,
                "KEY_VALUE_STORE_READS": 1,
                "KEY_VALUE_STORE_WRITES": 1,
                "REQUEST_QUEUE_WRITES": len(run.targets),
            },
            "usageUsd": {
                "ACTOR_COMPUTE_UNITS": round(compute_usd, 6),
                "DATASET_WRITES": 0,
                "RESULTS": round(items_usd, 6),
            },
            "usageTotalUsd": total_usd,
            "pricingInfo": {
                "pricingModel": "PRICE_PER_DATASET_ITEM",
                "pricePerUnitUsd": run.unit_price_usd,
                "unitName": "result",
                "apifyMarginPercentage": 0.2,
                "startedAt": "2025-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z",
            },
            "chargedEventCounts": {"result": snap.items_done},
        }

    # --- ground truth -----------------------------------------------------------------

    def track(self, marketplace: str, asins: Iterable[str]) -> None:
        """Include these listings in `events()` even before any run asked for them."""
        domain = marketplace.lower().removeprefix("www.")
        with self._lock:
            for a in asins:
                self._tracked.add((domain, a))

    def events(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        marketplace: str | None = None,
        asins: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
    ) -> list[SimEvent]:
        """Every event the simulator injected with since <= at <= until (default: up to now).

        Listing events (price, stock, seller, content, BSR, ratings) are dated at midnight UTC
        of the simulated day they take effect; block pages at the start of the run that served
        them. Without `asins`, the listings seen in runs (or tracked) are covered.
        """
        until = until or self.clock.now()
        since = since or datetime.combine(self.config.epoch, datetime.min.time(), UTC)
        wanted = set(types) if types is not None else set(EVENT_TYPES)
        unknown = wanted - set(EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types: {sorted(unknown)}")
        with self._lock:
            if asins is not None:
                mps = (
                    [marketplace]
                    if marketplace
                    else sorted({m for m, _ in self._tracked}) or ["amazon.com"]
                )
                keys = sorted({(m, a) for m in mps for a in asins})
            else:
                keys = sorted(k for k in self._tracked if marketplace in (None, k[0]))
            blocks = list(self._block_events)
        key_set = set(keys)
        out: list[SimEvent] = []
        first, last = self.market.day_of(since), self.market.day_of(until)
        listing_types = wanted - {"block_page"}
        if listing_types:
            for mp, asin in keys:
                out.extend(
                    e
                    for e in self.market.events(mp, asin, first, last)
                    if e.type in listing_types and since <= e.at <= until
                )
        if "block_page" in wanted:
            out.extend(
                e for e in blocks if (e.marketplace, e.asin) in key_set and since <= e.at <= until
            )
        out.sort(key=lambda e: (e.at, e.marketplace, e.asin, e.type))
        return out

    def authorised_sellers(self, marketplace: str, asin: str) -> list[str]:
        """The seller ids the brand allows on the listing (its own store and Amazon retail)."""
        p = self.market.profile(marketplace, asin)
        return [p.brand_seller_id, seller_identity(self.config.seed, p, SELLER_AMAZON, 0)[0]]

    def product_item(
        self, marketplace: str, asin: str, at: datetime | None = None
    ) -> dict[str, Any]:
        """The unblocked crawler item of a listing at a moment (default: now)."""
        day = self.market.day_of(at or self.clock.now())
        p = self.market.profile(marketplace, asin)
        url = f"https://www.{p.marketplace}/dp/{asin}"
        return product_item(self.market, p, self.market.view(marketplace, asin, day), url)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_product_url(url: str) -> tuple[str, str, str] | None:
    m = _PRODUCT_URL.match(url.strip())
    if not m:
        return None
    domain, asin = m.group("domain").lower(), m.group("asin").upper()
    if domain not in MARKETPLACES or not is_asin(asin):
        return None
    return domain, asin, url


def _url_list(run_input: dict[str, Any], key: str) -> list[str]:
    value = run_input.get(key)
    if not isinstance(value, list) or not value:
        raise SimInputError(f"Input is not valid: Field input.{key} is required")
    urls: list[str] = []
    for i, entry in enumerate(value):
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url:
            raise SimInputError(f"Input is not valid: Field input.{key}.{i}.url must be a string")
        urls.append(url)
    return urls


def _int_value(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SimInputError(
            f"Input is not valid: Field input.{name} must be a non-negative integer"
        )
    return value


def _int_param(params: dict[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SimInputError(f"Parameter '{name}' must be an integer") from None
    if value < minimum:
        raise SimInputError(f"Parameter '{name}' must be at least {minimum}")
    return value


def _opt_int_param(params: dict[str, str], name: str) -> int | None:
    if params.get(name) in (None, ""):
        return None
    return _int_param(params, name, 0, minimum=0)


def _opt_float_param(params: dict[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SimInputError(f"Parameter '{name}' must be a number") from None
    if not math.isfinite(value) or value < 0:
        raise SimInputError(f"Parameter '{name}' must be a non-negative number")
    return value

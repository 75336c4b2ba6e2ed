"""One delivery of a batch task, start to end: lock, count the attempt, fetch, stage, promote.

Exactly-once effects on top of at-least-once delivery (acks_late + reject_on_worker_lost):
- a session-level advisory lock per batch (`repository.batch_lock`): a duplicate delivery
  while another is working returns at once; a killed worker's lock dies with its connection;
- the attempt is counted and committed before any work; past `broker.task_max_attempts` the
  batch is parked as dead (dead letter + alert) instead of being tried forever;
- promoted -> no-op; fetched -> promote from staging without calling upstream; otherwise
  fetch again (staging replaces the batch's earlier staged rows);
- staging and promotion are each one transaction guarded by SELECT ... FOR UPDATE;
- no exception escapes a delivery with the batch left open: whatever fetching, staging or
  promotion raises ends the batch `failed` (a retry) or `dead` (a dead letter) with the reason.
  Failures a retry cannot fix (`is_permanent`: refused input, data errors such as a value a
  column refuses, deterministic bugs) are parked at once, so they never pay for another
  actor run. Bad items themselves never get here: normalisation quarantines them one by one.

A short database or broker outage is retried with backoff where it hits (kit/outage.py)
before the attempt counts as failed. While fetching, a heartbeat renews the batch's slot
lease and `heartbeat_at`, so a dead worker's slot frees within `recovery.slot_lease_s` and
the reconciler (reconcile.py) can tell a lost batch from a slow one.

Upstream calls go through the global adaptive rate limiter and the global bound on batches in
flight (ratelimit.py), wired into the adapter's `before_request` / `on_rate_limited` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import redis.asyncio as aioredis
import sqlalchemy.exc
import structlog

from asinwatch.config import Settings, get_settings
from asinwatch.ingestion import chain_progress, flows, pipeline_alerts, repository, spend
from asinwatch.ingestion.promotion import PromotionResult, promote_batch
from asinwatch.ingestion.ratelimit import AdaptiveRateLimiter, BatchSlots, LimiterConfig
from asinwatch.ingestion.rawjson import jsonb_safe_text
from asinwatch.ingestion.repository import BatchClaim
from asinwatch.ingestion.sources import (
    ApifyBudgetExceededError,
    ApifyClientError,
    ApifySource,
    DisallowedHostError,
    InvalidBatchError,
)
from asinwatch.ingestion.staging import StagedFetch, stage_batch
from asinwatch.kit.db import session_scope
from asinwatch.kit.outage import outage_retry, retry_delay_s
from asinwatch.observability.metrics import DEAD_LETTERS, INGEST_ASINS, INGEST_BATCHES

log = structlog.get_logger(__name__)

# Errors retrying cannot fix: the batch goes to the dead letters at once.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    InvalidBatchError,
    DisallowedHostError,
    ApifyClientError,
    ApifyBudgetExceededError,
    spend.SpendCapReachedError,
)
# Deterministic failures: the same data (or code) fails the same way on every attempt.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,  # e.g. numeric out of range, invalid text for the type
    sqlalchemy.exc.DataError,
    ValueError,  # includes UnicodeError and json errors
    TypeError,
    ArithmeticError,  # OverflowError from date arithmetic, decimal errors
    RecursionError,
    LookupError,
    AttributeError,
)


def is_permanent(exc: BaseException) -> bool:
    """True when retrying (and paying for another actor run) cannot help."""
    return isinstance(exc, PERMANENT_ERRORS + DATA_ERRORS)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    status: str  # promoted | noop | busy | missing | dead | retry
    retry_in_s: float | None = None
    error: str | None = None


class LimiterHooks:
    """The adapter's hooks: wait for the global limiter, renew the batch slot, adapt on 429.

    A request that was not answered 429 counts as a success for the additive recovery; it is
    booked when the next request starts (or at `finish`), since the adapter has no success hook.
    """

    def __init__(self, limiter: AdaptiveRateLimiter, slots: BatchSlots, token: str) -> None:
        self._limiter = limiter
        self._slots = slots
        self._token = token
        self._unbooked = False

    async def before_request(self) -> None:
        if self._unbooked:
            await self._limiter.on_success()
        self._unbooked = True
        await self._slots.renew(self._token)
        await self._limiter.acquire()

    async def on_rate_limited(self) -> None:
        self._unbooked = False
        await self._limiter.on_rate_limited()

    async def finish(self) -> None:
        if self._unbooked:
            await self._limiter.on_success()
            self._unbooked = False


def limiter_for(client: aioredis.Redis, s: Settings) -> AdaptiveRateLimiter:
    config = LimiterConfig(rate_per_s=s.ingest.rate_limit_per_s, burst=s.ingest.rate_limit_burst)
    return AdaptiveRateLimiter(client, s.redis.key_prefix, "apify", config)


async def fetch_batch(claim: BatchClaim, s: Settings) -> list[StagedFetch]:
    """Call upstream for one batch under the global limits (products, then reviews)."""
    assert s.redis.url, "the global rate limiter needs Redis"
    spend.guard_batch(claim.marketplace, claim.run_id)
    resume = spend.resume_options(claim.run_id, claim.batch_no, claim.attempts)
    client = aioredis.Redis.from_url(s.redis.url, socket_timeout=max(s.redis.socket_timeout_s, 5))
    # A short lease renewed by the heartbeat: a killed worker's slot frees within one lease.
    lease_s = s.recovery.slot_lease_s
    slots = BatchSlots(client, s.redis.key_prefix, s.ingest.max_concurrent_batches, lease_s)
    token = await slots.acquire()
    hooks = LimiterHooks(limiter_for(client, s), slots, token)
    fetches: list[StagedFetch] = []
    beat = asyncio.create_task(_heartbeat(claim, slots, token, s.recovery.heartbeat_s))
    try:
        async with ApifySource(
            s.apify,
            before_request=hooks.before_request,
            on_rate_limited=hooks.on_rate_limited,
            **resume,
        ) as source:
            if claim.kind == "product_details":
                result = await source.fetch_products(claim.marketplace, claim.asins)
                fetches.append(StagedFetch("product", f"apify:{s.apify.product_actor}", result))
            if claim.kind == "reviews" or s.ingest.fetch_reviews:
                result = await source.fetch_reviews(claim.marketplace, claim.asins)
                fetches.append(StagedFetch("review", f"apify:{s.apify.reviews_actor}", result))
        await hooks.finish()
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        with contextlib.suppress(Exception):  # Redis away: the lease expires by itself
            await slots.release(token)
        await client.aclose()
    spend.record_notes(claim.run_id, [n for f in fetches for n in f.result.upstream_notes])
    return fetches


def _db_heartbeat(claim: BatchClaim) -> None:
    with session_scope() as session:
        repository.heartbeat(session, claim.run_id, claim.batch_no)


async def _heartbeat(claim: BatchClaim, slots: BatchSlots, token: str, every_s: float) -> None:
    """Renew the slot lease and the batch's heartbeat while the batch is being fetched."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await slots.renew(token)
            await asyncio.to_thread(_db_heartbeat, claim)
        except Exception as exc:  # an outage: the next beat tries again
            log.warning("batch heartbeat failed", error=f"{type(exc).__name__}: {exc}"[:200])


def _park(claim: BatchClaim, task_name: str, error: str, cost: Decimal) -> BatchOutcome:
    def park() -> tuple[int | None, int | None]:
        with session_scope() as session:
            letter = repository.park_dead(
                session, claim, task_name=task_name, error=error, cost_usd=cost
            )
            alert = None
            if letter is not None:
                alert = pipeline_alerts.raise_dead_letter(
                    session, claim.marketplace, claim.run_id, letter, error
                )
        return letter, alert

    letter, alert = outage_retry(park)
    if alert is not None:
        pipeline_alerts.send_delivery(alert)
    if letter is not None:
        DEAD_LETTERS.labels(task_name).inc()
        INGEST_BATCHES.labels("dead").inc()
        INGEST_ASINS.labels(claim.kind, "failed").inc(len(claim.asins))
        log.error("batch parked as dead letter", dead_letter_id=letter, error=error[:300])
    return BatchOutcome("dead", error=error)


def _failed(claim: BatchClaim, task_name: str, exc: BaseException, s: Settings) -> BatchOutcome:
    # The text may quote upstream data: it must be storable (no NUL, no lone surrogate).
    error = jsonb_safe_text(f"{type(exc).__name__}: {exc}")[:2000]
    try:
        cost = Decimal(str(getattr(exc, "cost_usd", 0) or 0))
    except ArithmeticError:
        cost = Decimal(0)
    if is_permanent(exc):
        return _park(claim, task_name, error, cost)
    if claim.attempts >= s.broker.task_max_attempts:
        return _park(claim, task_name, f"attempts exhausted ({claim.attempts}): {error}", cost)

    def mark_failed() -> None:
        with session_scope() as session:
            repository.mark_batch_failed(session, claim.run_id, claim.batch_no, error, cost)

    outage_retry(mark_failed)
    INGEST_BATCHES.labels("retry").inc()
    # Full jitter up to min(backoff_max_s, backoff_base_s * 2**attempts): the cap as before.
    delay = retry_delay_s(claim.attempts + 1, s.apify.backoff_base_s, s.apify.backoff_max_s)
    log.warning("batch attempt failed; will retry", error=error[:300], retry_in_s=round(delay, 2))
    return BatchOutcome("retry", retry_in_s=delay, error=error)


def run_batch(run_id: uuid.UUID, batch_no: int, task_name: str) -> BatchOutcome:
    """Everything one delivery does for a batch; the caller schedules a retry if asked."""
    s = get_settings()

    def claim_it() -> BatchClaim | None:
        with session_scope() as session:
            return repository.claim_batch(session, run_id, batch_no, s.broker.task_max_attempts)

    with contextlib.ExitStack() as stack:
        got = outage_retry(lambda: stack.enter_context(repository.batch_lock(run_id, batch_no)))
        if not got:
            log.info("batch is being processed by another delivery")
            return BatchOutcome("busy")
        claim = outage_retry(claim_it)
        if claim is None:
            return BatchOutcome("missing")
        structlog.contextvars.bind_contextvars(job_id=claim.job_id, attempt=claim.attempts)
        if claim.action == "noop":
            return BatchOutcome("noop")
        if claim.action == "exhausted":
            why = f"attempts exhausted ({claim.attempts}); last error: {claim.last_error}"
            outcome = _park(claim, task_name, why, Decimal(0))
        else:
            try:
                outcome = _fetch_and_promote(claim, task_name, s)
            except Exception as exc:  # staging or anything unforeseen: never leave it open
                log.exception("batch processing failed")
                outcome = _failed(claim, task_name, exc, s)
    if outcome.status in ("promoted", "dead"):
        finish_run(run_id)
    return outcome


def _fetch_and_promote(claim: BatchClaim, task_name: str, s: Settings) -> BatchOutcome:
    if claim.action == "fetch":
        try:
            fetches = asyncio.run(fetch_batch(claim, s))
        except Exception as exc:
            return _failed(claim, task_name, exc, s)

        def stage() -> bool:
            with session_scope() as session:
                return stage_batch(
                    session,
                    run_id=claim.run_id,
                    batch_no=claim.batch_no,
                    marketplace=claim.marketplace,
                    fetches=fetches,
                )

        staged = outage_retry(stage)
        if not staged:
            return BatchOutcome("noop")

    def promote() -> PromotionResult | None:
        with session_scope() as session:
            return promote_batch(session, claim.run_id, claim.batch_no)

    try:
        result = outage_retry(promote)
    except Exception as exc:
        log.exception("batch promotion failed")
        return _failed(claim, task_name, exc, s)
    if result is None:
        return BatchOutcome("noop")
    out = result.outcome
    INGEST_BATCHES.labels("promoted").inc()
    for outcome, n in (("succeeded", out.succeeded), ("quarantined", out.quarantined)):
        INGEST_ASINS.labels(claim.kind, outcome).inc(n)
    INGEST_ASINS.labels(claim.kind, "failed").inc(out.failed)
    log.info(
        "batch promoted",
        succeeded=out.succeeded,
        quarantined=out.quarantined,
        failed=out.failed,
        quarantine=result.quarantine_codes,
    )
    return BatchOutcome("promoted")


def finish_run(run_id: uuid.UUID) -> str | None:
    """Close the run if every batch is final; the winner calls the after-run hook once.

    The analytics chain is recorded in the finalising transaction, so a worker killed before
    it sent the chain leaves it to the reconciler (which sends what is due), never undone.
    """
    hook = get_settings().ingest.after_run_hook

    def finalise() -> str | None:
        with session_scope() as session:
            status = repository.finalise_run(session, run_id)
            if status is not None and hook:
                chain_progress.record_chain(session, run_id, list(flows.STEPS))
            return status

    status = outage_retry(finalise)
    if status is not None:
        log.info("ingest run finished", run_id=str(run_id), status=status)
        if hook:
            flows.after_run_promoted(run_id)
    return status

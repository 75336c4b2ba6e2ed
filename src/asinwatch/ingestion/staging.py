"""Staging: every upstream item of a batch lands in `staging_raw.raw_events` first.

A batch is staged in ONE transaction together with its move to `fetched`: the batch's earlier
staged rows (a previous attempt killed before promotion) are deleted and the new ones copied
in, so a re-fetch replaces rather than duplicates (unique run_id, batch_no, kind, hash).
Items are kept as received, with the observation time of the upstream run, so that
promotion and any later replay re-normalise them and land on the day they were seen; only
what PostgreSQL jsonb cannot hold is changed first (rawjson.sanitise_raw: NUL and lone
surrogates removed, NaN as a string, strings and nesting depth bounded), so one hostile
item can never make the batch's COPY fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import text
from sqlalchemy.orm import Session

from asinwatch.catalog.marketplaces import is_asin
from asinwatch.ingestion.normalise import asin_from_url, content_hash, is_sane_time
from asinwatch.ingestion.rawjson import sanitise_raw
from asinwatch.ingestion.records import FetchResult
from asinwatch.ingestion.repository import raw_connection

RAW_COLUMNS = (
    "source",
    "kind",
    "run_id",
    "batch_no",
    "upstream_run_id",
    "marketplace",
    "asin",
    "payload",
    "content_hash",
    "observed_at",
    "status",
)


@dataclass(frozen=True, slots=True)
class StagedFetch:
    """One upstream call's output for a batch: its kind, source label and result."""

    kind: str  # "product" | "review"
    source: str  # e.g. "apify:junglee~amazon-crawler"
    result: FetchResult


def claimed_asin(item: Any) -> str | None:
    """The ASIN an item is about, for indexing only (normalisation decides ownership)."""
    if not isinstance(item, dict):
        return None
    for key in ("input", "productUrl", "url"):
        found = asin_from_url(item.get(key))
        if found:
            return found
    for key in ("originalAsin", "productOriginalAsin", "asin", "productAsin"):
        value = item.get(key)
        if isinstance(value, str) and is_asin(value.strip().upper()):
            return value.strip().upper()
    return None


def raw_rows(
    fetch: StagedFetch, *, run_id: uuid.UUID, batch_no: int, marketplace: str
) -> list[tuple[Any, ...]]:
    """The raw_events rows of one fetch, in upstream order, identical items once (pure)."""
    result = fetch.result
    upstream = result.upstream_run_ids[0] if len(result.upstream_run_ids) == 1 else None
    seen: set[str] = set()
    rows: list[tuple[Any, ...]] = []
    for item in result.raw_items:
        # Kept as received (made jsonb-safe), even when it is not an object: normalisation
        # quarantines that.
        body = sanitise_raw(item).value
        digest = content_hash(body)
        if digest in seen:
            continue
        seen.add(digest)
        rows.append(
            (
                fetch.source,
                fetch.kind,
                run_id,
                batch_no,
                upstream,
                marketplace,
                claimed_asin(body),
                body,
                digest,
                result.observed_at,
                "staged",
            )
        )
    return rows


def copy_raw_rows(session: Session, rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows (RAW_COLUMNS order) into staging_raw.raw_events within the session's txn."""
    conn = raw_connection(session)
    n = 0
    cols = ", ".join(RAW_COLUMNS)
    with conn.cursor() as cur, cur.copy(f"COPY staging_raw.raw_events ({cols}) FROM STDIN") as cp:
        for row in rows:
            values = list(row)
            values[7] = Jsonb(values[7])
            cp.write_row(values)
            n += 1
    return n


def stage_batch(
    session: Session,
    *,
    run_id: uuid.UUID,
    batch_no: int,
    marketplace: str,
    fetches: Sequence[StagedFetch],
) -> bool:
    """Replace the batch's staged items and move it to `fetched` (caller commits).

    Returns False (and writes nothing) when the batch is no longer being fetched, e.g. a
    concurrent delivery already promoted it.
    """
    status = session.execute(
        text(
            "SELECT status FROM core.ingest_batches WHERE run_id = :r AND batch_no = :b FOR UPDATE"
        ),
        {"r": run_id, "b": batch_no},
    ).scalar_one_or_none()
    if status not in ("pending", "fetching", "failed"):
        return False
    session.execute(
        text("DELETE FROM staging_raw.raw_events WHERE run_id = :r AND batch_no = :b"),
        {"r": run_id, "b": batch_no},
    )
    rows: list[tuple[Any, ...]] = []
    for fetch in fetches:
        rows += raw_rows(fetch, run_id=run_id, batch_no=batch_no, marketplace=marketplace)
    copy_raw_rows(session, rows)
    cost = sum((f.result.cost_usd for f in fetches), Decimal(0))
    # The batch's observation time feeds the after-run analytics: only a sane one is kept
    # (the items keep theirs, and normalisation quarantines them with the reason).
    now = datetime.now(UTC)
    observed: datetime | None = max(
        (f.result.observed_at for f in fetches if is_sane_time(f.result.observed_at, now)),
        default=None,
    )
    upstream_ids = [u for f in fetches for u in f.result.upstream_run_ids]
    session.execute(
        text(
            "UPDATE core.ingest_batches SET status = 'fetched', fetched_at = now(), error = NULL,"
            " observed_at = :o, cost_usd = cost_usd + :c,"
            " upstream_run_ids = upstream_run_ids || CAST(:u AS text[])"
            " WHERE run_id = :r AND batch_no = :b"
        ),
        {"r": run_id, "b": batch_no, "o": observed, "c": cost, "u": upstream_ids},
    )
    if cost:
        session.execute(
            text("UPDATE core.ingest_runs SET cost_usd = cost_usd + :c WHERE id = :r"),
            {"r": run_id, "c": cost},
        )
    return True

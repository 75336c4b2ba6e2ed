"""SQL of the ingestion run/batch state machine (sync SQLAlchemy sessions; never commits).

The async service reaches these through `AsyncSession.run_sync`, the Celery tasks and the CLI
through `session_scope()`, so each rule is written once. Transitions of a batch:

    pending -> fetching -> fetched -> promoted
         \\-> failed (a retry is scheduled) -> fetching ...
    any non-final state -> dead (non-retryable error or attempts exhausted)

`attempts` is incremented in its own committed transaction before any work, because Redis
keeps no redelivery counter: a batch that kills its worker every time is parked as dead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

from asinwatch.ingestion.models import DeadLetter, IngestBatch, IngestRun
from asinwatch.kit.db import database_url

FINAL_BATCH = ("promoted", "dead")
OPEN_RUN = ("queued", "running")


# ---------------------------------------------------------------- connections and locks


def psycopg_url() -> str:
    """The configured database as a libpq URL (for the dedicated lock connection)."""
    return make_url(database_url()).set(drivername="postgresql").render_as_string(False)


@contextmanager
def batch_lock(run_id: uuid.UUID, batch_no: int) -> Iterator[bool]:
    """A session-level advisory lock on one batch, held on its own connection.

    Yields False when another delivery holds it. PostgreSQL releases the lock when the holder's
    connection drops, so a worker killed with SIGKILL never leaves a batch locked.
    """
    with advisory_lock(batch_lock_key(run_id, batch_no)) as got:
        yield got


@contextmanager
def advisory_lock(key: str) -> Iterator[bool]:
    """A session-level advisory lock on `key` on its own connection (False: someone has it).

    A connection lost while the lock is held (a database restart) ends the block normally:
    the lock went with the connection, and the work inside is guarded by row locks anyway.
    """
    conn = psycopg.connect(psycopg_url(), autocommit=True, connect_timeout=5)
    try:
        row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
        got = bool(row.fetchone()[0])  # type: ignore[index]
        yield got
        if got and not conn.closed:
            with suppress(psycopg.OperationalError):  # the connection died: so did the lock
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
    finally:
        conn.close()  # closing also drops the lock when the block raised


def batch_lock_key(run_id: uuid.UUID, batch_no: int) -> str:
    return f"asinwatch.ingest-batch:{run_id}:{batch_no}"


def analytics_lock_key(run_id: uuid.UUID, step: str) -> str:
    return f"asinwatch.run-analytics:{run_id}:{step}"


def unlocked(keys: Sequence[str]) -> list[bool]:
    """For each advisory lock key: True when no session holds it right now (a snapshot)."""
    if not keys:
        return []
    with psycopg.connect(psycopg_url(), autocommit=True, connect_timeout=5) as conn:
        out: list[bool] = []
        for key in keys:
            row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,))
            got = bool(row.fetchone()[0])  # type: ignore[index]
            if got:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
            out.append(got)
        return out


def _loads(data: str | bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # e.g. a number orjson cannot hold: the stdlib can
        return json.loads(data)


def _dumps(obj: Any) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # e.g. an integer wider than 64 bits
        return json.dumps(obj, default=str)


def raw_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under a sync session (for COPY inside its transaction).

    Its JSON goes through orjson: staged payloads are parsed again at every promotion.
    """
    driver = session.connection().connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    set_json_loads(_loads, driver)
    set_json_dumps(_dumps, driver)
    return driver


# ---------------------------------------------------------------- runs


def chunk(asins: Sequence[str], size: int) -> list[list[str]]:
    return [list(asins[i : i + size]) for i in range(0, len(asins), size)]


def create_run(
    session: Session,
    *,
    job_id: str,
    trigger: str,
    kind: str,
    marketplace: str,
    asins: Sequence[str],
    batch_size: int,
    params: dict[str, Any],
) -> tuple[IngestRun, bool]:
    """Insert a run and its batches; an existing job id returns (that run, False)."""
    run_id = uuid.uuid4()
    batches = chunk(asins, batch_size)
    inserted = session.execute(
        text(
            "INSERT INTO core.ingest_runs (id, job_id, trigger, kind, marketplace, status,"
            " asins_requested, asins_succeeded, asins_quarantined, asins_failed, batches_total,"
            " batches_done, cost_usd, params) VALUES (:id, :job, :trigger, :kind, :mkt, 'queued',"
            " :n, 0, 0, 0, :nb, 0, 0, :params) ON CONFLICT (job_id) DO NOTHING RETURNING id"
        ),
        {
            "id": run_id,
            "job": job_id,
            "trigger": trigger,
            "kind": kind,
            "mkt": marketplace,
            "n": len(asins),
            "nb": len(batches),
            "params": Jsonb(params),
        },
    ).scalar_one_or_none()
    if inserted is None:
        existing = session.execute(select(IngestRun).where(IngestRun.job_id == job_id)).scalar_one()
        return existing, False
    stmt = text(
        "INSERT INTO core.ingest_batches (run_id, batch_no, asins, status, attempts, succeeded,"
        " quarantined, failed, cost_usd) VALUES (:run, :no, :asins, 'pending', 0, 0, 0, 0, 0)"
    ).bindparams(bindparam("asins", type_=ARRAY(Text)))
    session.execute(stmt, [{"run": run_id, "no": i, "asins": b} for i, b in enumerate(batches)])
    run = session.get(IngestRun, run_id)
    assert run is not None
    return run, True


def get_run(session: Session, run_id: uuid.UUID) -> IngestRun | None:
    return session.get(IngestRun, run_id, populate_existing=True)


def get_run_by_job(session: Session, job_id: str) -> IngestRun | None:
    return session.execute(select(IngestRun).where(IngestRun.job_id == job_id)).scalar_one_or_none()


def list_runs(session: Session, limit: int, before: datetime | None = None) -> list[IngestRun]:
    q = select(IngestRun).order_by(IngestRun.created_at.desc(), IngestRun.id).limit(limit)
    if before is not None:
        q = q.where(IngestRun.created_at < before)
    return list(session.execute(q).scalars())


def list_batches(session: Session, run_id: uuid.UUID) -> list[IngestBatch]:
    q = select(IngestBatch).where(IngestBatch.run_id == run_id).order_by(IngestBatch.batch_no)
    return list(session.execute(q).scalars())


def mark_run_running(session: Session, run_id: uuid.UUID) -> bool:
    return (
        session.execute(
            text(
                "UPDATE core.ingest_runs SET status = 'running', started_at = COALESCE("
                "started_at, now()) WHERE id = :id AND status = 'queued' RETURNING id"
            ),
            {"id": run_id},
        ).scalar_one_or_none()
        is not None
    )


def active_asins(session: Session, marketplace: str, sample: int | None = None) -> list[str]:
    """Active tracked ASINs of a marketplace (all in ASIN order, or a random sample)."""
    sql = "SELECT asin FROM core.products WHERE marketplace = :m AND tracking_state = 'active'"
    sql += " ORDER BY random() LIMIT :n" if sample else " ORDER BY asin"
    return list(session.execute(text(sql), {"m": marketplace, "n": sample}).scalars())


def marketplaces_with_active(session: Session) -> list[str]:
    return list(
        session.execute(
            text(
                "SELECT DISTINCT marketplace FROM core.products WHERE tracking_state = 'active'"
                " ORDER BY marketplace"
            )
        ).scalars()
    )


def finalise_run(session: Session, run_id: uuid.UUID) -> str | None:
    """Close a run whose batches are all promoted or dead; returns the new status.

    The conditional UPDATE is the guard: of two workers finishing the last two batches, only
    one gets a row back, so the after-run hook fires exactly once per completion.
    """
    return session.execute(
        text(
            "UPDATE core.ingest_runs r SET finished_at = now(), status = CASE"
            " WHEN d.dead = 0 THEN 'succeeded' WHEN d.dead < r.batches_total THEN 'partial'"
            " ELSE 'failed' END"
            " FROM (SELECT count(*) FILTER (WHERE status = 'dead') AS dead,"
            "       count(*) FILTER (WHERE status NOT IN ('promoted','dead')) AS open"
            "       FROM core.ingest_batches WHERE run_id = :id) d"
            " WHERE r.id = :id AND r.status IN ('queued','running') AND d.open = 0"
            " RETURNING r.status"
        ),
        {"id": run_id},
    ).scalar_one_or_none()


# ---------------------------------------------------------------- batches


@dataclass(frozen=True, slots=True)
class BatchClaim:
    """What a delivery of a batch task should do."""

    action: str  # "noop" | "fetch" | "promote" | "exhausted"
    run_id: uuid.UUID
    batch_no: int
    marketplace: str
    kind: str
    asins: list[str]
    attempts: int
    job_id: str
    last_error: str | None = None


def claim_batch(
    session: Session, run_id: uuid.UUID, batch_no: int, max_attempts: int
) -> BatchClaim | None:
    """Count this delivery as an attempt and decide what it does (commit right after)."""
    row = session.execute(
        text(
            "SELECT b.status, b.attempts, b.asins, b.error, r.marketplace, r.kind, r.job_id"
            " FROM core.ingest_batches b JOIN core.ingest_runs r ON r.id = b.run_id"
            " WHERE b.run_id = :r AND b.batch_no = :b FOR UPDATE OF b"
        ),
        {"r": run_id, "b": batch_no},
    ).one_or_none()
    if row is None:
        return None
    status, attempts, asins, error, market, kind, job_id = row
    base = {
        "run_id": run_id,
        "batch_no": batch_no,
        "marketplace": market,
        "kind": kind,
        "asins": list(asins),
        "job_id": job_id,
    }
    if status in FINAL_BATCH:
        return BatchClaim("noop", attempts=attempts, **base)
    if attempts >= max_attempts:
        return BatchClaim("exhausted", attempts=attempts, last_error=error, **base)
    session.execute(
        text(
            "UPDATE core.ingest_batches SET attempts = attempts + 1,"
            " status = CASE WHEN status = 'fetched' THEN 'fetched' ELSE 'fetching' END,"
            " started_at = COALESCE(started_at, now()), heartbeat_at = now()"
            " WHERE run_id = :r AND batch_no = :b"
        ),
        {"r": run_id, "b": batch_no},
    )
    action = "promote" if status == "fetched" else "fetch"
    return BatchClaim(action, attempts=attempts + 1, **base)


def mark_batch_failed(
    session: Session, run_id: uuid.UUID, batch_no: int, error: str, cost_usd: Decimal
) -> None:
    """A retryable failure: the batch waits for its retry (cost already spent is recorded)."""
    session.execute(
        text(
            "UPDATE core.ingest_batches SET status = 'failed', error = :e,"
            " cost_usd = cost_usd + :c, enqueued_at = now() WHERE run_id = :r AND batch_no = :b"
            " AND status NOT IN ('promoted','dead')"
        ),
        {"r": run_id, "b": batch_no, "e": error[:2000], "c": cost_usd},
    )
    if cost_usd:
        session.execute(
            text("UPDATE core.ingest_runs SET cost_usd = cost_usd + :c WHERE id = :r"),
            {"r": run_id, "c": cost_usd},
        )


def heartbeat(session: Session, run_id: uuid.UUID, batch_no: int) -> None:
    """The worker on this batch is alive (the reconciler leaves the batch alone)."""
    session.execute(
        text(
            "UPDATE core.ingest_batches SET heartbeat_at = now()"
            " WHERE run_id = :r AND batch_no = :b AND status NOT IN ('promoted','dead')"
        ),
        {"r": run_id, "b": batch_no},
    )


def mark_enqueued(session: Session, run_id: uuid.UUID, batch_nos: Sequence[int]) -> None:
    """A message for these batches was just sent (their loss clock restarts)."""
    session.execute(
        text(
            "UPDATE core.ingest_batches SET enqueued_at = now()"
            " WHERE run_id = :r AND batch_no = ANY(:b) AND status NOT IN ('promoted','dead')"
        ),
        {"r": run_id, "b": list(batch_nos)},
    )


def stalled_batches(
    session: Session, *, stale_after_s: float | None, run_id: uuid.UUID | None = None
) -> list[tuple[uuid.UUID, int, str]]:
    """Unfinished batches of open (dispatched) runs with no recent sign of life.

    (run id, batch no, run kind). A batch is quiet when neither a message was sent for it nor
    a worker touched it for `stale_after_s` (None: every unfinished batch). The caller still
    checks that no live worker holds the batch's lock before re-sending it.
    """
    rows = session.execute(
        text(
            "SELECT b.run_id, b.batch_no, r.kind FROM core.ingest_batches b"
            " JOIN core.ingest_runs r ON r.id = b.run_id"
            " WHERE r.status = 'running' AND b.status NOT IN ('promoted','dead')"
            " AND (CAST(:rid AS uuid) IS NULL OR b.run_id = CAST(:rid AS uuid))"
            " AND (CAST(:s AS float8) IS NULL OR GREATEST(b.enqueued_at, b.heartbeat_at,"
            "      b.started_at, r.started_at) < now() - make_interval(secs => :s))"
            " ORDER BY r.created_at, b.batch_no"
        ),
        {"s": stale_after_s, "rid": run_id},
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def finishable_runs(session: Session) -> list[uuid.UUID]:
    """Open runs whose batches are all final: a finalisation that never happened."""
    return list(
        session.execute(
            text(
                "SELECT r.id FROM core.ingest_runs r WHERE r.status IN ('queued','running')"
                " AND NOT EXISTS (SELECT 1 FROM core.ingest_batches b WHERE b.run_id = r.id"
                " AND b.status NOT IN ('promoted','dead'))"
                " ORDER BY r.created_at"
            )
        ).scalars()
    )


@dataclass(frozen=True, slots=True)
class RunActivity:
    """Why an open run may be stuck: its unfinished batches and their last sign of life."""

    run_id: uuid.UUID
    open_batches: int
    never_started: int
    quiet_s: float | None  # seconds since the last message, claim or heartbeat of any batch


def run_activity(session: Session, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, RunActivity]:
    rows = session.execute(
        text(
            "SELECT r.id, count(b.id) FILTER (WHERE b.status NOT IN ('promoted','dead')),"
            " count(b.id) FILTER (WHERE b.status = 'pending'),"
            " EXTRACT(EPOCH FROM now() - GREATEST(max(b.enqueued_at), max(b.heartbeat_at),"
            "   max(b.started_at), r.started_at, r.created_at))"
            " FROM core.ingest_runs r LEFT JOIN core.ingest_batches b ON b.run_id = r.id"
            " WHERE r.id = ANY(:ids) GROUP BY r.id"
        ),
        {"ids": list(run_ids)},
    ).all()
    return {
        r[0]: RunActivity(r[0], int(r[1]), int(r[2]), float(r[3]) if r[3] is not None else None)
        for r in rows
    }


def queued_runs_older_than(session: Session, seconds: float) -> list[uuid.UUID]:
    return list(
        session.execute(
            text(
                "SELECT id FROM core.ingest_runs WHERE status = 'queued'"
                " AND created_at < now() - make_interval(secs => :s)"
            ),
            {"s": seconds},
        ).scalars()
    )


# ---------------------------------------------------------------- dead letters


def park_dead(
    session: Session,
    claim: BatchClaim,
    *,
    task_name: str,
    error: str,
    cost_usd: Decimal = Decimal(0),
) -> int | None:
    """Batch -> dead and a dead-letter row (its alert: `ingestion.pipeline_alerts`).

    Returns the dead letter id, or None if the batch had already reached a final state.
    """
    moved = session.execute(
        text(
            "UPDATE core.ingest_batches SET status = 'dead', error = :e, succeeded = 0,"
            " quarantined = 0, failed = cardinality(asins), cost_usd = cost_usd + :c"
            " WHERE run_id = :r AND batch_no = :b AND status NOT IN ('promoted','dead')"
            " RETURNING cardinality(asins)"
        ),
        {"r": claim.run_id, "b": claim.batch_no, "e": error[:2000], "c": cost_usd},
    ).scalar_one_or_none()
    if moved is None:
        return None
    session.execute(
        text(
            "UPDATE core.ingest_runs SET asins_failed = asins_failed + :n,"
            " batches_done = batches_done + 1, cost_usd = cost_usd + :c, error = :e"
            " WHERE id = :r"
        ),
        {"r": claim.run_id, "n": moved, "c": cost_usd, "e": error[:2000]},
    )
    letter = DeadLetter(
        task_name=task_name,
        run_id=claim.run_id,
        batch_no=claim.batch_no,
        payload={
            "run_id": str(claim.run_id),
            "batch_no": claim.batch_no,
            "job_id": claim.job_id,
            "marketplace": claim.marketplace,
            "kind": claim.kind,
            "asins": claim.asins,
        },
        error=error[:2000],
        attempts=claim.attempts,
    )
    session.add(letter)
    session.flush()
    return letter.id


def list_dead_letters(session: Session, limit: int, *, open_only: bool) -> list[DeadLetter]:
    q = select(DeadLetter).order_by(DeadLetter.created_at.desc(), DeadLetter.id.desc()).limit(limit)
    if open_only:
        q = q.where(DeadLetter.replayed_at.is_(None))
    return list(session.execute(q).scalars())


def reopen_dead_batch(session: Session, letter_id: int) -> DeadLetter | None:
    """Mark a dead letter replayed and put its batch back to pending with fresh attempts.

    The run's counters forget the batch's failure and the run is open again, so the batch's
    promotion (or a new death) finalises it like any other.
    """
    letter = session.get(DeadLetter, letter_id, with_for_update=True)
    if letter is None or letter.run_id is None or letter.batch_no is None:
        return None
    failed = session.execute(
        text(
            "SELECT failed FROM core.ingest_batches WHERE run_id = :r AND batch_no = :b"
            " AND status = 'dead' FOR UPDATE"
        ),
        {"r": letter.run_id, "b": letter.batch_no},
    ).scalar_one_or_none()
    session.execute(
        text(
            "UPDATE core.ingest_batches SET status = 'pending', attempts = 0, error = NULL,"
            " failed = 0 WHERE run_id = :r AND batch_no = :b AND status = 'dead'"
        ),
        {"r": letter.run_id, "b": letter.batch_no},
    )
    if failed is not None:
        session.execute(
            text(
                "UPDATE core.ingest_runs SET asins_failed = GREATEST(asins_failed - :n, 0),"
                " batches_done = GREATEST(batches_done - 1, 0), status = 'running',"
                " finished_at = NULL WHERE id = :r"
            ),
            {"r": letter.run_id, "n": failed},
        )
    letter.replayed_at = session.execute(text("SELECT now()")).scalar_one()
    return letter


# ---------------------------------------------------------------- upstream spend


def upstream_cost_since(session: Session, since: datetime) -> Decimal:
    """Upstream cost of the runs created, finished or still open since `since`."""
    value = session.execute(
        text(
            "SELECT COALESCE(sum(cost_usd), 0) FROM core.ingest_runs"
            " WHERE created_at >= :s OR finished_at >= :s OR finished_at IS NULL"
        ),
        {"s": since},
    ).scalar_one()
    return Decimal(value)


def batch_upstream_runs(session: Session, run_id: uuid.UUID, batch_no: int) -> list[str]:
    """The upstream run ids a batch's attempts have started so far, oldest first."""
    ids = session.execute(
        text(
            "SELECT upstream_run_ids FROM core.ingest_batches WHERE run_id = :r AND batch_no = :b"
        ),
        {"r": run_id, "b": batch_no},
    ).scalar_one_or_none()
    return list(ids or [])


def add_batch_upstream_run(
    session: Session, run_id: uuid.UUID, batch_no: int, upstream_run_id: str
) -> None:
    """Remember an upstream run as soon as it exists (once), so a retry can reuse it."""
    session.execute(
        text(
            "UPDATE core.ingest_batches SET upstream_run_ids = array_append(upstream_run_ids, :u)"
            " WHERE run_id = :r AND batch_no = :b AND NOT (:u = ANY(upstream_run_ids))"
        ),
        {"r": run_id, "b": batch_no, "u": upstream_run_id},
    )


def add_run_notes(
    session: Session, run_id: uuid.UUID, notes: Sequence[dict[str, Any]], keep: int = 100
) -> None:
    """Append what the spend guards did to the run's `params.upstream_notes` (newest `keep`)."""
    if not notes:
        return
    params = session.execute(
        text("SELECT params FROM core.ingest_runs WHERE id = :r FOR UPDATE"), {"r": run_id}
    ).scalar_one_or_none()
    if params is None:
        return
    merged = [*params.get("upstream_notes", []), *notes][-keep:]
    session.execute(
        text("UPDATE core.ingest_runs SET params = :p WHERE id = :r"),
        {"r": run_id, "p": Jsonb({**params, "upstream_notes": merged})},
    )


def untracked_asins(session: Session, marketplace: str, asins: Sequence[str]) -> list[str]:
    """Those of `asins` that are not active tracked products of `marketplace`."""
    tracked = set(
        session.execute(
            text(
                "SELECT asin FROM core.products WHERE marketplace = :m"
                " AND tracking_state = 'active' AND asin = ANY(:a)"
            ),
            {"m": marketplace, "a": list(asins)},
        ).scalars()
    )
    return [a for a in asins if a not in tracked]

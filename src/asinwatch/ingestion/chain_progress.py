"""SQL of the analytics chain's progress per finished run (`core.ingest_run_analytics`).

One row per (run, step). The rows are written in the same transaction that finalises the run,
so a worker killed right after the finalisation still leaves the chain to do in the database;
a step is marked started and done by the worker running it (under its advisory lock), so the
reconciler can re-send a step whose message was lost and never re-runs a finished one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session


def record_chain(session: Session, run_id: uuid.UUID, steps: Sequence[str]) -> None:
    """The run's chain is to do (again): every step back to not sent, not done."""
    session.execute(
        text(
            "INSERT INTO core.ingest_run_analytics (run_id, step, runs) VALUES (:r, :s, 0)"
            " ON CONFLICT (run_id, step) DO UPDATE SET sent_at = NULL, started_at = NULL,"
            " done_at = NULL, error = NULL, runs = 0"
        ),
        [{"r": run_id, "s": step} for step in steps],
    )


@dataclass(frozen=True, slots=True)
class StepState:
    step: str
    sent: bool
    started: bool
    done: bool
    runs: int


def chain_state(session: Session, run_id: uuid.UUID) -> dict[str, StepState]:
    rows = session.execute(
        text(
            "SELECT step, sent_at IS NOT NULL, started_at IS NOT NULL, done_at IS NOT NULL, runs"
            " FROM core.ingest_run_analytics WHERE run_id = :r"
        ),
        {"r": run_id},
    ).all()
    return {r[0]: StepState(r[0], r[1], r[2], r[3], r[4]) for r in rows}


def mark_sent(session: Session, run_id: uuid.UUID, steps: Sequence[str]) -> None:
    session.execute(
        text(
            "UPDATE core.ingest_run_analytics SET sent_at = now()"
            " WHERE run_id = :r AND step = ANY(:s) AND done_at IS NULL"
        ),
        {"r": run_id, "s": list(steps)},
    )


def start_step(session: Session, run_id: uuid.UUID, step: str) -> int | None:
    """Count a run of the step; None when it is done already (or not part of a chain)."""
    return session.execute(
        text(
            "UPDATE core.ingest_run_analytics SET started_at = now(), runs = runs + 1"
            " WHERE run_id = :r AND step = :s AND done_at IS NULL RETURNING runs"
        ),
        {"r": run_id, "s": step},
    ).scalar_one_or_none()


def finish_step(session: Session, run_id: uuid.UUID, step: str, error: str | None) -> None:
    session.execute(
        text(
            "UPDATE core.ingest_run_analytics SET error = :e,"
            " done_at = CASE WHEN CAST(:e AS text) IS NULL THEN now() END"
            " WHERE run_id = :r AND step = :s"
        ),
        {"r": run_id, "s": step, "e": error[:2000] if error else None},
    )


def stale_steps(
    session: Session, after: Mapping[str, Sequence[str]], stale_after_s: float, max_runs: int
) -> list[tuple[uuid.UUID, str]]:
    """Steps not done whose prerequisites are done and that were quiet for `stale_after_s`.

    `after` maps a step to the steps it waits for. The caller checks the step's lock is free
    (a long step still running holds it) before re-sending.
    """
    rows = session.execute(
        text(
            "SELECT a.run_id, a.step, array_remove(array_agg(p.step) FILTER"
            " (WHERE p.done_at IS NOT NULL), NULL)"
            " FROM core.ingest_run_analytics a"
            " LEFT JOIN core.ingest_run_analytics p ON p.run_id = a.run_id"
            " WHERE a.done_at IS NULL AND a.runs < :m"
            " AND COALESCE(GREATEST(a.sent_at, a.started_at), '-infinity')"
            "     < now() - make_interval(secs => :s)"
            " GROUP BY a.run_id, a.step ORDER BY a.run_id, a.step"
        ),
        {"s": stale_after_s, "m": max_runs},
    ).all()
    return [(r[0], r[1]) for r in rows if set(after.get(r[1], ())) <= set(r[2] or ())]

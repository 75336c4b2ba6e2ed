"""Alert accuracy on the simulator: precision and recall per alert type against labelled events.

    .venv/bin/python -m bench.alert_accuracy [--days 60] [--own 50] [--competitors 2] [--seed 7]
        [--profile default|market_md|all]

What it does, end to end and in process (no Celery): starts the Apify-compatible simulator
(helper-1) with its default block-page rate, creates a throw-away PostgreSQL database, tracks
own products (each with linked competitors; every product has the simulator's authorised
sellers as its allow-list), and for each simulated day: sets the simulator clock, fetches
products and reviews through the REAL Apify adapter, stages the raw items, promotes them
(normalise + quarantine + core tables), finalises the run, computes KPIs and runs detection
with the simulated time as the lifecycle clock. Then it matches alerts to the simulator's
labelled events and writes bench/results/alert_accuracy.json.

The first `--warmup-days` days are tracked but not scored (a tracker needs some history
before "above normal" means anything); labels and openings of the measured days are scored.

Matching (per alert type, same ASIN, observation day within ±1 day of the label's day):
- precision = opened alerts that match a label / opened alerts;
- recall = labels matched by an alert firing (an alert opened, or an open alert re-confirmed
  by a new observation) / labels. `recall_opened_only` counts openings only (stricter).
- back in stock is measured on the out-of-stock alerts' resolutions (a condition clearing).
Labels of a day are de-duplicated per (ASIN, type): one listing edit of two fields is one
event. Price-change labels are the simulator's changes of at least `--price-label-pct` percent
(the simulator labels every displayed change, its 0.5-3 % noise nudges included, which no
tracker should alert on; the detector's default threshold is 5 %).

Profiles are marketplace-wide threshold overrides: `default` (the shipped defaults) and
`market_md` (market.md's original BSR-median and 7-day review-spike rules, for comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql

RESULTS = Path(__file__).resolve().parent / "results" / "alert_accuracy.json"
ADMIN_URL = os.environ.get(
    "ASINWATCH_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MARKETPLACE = "amazon.com"
# Runs at 16:00 UTC: the same calendar day in UTC (the simulator's day) and in Los Angeles
# (the marketplace's day, which dates the metric rows).
RUN_HOUR_UTC = 16

# alert type -> simulator event type (labels)
LABELLED = {
    "price_change": "price_change",
    "out_of_stock": "out_of_stock",
    "buybox_seller_change": "buybox_seller_change",
    "hijacker": "hijacker",
    "listing_changed": "listing_change",
    "bsr_move": "bsr_move",
    "rating_drop": "rating_drop",
    "negative_review_spike": "negative_review_spike",
}
UNLABELLED = ("suppressed", "competitor_undercut", "tracking_stale")
TARGET_RECALL, TARGET_PRECISION = 0.95, 0.90
# Marketplace-wide threshold overrides (core.alert_thresholds, asin '*') of each profile.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # The shipped defaults.
    "default": {},
    # market.md's rules, for comparison (the defaults before the accuracy bench): BSR vs the
    # 14-observation rolling median plus top-100 crossings; 1-2★ reviews in 7 days above
    # 2 x the 90-day rate.
    "market_md": {
        "bsr_move": {"reference": "median", "top_n": 100},
        "negative_review_spike": {
            "window_days": 7,
            "max_p_value": None,
            "baseline_coverage": "window",
            "min_baseline_days": 0,
        },
    },
}


@dataclass(frozen=True, slots=True)
class Firing:
    asin: str
    alert_type: str
    day: date
    event: str  # opened | repeated | escalated | resolved
    alert_id: int


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=int, default=60, help="measured days")
    p.add_argument(
        "--warmup-days", type=int, default=14, help="days tracked before the measured window"
    )
    p.add_argument("--own", type=int, default=50)
    p.add_argument("--competitors", type=int, default=2, help="competitors per own product")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--block-rate", type=float, default=0.02)
    p.add_argument("--price-label-pct", type=float, default=5.0)
    p.add_argument("--tolerance-days", type=int, default=1)
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--profile",
        choices=[*PROFILES, "all"],
        default="default",
        help="threshold profile(s) to run (each is a full run in its own database)",
    )
    return p.parse_args(argv)


def _setup_env(db_name: str, data_dir: str) -> str:
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}"
    os.environ.update(
        {
            "ASINWATCH_ENV": "test",
            "ASINWATCH_DATABASE__URL": url,
            "ASINWATCH_LOG__LEVEL": "WARNING",
            "ASINWATCH_DATA_DIR": data_dir,
            "ASINWATCH_APIFY__MAX_REVIEWS_PER_ASIN": "20",
            # Simulated spend only: many runs in one wall-clock day must not hit the daily cap.
            "ASINWATCH_APIFY__MAX_COST_USD_PER_DAY": "1000000",
        }
    )
    return url


def _create_db(db_name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db_name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))


def _drop_db(db_name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (db_name,)
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db_name)))


class Bench:
    """One benchmark run: simulator, catalogue, day loop, matching."""

    def __init__(self, args: argparse.Namespace) -> None:
        from pydantic import SecretStr

        from asinwatch.config import ApifySettings
        from asinwatch.simulator import SimConfig, SimulatorServer, sample_asins

        self.args = args
        self.server = SimulatorServer(SimConfig(seed=args.seed, block_rate=args.block_rate))
        self.server.start()
        self.sim = self.server.simulator
        self.apify = ApifySettings(
            token=SecretStr(self.server.token),
            base_url=self.server.base_url,
            allowed_hosts=["127.0.0.1"],
            poll_wait_s=0,
            max_reviews_per_asin=20,
        )
        n_comp = args.own * args.competitors
        asins = sample_asins(args.seed, args.own + n_comp)
        self.own = asins[: args.own]
        self.competitors = asins[args.own :]
        self.asins = asins
        self.epoch = self.sim.config.epoch
        self.sim.track(MARKETPLACE, asins)
        self.quarantined = 0
        self.promoted = 0

    def close(self) -> None:
        self.server.stop()

    # --- setup

    def seed_catalogue(self, overrides: dict[str, dict[str, Any]]) -> None:
        from psycopg.types.json import Jsonb
        from sqlalchemy import text

        from asinwatch.kit.db import session_scope

        with session_scope() as s:
            for alert_type, params in overrides.items():
                s.execute(
                    text(
                        "INSERT INTO core.alert_thresholds (marketplace, asin, alert_type, enabled,"
                        " params, created_at, updated_at) VALUES (:m, '*', :t, true, :p, now(),"
                        " now())"
                    ),
                    {"m": MARKETPLACE, "t": alert_type, "p": Jsonb(params)},
                )
            for asin in self.asins:
                s.execute(
                    text(
                        "INSERT INTO core.products (marketplace, asin, is_own, tracking_state,"
                        " seller_allowlist, tags, extra, invalid_runs, created_at, updated_at)"
                        " VALUES (:m, :a, :own, 'active', :allow, '{}', '{}', 0, now(), now())"
                    ),
                    {
                        "m": MARKETPLACE,
                        "a": asin,
                        "own": asin in self.own,
                        "allow": self.sim.authorised_sellers(MARKETPLACE, asin),
                    },
                )
            k = self.args.competitors
            for i, own in enumerate(self.own):
                for comp in self.competitors[i * k : (i + 1) * k]:
                    s.execute(
                        text(
                            "INSERT INTO core.competitor_links (marketplace, asin, competitor_asin,"
                            " created_at, updated_at) VALUES (:m, :a, :c, now(), now())"
                        ),
                        {"m": MARKETPLACE, "a": own, "c": comp},
                    )

    # --- one day

    async def _fetch(self, batch: list[str]) -> list[Any]:
        from asinwatch.ingestion.sources.apify import ApifySource
        from asinwatch.ingestion.staging import StagedFetch

        async with ApifySource(self.apify, min_poll_interval_s=0.0) as src:
            products = await src.fetch_products(MARKETPLACE, batch)
            reviews = await src.fetch_reviews(MARKETPLACE, batch)
        return [
            StagedFetch("product", f"apify:{self.apify.product_actor}", products),
            StagedFetch("review", f"apify:{self.apify.reviews_actor}", reviews),
        ]

    def run_day(self, day: int) -> tuple[uuid.UUID, datetime]:
        from asinwatch.alerts.detection import detect_for_run
        from asinwatch.config import get_settings
        from asinwatch.ingestion import repository as ingest_repo
        from asinwatch.ingestion.promotion import promote_batch
        from asinwatch.ingestion.staging import stage_batch
        from asinwatch.kit.db import session_scope
        from asinwatch.metrics.service import compute_kpis_for_run

        moment = datetime.combine(
            self.epoch + timedelta(days=day), datetime.min.time(), UTC
        ) + timedelta(hours=RUN_HOUR_UTC)
        self.sim.clock.set(moment)
        size = get_settings().ingest.batch_size
        with session_scope() as s:
            run, _ = ingest_repo.create_run(
                s,
                job_id=f"bench-day-{day}",
                trigger="manual",
                kind="product_details",
                marketplace=MARKETPLACE,
                asins=self.asins,
                batch_size=size,
                params={"bench": "alert_accuracy", "day": day},
            )
            run_id = run.id
            ingest_repo.mark_run_running(s, run_id)
        for batch_no, batch in enumerate(ingest_repo.chunk(self.asins, size)):
            fetches = asyncio.run(self._fetch(batch))
            with session_scope() as s:
                stage_batch(
                    s, run_id=run_id, batch_no=batch_no, marketplace=MARKETPLACE, fetches=fetches
                )
            with session_scope() as s:
                result = promote_batch(s, run_id, batch_no)
                assert result is not None
                self.quarantined += result.outcome.quarantined
                self.promoted += result.outcome.succeeded
        with session_scope() as s:
            ingest_repo.finalise_run(s, run_id)
        with session_scope() as s:
            compute_kpis_for_run(s, run_id)
        with session_scope() as s:
            detect_for_run(s, run_id, now=moment)
        return run_id, moment

    # --- results

    def firings(self) -> list[Firing]:
        from sqlalchemy import text

        from asinwatch.kit.db import session_scope

        with session_scope() as s:
            rows = s.execute(
                text(
                    "SELECT a.id, a.asin, a.alert_type, e.event,"
                    " e.details -> 'details' ->> 'observed_on' AS day"
                    " FROM core.alert_events e JOIN core.alerts a ON a.id = e.alert_id"
                    " WHERE e.event IN ('opened','repeated','escalated','resolved')"
                    " AND e.actor = 'system' ORDER BY e.id"
                )
            ).all()
        out = []
        for r in rows:
            if r.day is None:
                continue
            out.append(Firing(r.asin, r.alert_type, date.fromisoformat(r.day), r.event, r.id))
        return out

    def quarantine_leaks(self) -> int:
        """Alerts (other than tracking_stale) raised by a run in which the product's item was
        quarantined and no valid item was promoted: must be 0."""
        from sqlalchemy import text

        from asinwatch.kit.db import session_scope

        with session_scope() as s:
            return int(
                s.execute(
                    text(
                        "SELECT count(*) FROM core.alert_events e"
                        " JOIN core.alerts a ON a.id = e.alert_id"
                        " WHERE e.event IN ('opened','repeated','escalated')"
                        " AND a.alert_type <> 'tracking_stale'"
                        " AND EXISTS (SELECT 1 FROM staging_raw.raw_events r"
                        "   WHERE r.run_id = CAST(e.details -> 'details' ->> 'run_id' AS uuid)"
                        "   AND r.kind = 'product' AND r.asin = a.asin"
                        "   AND r.status = 'quarantined')"
                        " AND NOT EXISTS (SELECT 1 FROM staging_raw.raw_events r"
                        "   WHERE r.run_id = CAST(e.details -> 'details' ->> 'run_id' AS uuid)"
                        "   AND r.kind = 'product' AND r.asin = a.asin AND r.status = 'promoted')"
                    )
                ).scalar_one()
            )

    def duplicate_notifications(self) -> int:
        """Pairs of notifications of one (product, type) closer than the cooldown: must be 0."""
        from sqlalchemy import text

        from asinwatch.config import get_settings
        from asinwatch.kit.db import session_scope

        cooldown = get_settings().alerts.cooldown_s
        with session_scope() as s:
            return int(
                s.execute(
                    text(
                        "WITH n AS (SELECT a.marketplace, a.asin, a.alert_type, e.at,"
                        " lag(e.at) OVER (PARTITION BY a.marketplace, a.asin, a.alert_type,"
                        "   a.id ORDER BY e.at) AS prev,"
                        " e.details ->> 'event_key' AS k FROM core.alert_events e"
                        " JOIN core.alerts a ON a.id = e.alert_id WHERE e.event = 'notified'"
                        " AND e.details ->> 'event_key' LIKE 'repeated:%')"
                        " SELECT count(*) FROM n WHERE prev IS NOT NULL"
                        " AND at - prev < make_interval(secs => :c)"
                    ),
                    {"c": cooldown},
                ).scalar_one()
            )

    def labels(self, first: date, last_day: int) -> dict[str, set[tuple[str, date]]]:
        """Labels dated from `first` to the last simulated day (the measured window)."""
        since = datetime.combine(first, datetime.min.time(), UTC)
        until = datetime.combine(self.epoch + timedelta(days=last_day), datetime.max.time(), UTC)
        out: dict[str, set[tuple[str, date]]] = defaultdict(set)
        for e in self.sim.events(
            since=since, until=until, marketplace=MARKETPLACE, asins=self.asins
        ):
            if e.type == "block_page":
                continue
            if e.type == "price_change" and abs(float(e.details.get("pct", 0))) < (
                self.args.price_label_pct
            ):
                continue
            out[e.type].add((e.asin, e.at.date()))
        return out


def _near(day: date, days: Iterable[date], tol: int) -> bool:
    return any(abs((day - d).days) <= tol for d in days)


def score(
    labels: dict[str, set[tuple[str, date]]], firings: list[Firing], tol: int, first: date
) -> dict[str, dict[str, Any]]:
    """Precision / recall per alert type (see the module docstring). Alerts opened before
    `first` (the warm-up) are not scored; any firing may still match a label by tolerance."""
    by_type: dict[str, list[Firing]] = defaultdict(list)
    for f in firings:
        if f.event in ("opened", "resolved") and f.day < first:
            continue
        by_type[f.alert_type].append(f)
    table: dict[str, dict[str, Any]] = {}
    rows: list[tuple[str, str, list[Firing], list[Firing]]] = []
    for alert_type, event_type in LABELLED.items():
        fs = by_type.get(alert_type, [])
        opened = [f for f in fs if f.event == "opened"]
        active = [f for f in fs if f.event in ("opened", "repeated", "escalated")]
        rows.append((alert_type, event_type, opened, active))
    oos = by_type.get("out_of_stock", [])
    back = [f for f in oos if f.event == "resolved"]
    rows.append(("out_of_stock (back in stock)", "back_in_stock", back, back))
    for name, event_type, opened, active in rows:
        want = labels.get(event_type, set())
        lab_by_asin: dict[str, list[date]] = defaultdict(list)
        for asin, d in want:
            lab_by_asin[asin].append(d)
        act_by_asin: dict[str, list[date]] = defaultdict(list)
        for f in active:
            act_by_asin[f.asin].append(f.day)
        open_by_asin: dict[str, list[date]] = defaultdict(list)
        for f in opened:
            open_by_asin[f.asin].append(f.day)
        tp_alerts = sum(1 for f in opened if _near(f.day, lab_by_asin.get(f.asin, []), tol))
        hit = sum(1 for a, d in want if _near(d, act_by_asin.get(a, []), tol))
        hit_open = sum(1 for a, d in want if _near(d, open_by_asin.get(a, []), tol))
        precision = tp_alerts / len(opened) if opened else None
        recall = hit / len(want) if want else None
        table[name] = {
            "labels": len(want),
            "alerts_opened": len(opened),
            "true_positive_alerts": tp_alerts,
            "labels_detected": hit,
            "precision": None if precision is None else round(precision, 4),
            "recall": None if recall is None else round(recall, 4),
            "recall_opened_only": round(hit_open / len(want), 4) if want else None,
            "meets_target": (
                precision is not None
                and recall is not None
                and precision >= TARGET_PRECISION
                and recall >= TARGET_RECALL
            ),
        }
    for alert_type in UNLABELLED:
        fs = [f for f in by_type.get(alert_type, []) if f.event == "opened"]
        table[alert_type] = {"labels": None, "alerts_opened": len(fs), "note": "no labels"}
    return table


def run_profile(args: argparse.Namespace, profile: str) -> dict[str, Any]:
    """One full benchmark run with a threshold profile, in its own database."""
    db_name = f"aw_bench_{uuid.uuid4().hex[:10]}"
    _setup_env(db_name, f"/tmp/asinwatch-bench-{db_name}")
    from asinwatch.config import reset_settings_cache
    from asinwatch.kit.db import dispose_sync_engines

    reset_settings_cache()
    dispose_sync_engines()
    _create_db(db_name)
    started = time.monotonic()
    bench: Bench | None = None
    try:
        from asinwatch.migrations import runner

        runner.upgrade(os.environ["ASINWATCH_DATABASE__URL"])
        bench = Bench(args)
        bench.seed_catalogue(PROFILES[profile])
        last = args.warmup_days + args.days
        for day in range(last + 1):
            bench.run_day(day)
            if day % 10 == 0:
                print(
                    f"[{profile}] day {day}/{last} ({time.monotonic() - started:.0f}s)",
                    flush=True,
                )
        first = bench.epoch + timedelta(days=args.warmup_days + 1)
        table = score(bench.labels(first, last), bench.firings(), args.tolerance_days, first)
        return {
            "profile": profile,
            "threshold_overrides": PROFILES[profile],
            "items_promoted": bench.promoted,
            "items_quarantined": bench.quarantined,
            "alerts_from_quarantined_items": bench.quarantine_leaks(),
            "notifications_within_cooldown": bench.duplicate_notifications(),
            "per_type": table,
            "elapsed_s": round(time.monotonic() - started, 1),
        }
    finally:
        if bench is not None:
            bench.close()
        dispose_sync_engines()
        if not args.keep_db:
            _drop_db(db_name)
        else:
            print(f"kept database {db_name}")


def _ok(result: dict[str, Any]) -> bool:
    clean = result["alerts_from_quarantined_items"] == 0
    clean = clean and result["notifications_within_cooldown"] == 0
    return clean and all(
        v.get("meets_target", True) for v in result["per_type"].values() if v.get("labels")
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    profiles = list(PROFILES) if args.profile == "all" else [args.profile]
    results = {p: run_profile(args, p) for p in profiles}
    doc = {
        "command": "python -m bench.alert_accuracy " + " ".join(argv or sys.argv[1:]),
        "params": {
            "days": args.days,
            "warmup_days": args.warmup_days,
            "own": args.own,
            "competitors_per_own": args.competitors,
            "asins": args.own * (1 + args.competitors),
            "seed": args.seed,
            "block_rate": args.block_rate,
            "price_label_pct": args.price_label_pct,
            "tolerance_days": args.tolerance_days,
            "targets": {"precision": TARGET_PRECISION, "recall": TARGET_RECALL},
        },
        "profiles": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    for result in results.values():
        _print(result)
    return 0 if all(_ok(r) for r in results.values()) else 1


def _print(result: dict[str, Any]) -> None:
    print(f"\nprofile {result['profile']}: overrides {result['threshold_overrides']}")
    print(
        f"{'alert type':32} {'labels':>7} {'opened':>7} {'precision':>10} {'recall':>8}"
        f" {'recall(opened)':>15}"
    )
    for name, row in result["per_type"].items():
        if row.get("labels") is None:
            print(f"{name:32} {'-':>7} {row['alerts_opened']:>7}   (no labels)")
            continue

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v * 100:.1f}%"

        print(
            f"{name:32} {row['labels']:>7} {row['alerts_opened']:>7} {pct(row['precision']):>10}"
            f" {pct(row['recall']):>8} {pct(row['recall_opened_only']):>15}"
        )
    print(
        f"\nquarantined items: {result['items_quarantined']}, alerts from quarantined items:"
        f" {result['alerts_from_quarantined_items']}, notifications within cooldown:"
        f" {result['notifications_within_cooldown']}, elapsed {result['elapsed_s']}s"
    )


if __name__ == "__main__":
    raise SystemExit(main())

"""Rows for the API tests, inserted directly with psycopg (what ingestion/analytics would write)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg

MP = "amazon.com"
OWN = "B0OWN00001"
COMP = "B0COMP0001"
UNKNOWN = "B0NOPE0001"


def today(marketplace: str = MP) -> date:
    return datetime.now(ZoneInfo("America/Los_Angeles")).date()


def add_product(
    conn: psycopg.Connection,
    asin: str,
    *,
    marketplace: str = MP,
    is_own: bool = True,
    title: str | None = None,
    state: str = "active",
) -> None:
    conn.execute(
        "INSERT INTO core.products (marketplace, asin, title, is_own, tracking_state)"
        " VALUES (%s, %s, %s, %s, %s)",
        (marketplace, asin, title or f"Product {asin}", is_own, state),
    )


def add_metrics(
    conn: psycopg.Connection,
    asin: str,
    days: int = 90,
    *,
    marketplace: str = MP,
    price0: float = 20.0,
    end: date | None = None,
) -> None:
    """`days` daily rows ending `end` (default today) and the matching mart.product_latest."""
    last = end or today(marketplace)
    rows = []
    for i in range(days):
        d = last - timedelta(days=days - 1 - i)
        observed = datetime.combine(d, time(6), tzinfo=UTC)
        rows.append(
            (
                marketplace,
                asin,
                d,
                round(price0 + i * 0.1, 2),
                "USD",
                True,
                1000 + i,
                "Kitchen",
                4.5,
                100 + i,
                observed,
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO core.product_metrics_daily (marketplace, asin, date, buybox_price,"
            " currency, in_stock, bsr, bsr_category, rating, review_count, observed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    m, a, d, price, cur_, stock, bsr, cat, rating, reviews, observed = rows[-1]
    conn.execute(
        "INSERT INTO mart.product_latest (marketplace, asin, date, buybox_price, currency,"
        " in_stock, bsr, bsr_category, rating, review_count, observed_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (marketplace, asin) DO UPDATE SET buybox_price = EXCLUDED.buybox_price,"
        " date = EXCLUDED.date, observed_at = EXCLUDED.observed_at",
        (m, a, d, price, cur_, stock, bsr, cat, rating, reviews, observed),
    )


def add_kpis(conn: psycopg.Connection, asin: str, *, marketplace: str = MP) -> None:
    conn.execute(
        "INSERT INTO mart.product_kpis_daily (marketplace, asin, date, kpis)"
        " VALUES (%s, %s, %s, %s)",
        (marketplace, asin, today(marketplace), json.dumps({"price": {"current": 28.9}})),
    )


def add_alert(
    conn: psycopg.Connection,
    asin: str,
    *,
    alert_type: str = "price_change",
    status: str = "open",
    marketplace: str = MP,
    severity: str = "warning",
) -> int:
    row = conn.execute(
        "INSERT INTO core.alerts (marketplace, asin, alert_type, severity, status, title, details,"
        " occurrences) VALUES (%s, %s, %s, %s, %s, %s, '{}', 1) RETURNING id",
        (marketplace, asin, alert_type, severity, status, f"{alert_type} on {asin}"),
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_link(
    conn: psycopg.Connection, asin: str, competitor: str, *, marketplace: str = MP
) -> None:
    conn.execute(
        "INSERT INTO core.competitor_links (marketplace, asin, competitor_asin)"
        " VALUES (%s, %s, %s)",
        (marketplace, asin, competitor),
    )


def add_report(conn: psycopg.Connection, asin: str, version: int, *, marketplace: str = MP) -> None:
    conn.execute(
        "INSERT INTO core.reports (marketplace, asin, kind, version, inputs_hash, body,"
        " llm_cost_usd) VALUES (%s, %s, 'competitive', %s, %s, %s, 0)",
        (marketplace, asin, version, f"h{version}", json.dumps({"version": version})),
    )


def add_recommendations(
    conn: psycopg.Connection, asin: str, version: int = 1, *, marketplace: str = MP
) -> None:
    items = [{"rule_id": "title.length", "title": "Shorten the title", "priority": 2}]
    conn.execute(
        "INSERT INTO core.recommendations (marketplace, asin, version, ruleset_version,"
        " inputs_hash, items) VALUES (%s, %s, %s, 'r1', %s, %s)",
        (marketplace, asin, version, f"h{version}", json.dumps(items)),
    )


def seed_standard(db_url: str) -> None:
    """Our product with 90 days, KPIs, an open alert, a linked competitor, a report (v1, v2)
    and recommendations."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_product(conn, OWN)
        add_product(conn, COMP, is_own=False)
        add_metrics(conn, OWN)
        add_metrics(conn, COMP, days=10, price0=25.0)
        add_kpis(conn, OWN)
        add_alert(conn, OWN)
        add_link(conn, OWN, COMP)
        add_report(conn, OWN, 1)
        add_report(conn, OWN, 2)
        add_recommendations(conn, OWN)

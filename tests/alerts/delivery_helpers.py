"""Helpers for the alert delivery tests: a real webhook receiver on 127.0.0.1 that checks every
signature, with scripted failures; the delivery settings; rows for channels and alerts."""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from asinwatch.alerts.models import Alert, AlertDelivery, NotificationChannel
from asinwatch.alerts.signing import verify_signature
from asinwatch.config import reset_settings_cache
from asinwatch.kit.db import session_scope

GLOBAL_SECRET = "global-test-secret-0123456789"


@dataclass
class Received:
    path: str
    delivery_id: str | None
    event: str | None
    signature_ok: bool
    status: int | None  # None: connection dropped or left hanging
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class Receiver:
    """Records every request. `plans[path]` scripts the first responses: "500", "drop"
    (close without answering), "hang" (answer nothing until the test ends)."""

    port: int = 0
    secrets: dict[str, str] = field(default_factory=dict)
    plans: dict[str, list[str]] = field(default_factory=dict)
    always_fail: set[str] = field(default_factory=set)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path and r.status == 200]

    def per_alert(self, path: str) -> dict[int, tuple[set[str], int]]:
        """alert id -> (distinct delivery ids seen, accepted 2xx count) for a path."""
        ids: dict[int, set[str]] = {}
        ok: Counter[int] = Counter()
        for r in self.requests:
            if r.path != path or r.body is None:
                continue
            alert_id = int(r.body["alert_id"])
            ids.setdefault(alert_id, set()).add(str(r.delivery_id))
            if r.status == 200:
                ok[alert_id] += 1
        return {a: (ids[a], ok[a]) for a in ids}


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            path = self.path
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            secret = rx.secrets.get(path)
            sig_ok = secret is not None and verify_signature(
                secret, self.headers.get("X-Asinwatch-Signature", ""), raw
            )
            with rx.lock:
                plan = rx.plans.get(path) or []
                action = plan.pop(0) if plan else ("500" if path in rx.always_fail else "ok")
            status: int | None
            if action in ("drop", "hang"):
                status = None
            elif action == "500":
                status = 500
            elif secret is not None and not sig_ok:
                status = 401
            else:
                status = 200
            with rx.lock:
                rx.requests.append(
                    Received(
                        path=path,
                        delivery_id=self.headers.get("X-Asinwatch-Delivery"),
                        event=self.headers.get("X-Asinwatch-Event"),
                        signature_ok=sig_ok,
                        status=status,
                        headers=dict(self.headers.items()),
                        body=body,
                    )
                )
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if action == "hang":
                rx.release.wait(30)
                self.close_connection = True
                return
            assert status is not None
            out = b'{"ok":true}' if status == 200 else b'{"ok":false}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx))
    server.daemon_threads = True
    rx.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rx
    rx.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def delivery_env(monkeypatch: pytest.MonkeyPatch, clean_db: str) -> Iterator[None]:
    """Delivery settings for tests: 127.0.0.1 allow-listed, no backoff wait, short timeout."""
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_ALLOWED_HOSTS", '["127.0.0.1"]')
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_BACKOFF_BASE_S", "0")
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_TIMEOUT_S", "1")
    monkeypatch.setenv("ASINWATCH_ALERTS__DELIVERY_MAX_ATTEMPTS", "6")
    monkeypatch.setenv("ASINWATCH_ALERTS__WEBHOOK_SECRET", GLOBAL_SECRET)
    reset_settings_cache()
    yield
    reset_settings_cache()


def add_channel(
    name: str,
    target: str,
    kind: str = "webhook",
    secret: str | None = None,
    alert_types: list[str] | None = None,
    min_severity: str = "info",
    enabled: bool = True,
) -> int:
    with session_scope() as s:
        ch = NotificationChannel(
            name=name,
            kind=kind,
            target=target,
            secret=secret,
            alert_types=alert_types or [],
            min_severity=min_severity,
            enabled=enabled,
        )
        s.add(ch)
        s.flush()
        return ch.id


def add_alert(asin: str, alert_type: str, severity: str, event_key: str = "opened:1") -> int:
    """Insert an alert and queue its notification; returns the alert id."""
    from asinwatch.alerts.delivery import enqueue_deliveries

    with session_scope() as s:
        alert = Alert(
            marketplace="amazon.com",
            asin=asin,
            alert_type=alert_type,
            severity=severity,
            title=f"{alert_type} on {asin}",
            details={"old": 10, "new": 8},
        )
        s.add(alert)
        s.flush()
        enqueue_deliveries(s, alert, event_key)
        return alert.id


def alert_snapshot() -> list[tuple[Any, ...]]:
    with session_scope() as s:
        rows = s.execute(select(Alert).order_by(Alert.id)).scalars().all()
        return [
            (
                a.id,
                a.status,
                a.severity,
                a.title,
                a.details,
                a.occurrences,
                a.last_seen_at,
                a.acknowledged_at,
                a.resolved_at,
            )
            for a in rows
        ]


def deliveries() -> list[AlertDelivery]:
    with session_scope() as s:
        return list(s.execute(select(AlertDelivery).order_by(AlertDelivery.id)).scalars().all())


def run_until_done(max_calls: int = 30) -> int:
    """Call the `alerts.deliver_due` task function until nothing is pending; returns calls."""
    from asinwatch.alerts.tasks import deliver_due

    for call in range(1, max_calls + 1):
        deliver_due()
        if all(d.status != "pending" for d in deliveries()):
            return call
    raise AssertionError("deliveries still pending after the loop")

"""The request's unit of work through the API: the refresh job is sent only after its row is
committed; with the task queue down (a real Celery client against a refused port) the job is
marked failed, the answer is a 503 problem and no Idempotency-Key response is stored (an
ingest run likewise stays committed and queued); a request that fails (unknown product)
leaves no job behind."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest
from celery import Celery

from asinwatch.worker import celery_app as celery_module
from tests.api.seed import OWN, UNKNOWN

Auth = Callable[..., dict[str, str]]


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


@pytest.fixture
def queue_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    dead = Celery("dead", broker=f"redis://127.0.0.1:{refused_port()}/0")
    dead.conf.update(task_publish_retry=False, broker_connection_timeout=1)
    monkeypatch.setattr(celery_module, "celery_app", dead)
    yield
    dead.close()


def jobs_of(db_url: str) -> list[tuple[str, str | None]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT status, error FROM core.jobs ORDER BY created_at").fetchall()
    return [(r[0], r[1]) for r in rows]


async def test_queue_down_marks_the_committed_job_failed_and_answers_503(
    client: httpx.AsyncClient, auth: Auth, seeded: str, queue_down: None
) -> None:
    h = auth("operator", **{"Idempotency-Key": "refresh-down"})
    resp = await client.post(f"/v1/recommendations/{OWN}/refresh", headers=h)
    assert resp.status_code == 503, resp.text
    assert resp.json()["type"].endswith("/queue-unavailable")
    assert resp.headers["retry-after"] == "5"
    [(status, error)] = jobs_of(seeded)
    assert status == "failed" and (error or "").startswith("could not enqueue")

    again = await client.post(f"/v1/recommendations/{OWN}/refresh", headers=h)
    assert again.status_code == 503  # not a replay: nothing was stored for the key
    assert "idempotent-replayed" not in again.headers

    plain = await client.post(f"/v1/recommendations/{OWN}/refresh", headers=auth("operator"))
    assert plain.status_code == 503 and plain.json()["type"].endswith("/queue-unavailable")
    assert [s for s, _ in jobs_of(seeded)] == ["failed"] * 3


async def test_a_failed_request_leaves_no_job(
    client: httpx.AsyncClient, auth: Auth, seeded: str
) -> None:
    resp = await client.post(f"/v1/recommendations/{UNKNOWN}/refresh", headers=auth("operator"))
    assert resp.status_code == 404
    assert jobs_of(seeded) == []
    ok = await client.post(f"/v1/recommendations/{OWN}/refresh", headers=auth("operator"))
    assert ok.status_code == 202 and jobs_of(seeded) == [("queued", None)]


async def test_queue_down_keeps_the_committed_run_and_answers_503(
    client: httpx.AsyncClient, auth: Auth, seeded: str, queue_down: None
) -> None:
    resp = await client.post("/v1/ingest/runs", json={"asins": [OWN]}, headers=auth("operator"))
    assert resp.status_code == 503, resp.text
    assert resp.json()["type"].endswith("/queue-unavailable")
    with psycopg.connect(seeded) as conn:
        runs = conn.execute("SELECT id, status FROM core.ingest_runs").fetchall()
    assert len(runs) == 1  # committed before the send was tried
    assert str(runs[0][0]) in resp.json()["detail"]

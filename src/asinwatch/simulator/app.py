"""The simulator's HTTP face: Apify API v2 routes plus `/sim/*` control and ground truth.

Every `/v2` request is counted, delayed by the configured latency, authenticated (Bearer header
or `?token=`), and may draw an injected 429/5xx (deterministic from the seed and the request's
sequence number) before it reaches its handler. `/sim` routes need the token but never fault.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from asinwatch.simulator.engine import TERMINAL_STATUSES, Run, SimInputError, Simulator
from asinwatch.simulator.hostile import dump_json
from asinwatch.simulator.randomness import unit

Handler = Callable[[Request], Awaitable[Response]]
MAX_WAIT_FOR_FINISH_S = 60
SYNC_RUN_LIMIT_S = 300
_CONFIG_KEYS = {
    "latency_ms": int,
    "error_rate": float,
    "block_rate": float,
    "run_fail_rate": float,
    "run_duration_s": float,
    "run_seconds_per_item": float,
    "honour_max_charge": bool,
    "price_per_product_usd": float,
    "price_per_review_usd": float,
    "start_cost_usd": float,
    "hostile": dict,  # {asin: kind}, kinds in hostile.HOSTILE_KINDS
}


def apify_error(status: int, error_type: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": error_type, "message": message}}, status_code=status)


def _auth_failure(request: Request, expected: str) -> Response | None:
    header = request.headers.get("authorization", "")
    supplied = header[7:].strip() if header.lower().startswith("bearer ") else None
    if supplied is None:
        supplied = request.query_params.get("token")
    if not supplied:
        return apify_error(401, "token-not-provided", "Authentication token was not provided")
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        return apify_error(
            401, "invalid-token", "User was not found or authentication token is not valid"
        )
    return None


def _bool_param(params: dict[str, str], name: str) -> bool:
    raw = params.get(name, "").strip().lower()
    if raw in ("", "0", "false"):
        return False
    if raw in ("1", "true"):
        return True
    raise SimInputError(f"Parameter '{name}' must be a boolean")


def _int_query(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise SimInputError(f"Parameter '{name}' must be an integer") from None
    if value < 0:
        raise SimInputError(f"Parameter '{name}' must be a non-negative integer")
    return value


def _csv(params: dict[str, str], name: str) -> list[str]:
    return [f.strip() for f in params.get(name, "").split(",") if f.strip()]


def items_response(
    items: list[dict[str, Any]], params: dict[str, str], status: int = 200, *, lax: bool = False
) -> Response:
    """A page of items with Apify's pagination headers (limit applies before skipping empties).

    `lax` (hostile items configured) writes the page with `hostile.dump_json`.
    """
    fmt = params.get("format", "json")
    if fmt != "json":
        raise SimInputError(f"Format '{fmt}' is not supported by the simulator (only json)")
    offset = _int_query(params, "offset") or 0
    limit = _int_query(params, "limit")
    desc = _bool_param(params, "desc")
    clean = _bool_param(params, "clean")
    skip_hidden = clean or _bool_param(params, "skipHidden")
    skip_empty = clean or _bool_param(params, "skipEmpty")
    fields, omit = _csv(params, "fields"), set(_csv(params, "omit"))
    ordered = list(reversed(items)) if desc else items
    window = ordered[offset : offset + limit if limit is not None else None]
    page: list[dict[str, Any]] = []
    for item in window:
        out = dict(item)
        if skip_hidden:
            out = {k: v for k, v in out.items() if not k.startswith("#")}
        if fields:
            out = {k: out[k] for k in fields if k in out}
        if omit:
            out = {k: v for k, v in out.items() if k not in omit}
        if skip_empty and not out:
            continue
        page.append(out)
    headers = {
        "X-Apify-Pagination-Offset": str(offset),
        "X-Apify-Pagination-Limit": str(limit if limit is not None else max(len(items), 1)),
        "X-Apify-Pagination-Count": str(len(page)),
        "X-Apify-Pagination-Total": str(len(items)),
        "X-Apify-Pagination-Desc": "true" if desc else "false",
    }
    if lax:
        return Response(dump_json(page), status, headers, media_type="application/json")
    return JSONResponse(page, status_code=status, headers=headers)


def _parse_time(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise SimInputError(f"Parameter '{name}' must be an ISO 8601 date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def create_app(sim: Simulator) -> Starlette:
    """The Starlette app serving `sim`."""

    def v2(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            query = "&".join(
                f"{k}={v}" for k, v in request.query_params.multi_items() if k != "token"
            )
            n = sim.note_request(request.method, request.url.path + ("?" + query if query else ""))
            cfg = sim.config
            if cfg.latency_ms:
                jitter = 0.5 + unit(cfg.seed, "latency", n)
                await asyncio.sleep(cfg.latency_ms * jitter / 1000)
            denied = _auth_failure(request, cfg.token)
            if denied is not None:
                return denied
            fault = sim.injected_fault(n)
            if fault is not None:
                status, kind = fault
                if status in (502, 503) and unit(cfg.seed, "fault-html", n) < 0.5:
                    # Proxies in front of the API answer with HTML, not JSON.
                    return HTMLResponse(
                        f"<html><body><h1>{status} {kind}</h1></body></html>", status
                    )
                return apify_error(status, kind, f"Simulated {kind} (request {n})")
            try:
                return await handler(request)
            except SimInputError as exc:
                return apify_error(400, "invalid-input", str(exc))
            except _NotFoundError as exc:
                return apify_error(404, exc.error_type, exc.message)

        return endpoint

    def control(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            denied = _auth_failure(request, sim.config.token)
            if denied is not None:
                return denied
            try:
                return await handler(request)
            except (SimInputError, ValueError, TypeError) as exc:
                return apify_error(400, "invalid-input", str(exc))

        return endpoint

    async def read_json(request: Request) -> Any:
        body = await request.body()
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise SimInputError("Input is not valid JSON") from None

    async def wait_for(run: Run, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while sim.snapshot(run).status not in TERMINAL_STATUSES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.05, remaining))

    def wait_param(params: dict[str, str]) -> float | None:
        value = _int_query(params, "waitForFinish")
        return None if value is None else float(min(value, MAX_WAIT_FOR_FINISH_S))

    def run_or_404(run_id: str) -> Run:
        run = sim.get_run(run_id)
        if run is None:
            raise _NotFoundError("record-not-found", "Actor run was not found")
        return run

    async def start_run(request: Request) -> Response:
        actor = sim.find_actor(request.path_params["actor"])
        if actor is None:
            return apify_error(404, "actor-not-found", "Actor was not found")
        params = dict(request.query_params)
        run = sim.create_run(actor, await read_json(request), params)
        wait = wait_param(params)
        status: str | None = "READY"
        if wait:
            await wait_for(run, wait)
            status = None
        headers = {"Location": f"/v2/actor-runs/{run.id}"}
        return JSONResponse({"data": sim.run_json(run, status=status)}, 201, headers=headers)

    async def run_sync(request: Request) -> Response:
        actor = sim.find_actor(request.path_params["actor"])
        if actor is None:
            return apify_error(404, "actor-not-found", "Actor was not found")
        params = dict(request.query_params)
        run = sim.create_run(actor, await read_json(request), params)
        await wait_for(run, SYNC_RUN_LIMIT_S)
        status = sim.snapshot(run).status
        if status not in TERMINAL_STATUSES:
            return apify_error(
                408, "run-timeout-exceeded", f"Actor run did not finish in {SYNC_RUN_LIMIT_S} s"
            )
        if status != "SUCCEEDED":
            return apify_error(400, "run-failed", f"Actor run {run.id} finished with {status}")
        return items_response(sim.items(run), params, status=201, lax=bool(sim.config.hostile))

    async def get_run(request: Request) -> Response:
        run = run_or_404(request.path_params["run_id"])
        wait = wait_param(dict(request.query_params))
        if wait:
            await wait_for(run, wait)
        return JSONResponse({"data": sim.run_json(run)})

    async def abort_run(request: Request) -> Response:
        run = run_or_404(request.path_params["run_id"])
        stopped = sim.abort(run)
        return JSONResponse({"data": sim.run_json(run, status="ABORTING" if stopped else None)})

    async def dataset_items(request: Request) -> Response:
        run = sim.run_for_dataset(request.path_params["dataset_id"])
        if run is None:
            return apify_error(404, "record-not-found", "Dataset was not found")
        return items_response(
            sim.items(run), dict(request.query_params), lax=bool(sim.config.hostile)
        )

    async def run_dataset_items(request: Request) -> Response:
        run = run_or_404(request.path_params["run_id"])
        return items_response(
            sim.items(run), dict(request.query_params), lax=bool(sim.config.hostile)
        )

    async def get_dataset(request: Request) -> Response:
        run = sim.run_for_dataset(request.path_params["dataset_id"])
        if run is None:
            return apify_error(404, "record-not-found", "Dataset was not found")
        items = sim.items(run)
        data = {
            "id": run.dataset_id,
            "name": None,
            "userId": "simUser0000000000",
            "createdAt": sim.run_json(run)["startedAt"],
            "itemCount": len(items),
            "cleanItemCount": sum(1 for i in items if any(not k.startswith("#") for k in i)),
            "actId": run.actor.id,
            "actRunId": run.id,
        }
        return JSONResponse({"data": data})

    async def get_actor(request: Request) -> Response:
        actor = sim.find_actor(request.path_params["actor"])
        if actor is None:
            return apify_error(404, "actor-not-found", "Actor was not found")
        owner, _, name = actor.name.partition("~")
        return JSONResponse({"data": {"id": actor.id, "name": name, "username": owner}})

    async def sim_clock(request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request)
            if not isinstance(body, dict):
                raise SimInputError("body must be a JSON object")
            if "set" in body:
                moment = _parse_time(str(body["set"]), "set")
                assert moment is not None
                sim.clock.set(moment)
            else:
                sim.clock.advance(
                    days=float(body.get("advance_days", 0)),
                    seconds=float(body.get("advance_seconds", 0)),
                )
        now = sim.clock.now()
        return JSONResponse(
            {"now": now.isoformat(), "day": sim.market.day_of(now), "epoch": str(sim.config.epoch)}
        )

    async def sim_events(request: Request) -> Response:
        q = request.query_params
        asins = [a.strip().upper() for a in q.get("asin", "").split(",") if a.strip()] or None
        types = [t.strip() for t in q.get("type", "").split(",") if t.strip()] or None
        events = sim.events(
            _parse_time(q.get("since"), "since"),
            _parse_time(q.get("until"), "until"),
            marketplace=q.get("marketplace") or None,
            asins=asins,
            types=types,
        )
        return JSONResponse({"data": [e.as_dict() for e in events], "count": len(events)})

    async def sim_config(request: Request) -> Response:
        if request.method == "POST":
            body = await read_json(request)
            if not isinstance(body, dict):
                raise SimInputError("body must be a JSON object")
            unknown = set(body) - set(_CONFIG_KEYS)
            if unknown:
                raise SimInputError(f"unknown or fixed config keys: {sorted(unknown)}")
            sim.configure(**{k: _CONFIG_KEYS[k](v) for k, v in body.items()})
        cfg = sim.config
        return JSONResponse({k: getattr(cfg, k) for k in ("seed", *_CONFIG_KEYS)})

    async def sim_stats(request: Request) -> Response:
        return JSONResponse(
            {
                "requests": sim.request_count,
                "runs": sim.run_count,
                "runs_by_actor": sim.runs_by_actor(),
            }
        )

    async def sim_track(request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("asins"), list):
            raise SimInputError("body must be {marketplace, asins: [...]}")
        sim.track(str(body.get("marketplace", "amazon.com")), [str(a) for a in body["asins"]])
        return JSONResponse({"tracked": len(body["asins"])})

    routes: list[Route] = []
    for prefix in ("/v2/actors", "/v2/acts"):
        routes += [
            Route(prefix + "/{actor}", v2(get_actor), methods=["GET"]),
            Route(prefix + "/{actor}/runs", v2(start_run), methods=["POST"]),
            Route(prefix + "/{actor}/run-sync-get-dataset-items", v2(run_sync), methods=["POST"]),
        ]
    routes += [
        Route("/v2/actor-runs/{run_id}", v2(get_run), methods=["GET"]),
        Route("/v2/actor-runs/{run_id}/abort", v2(abort_run), methods=["POST"]),
        Route("/v2/actor-runs/{run_id}/dataset/items", v2(run_dataset_items), methods=["GET"]),
        Route("/v2/datasets/{dataset_id}", v2(get_dataset), methods=["GET"]),
        Route("/v2/datasets/{dataset_id}/items", v2(dataset_items), methods=["GET"]),
        Route("/sim/clock", control(sim_clock), methods=["GET", "POST"]),
        Route("/sim/events", control(sim_events), methods=["GET"]),
        Route("/sim/config", control(sim_config), methods=["GET", "POST"]),
        Route("/sim/stats", control(sim_stats), methods=["GET"]),
        Route("/sim/track", control(sim_track), methods=["POST"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, _NotFoundError):
            return apify_error(404, exc.error_type, exc.message)
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 404:
            return apify_error(404, "page-not-found", "The requested page was not found")
        if status == 405:
            return apify_error(405, "method-not-allowed", "Method not allowed")
        return apify_error(status, "internal-server-error", "Internal server error")

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, _NotFoundError: http_error},
    )


class _NotFoundError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

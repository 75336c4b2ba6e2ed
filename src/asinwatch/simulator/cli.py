"""`asinwatch simulate`: serve the Apify-compatible marketplace simulator in the foreground.

The lead registers `simulate` on the main typer app; defaults come from SimulatorSettings.
"""

from __future__ import annotations

import typer

from asinwatch.config import get_settings
from asinwatch.simulator.clock import SimClock
from asinwatch.simulator.engine import SimConfig
from asinwatch.simulator.server import serve


def simulate(
    host: str | None = typer.Option(None, help="Loopback address to listen on."),
    port: int | None = typer.Option(None, help="Port (0 = any free port)."),
    seed: int | None = typer.Option(None, help="Seed of the simulated marketplace."),
    latency_ms: int | None = typer.Option(None, min=0, help="Added latency per request."),
    error_rate: float | None = typer.Option(None, min=0, max=1, help="Share of 429/5xx answers."),
    block_rate: float | None = typer.Option(None, min=0, max=1, help="Share of block pages."),
    run_duration_s: float = typer.Option(2.0, min=0, help="Wall-clock seconds a run takes."),
    follow_wall_clock: bool = typer.Option(
        True, help="Simulated time runs with the wall clock (off: frozen at the epoch)."
    ),
) -> None:
    """Serve the simulated Amazon marketplace behind an Apify API v2 (loopback only)."""
    s = get_settings().simulator
    overrides = {
        k: v
        for k, v in {
            "seed": seed,
            "latency_ms": latency_ms,
            "error_rate": error_rate,
            "block_rate": block_rate,
        }.items()
        if v is not None
    }
    config = SimConfig.from_settings(s, run_duration_s=run_duration_s, **overrides)
    bind_host, bind_port = host or s.host, s.port if port is None else port
    # Following the wall clock, each real day is a new simulated day (for the real scheduler).
    clock = SimClock(follow_wall_clock=True) if follow_wall_clock else None
    typer.echo(f"asinwatch simulator on http://{bind_host}:{bind_port}/v2 (seed {config.seed})")
    try:
        serve(config, bind_host, bind_port, clock=clock)
    except (OSError, ValueError) as exc:
        typer.echo(f"asinwatch: error: {exc}", err=True)
        raise typer.Exit(1) from None
